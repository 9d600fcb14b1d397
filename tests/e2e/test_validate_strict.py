"""`noetl validate` warnings: every kind of warning is printed with its file and line and leaves the
exit code at 0; `--strict` turns each of them into an error (exit 2) and lists it once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import REPO, cli

COMPAT = REPO / "tests/fixtures/compat"
# One fixture per kind of warning, and a piece of the warning's text.
WARNINGS = {
    "doc_top_level_identity.yaml": "prefer `metadata:",
    "doc_job_uuid.yaml": "`execution_id` is the clearer name",
    "step_condition_alias.yaml": "`condition` is an alias of `when`",
    "step_inputs_as_names.yaml": "has the name of a step",
    "action_postgres_db_inputs.yaml": "store it as a credential",
}


@pytest.mark.parametrize("name", sorted(WARNINGS))
def test_a_warning_keeps_exit_0_and_strict_makes_it_exit_2(name: str) -> None:
    path = COMPAT / name
    relaxed = cli("validate", str(path))
    assert relaxed.returncode == 0, relaxed.stderr
    warnings = [line for line in relaxed.stderr.splitlines() if line.startswith("warning: ")]
    assert any(WARNINGS[name] in line for line in warnings), relaxed.stderr
    assert all(re.match(rf"warning: {re.escape(str(path))}:\d+: ", line) for line in warnings), warnings
    strict = cli("validate", str(path), "--strict")
    assert strict.returncode == 2, strict.stdout + strict.stderr
    assert strict.stderr.count(WARNINGS[name]) == relaxed.stderr.count(WARNINGS[name])  # listed once
    assert "warning: " not in strict.stderr


def test_a_playbook_without_warnings_passes_strict() -> None:
    done = cli("validate", str(REPO / "examples/weather_pipeline/weather_pipeline.yaml"), "--strict")
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr


def test_every_example_is_free_of_warnings() -> None:
    """The examples show the clearer spellings: none of them needs a warning."""
    for path in sorted((REPO / "examples").glob("*/*.yaml")):
        done = cli("validate", str(path), "--strict")
        assert done.returncode == 0, f"{path}: {done.stderr}"


def test_warnings_name_their_own_line(tmp_path: Path) -> None:
    path = tmp_path / "shadow.yaml"
    path.write_text(
        "apiVersion: noetl.io/v1\n"
        "kind: Playbook\n"
        "metadata: {name: shadow}\n"
        "workflow:\n"
        "  - step: start\n"
        "    next: [{step: total}]\n"
        "  - step: total\n"
        "    type: python\n"
        "    data:\n"
        "      start: 1\n"
        "    code: |\n"
        "      def main(start):\n"
        "          return start\n",
        encoding="utf-8",
    )
    done = cli("validate", str(path))
    assert done.returncode == 0
    assert f"warning: {path}:10: step 'total': input 'start' has the name of a step" in done.stderr
