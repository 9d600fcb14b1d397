"""The ring check of sub-playbook files (noetl/dsl/call_rings.py): which calls every run makes, which
file each one runs, and where the walk stops."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from noetl.dsl import Playbook, load_playbook, parse_playbook
from noetl.dsl.call_rings import always_calls, always_reached, child_file, find_ring
from noetl.errors import PlaybookError
from noetl.runtime.subplaybooks import file_candidates

HEADER = "apiVersion: noetl.io/v1\nkind: Playbook\nmetadata: {name: x}\n"


def _playbook(body: str) -> str:
    return HEADER + textwrap.dedent(body)


def _write(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_playbook(body), encoding="utf-8")
    return path


def _calling(path: Path, child: str) -> Path:
    return _write(
        path,
        f"""
        workflow:
          - step: start
            next: [{{step: call}}]
          - step: call
            type: playbook
            path: {child}
        """,
    )


@pytest.mark.parametrize(
    "path", ["b", "b.yaml", "b.yml", "sub/c", "../up", "cwd_only", "missing", "sub", "b.yaml.yaml"]
)
def test_the_child_file_is_the_one_the_runtime_would_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    folder = tmp_path / "here"
    for name in ["b.yaml", "b.yml", "sub/c.yml", "sub/c.yaml"]:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("x")
    (tmp_path / "up.yaml").write_text("x")
    (tmp_path / "cwd").mkdir()
    (tmp_path / "cwd" / "cwd_only.yml").write_text("x")
    monkeypatch.chdir(tmp_path / "cwd")
    runtime = next((f for f in file_candidates(path, [folder, Path.cwd()]) if f.is_file()), None)
    assert child_file(path, folder) == runtime


def test_an_absolute_path_is_the_file_itself(tmp_path: Path) -> None:
    target = tmp_path / "abs.yaml"
    target.write_text("x")
    assert child_file(str(target), tmp_path / "elsewhere") == target
    assert child_file(str(tmp_path / "abs"), tmp_path) is None  # no suffix is added to an absolute path
    assert child_file("x" * 300, tmp_path) is None  # a name too long for the system is no file


def test_a_step_with_a_when_reaches_its_unconditional_targets_only_sometimes() -> None:
    playbook = parse_playbook(
        _playbook(
            """
            workflow:
              - step: start
                next: [{step: a}]
              - step: a
                next:
                  - when: "{{ result }}"
                    step: b
                  - step: c
              - step: b
              - step: c
              - step: skipped
                pass: true
                next: [{when: "{{ false }}", step: b}, {step: c}]
            """
        )
    )
    assert [s.name for s in always_reached(list(playbook.steps.values()))] == ["start", "a"]
    skipped = parse_playbook(
        _playbook(
            """
            workflow:
              - step: start
                pass: true
                next: [{when: "{{ false }}", step: b}, {step: c}]
              - step: b
              - step: c
                next: [{step: d, when: "{{ true }}"}, {else: {step: e}}]
              - step: d
              - step: e
            """
        )
    )
    # `pass: true` tests nothing: it takes the unconditional targets, never the `when` ones
    assert [s.name for s in always_reached(list(skipped.steps.values()))] == ["start", "c"]


def test_calls_inside_iterators_count_only_over_a_literal_list() -> None:
    def calls(collection: str, extra: str = "") -> list[str]:
        playbook = parse_playbook(
            _playbook(
                f"""
                workflow:
                  - step: start
                    type: iterator
                    collection: {collection}
                    {extra}
                    task: {{type: playbook, path: child.yaml}}
                """
            )
        )
        return [f"{c.where} {c.path}" for c in always_calls(playbook)]

    assert calls("[1, 2]") == ["step 'start' (its iterator's task) child.yaml"]
    assert calls("[]") == []
    assert calls('"{{ workload.items }}"') == []
    assert calls("[1, 2]", 'where: "{{ item > 1 }}"') == []
    assert calls("[1, 2]", "limit: 1") == ["step 'start' (its iterator's task) child.yaml"]


def test_a_self_call_behind_a_when_or_a_pass_is_not_refused() -> None:
    # The unconditional `next` of a step that also has a `when` is a fallback: the `when` can end it.
    fallback = """
        workload: {n: 0}
        workflow:
          - step: start
            next:
              - when: "{{ workload.n > 3 }}"
                step: end
              - step: again
          - step: again
            type: playbook
            path: self.yaml
            data: {n: "{{ workload.n + 1 }}"}
          - step: end
        """
    assert parse_playbook(_playbook(fallback), source="self.yaml").steps["again"]
    skipped = """
        workflow:
          - step: start
            next: [{step: again}]
          - step: again
            pass: true
            type: playbook
            path: self.yaml
        """
    assert parse_playbook(_playbook(skipped), source="self.yaml").steps["again"].skip


def test_a_playbook_that_calls_itself_through_a_literal_iterator_is_refused(tmp_path: Path) -> None:
    top = _write(
        tmp_path / "loop.yaml",
        """
        workflow:
          - step: start
            type: iterator
            collection: [1]
            task: {type: playbook, path: loop.yaml}
        """,
    )
    with pytest.raises(PlaybookError) as caught:
        load_playbook(top)
    assert str(caught.value) == (
        f"{top}:9: {top} step 'start' (its iterator's task) -> {top}: this ring of sub-playbooks always "
        "calls itself and never ends; put a `when` on one of these calls"
    )


def test_the_walk_stops_at_its_bound(tmp_path: Path) -> None:
    for i in range(150):  # a chain of 150 files, no ring: accepted, and the walk loads at most 100
        _calling(tmp_path / f"p{i}.yaml", f"p{i + 1}.yaml")
    assert load_playbook(tmp_path / "p0.yaml").name == "x"
    _calling(tmp_path / "p150.yaml", "p0.yaml")  # now a ring of 151 files: past the bound of the walk
    assert load_playbook(tmp_path / "p0.yaml").name == "x"
    ring = [tmp_path / f"r{i}.yaml" for i in range(4)]
    for i, path in enumerate(ring):
        _calling(path, ring[(i + 1) % 4].name)
    found = find_ring(ring[0], _load(ring[0]), _load)
    assert found is not None and len(found[0]) == 4
    assert find_ring(ring[0], _load(ring[0]), _load, limit=3) is None


def _load(path: Path) -> Playbook:
    """The loader without the ring check (the walk's own)."""
    from noetl.dsl.loader import _read_playbook

    return _read_playbook(path)


def test_a_ring_is_named_with_the_files_as_the_run_finds_them(tmp_path: Path) -> None:
    _calling(tmp_path / "a.yaml", "sub/b")
    _calling(tmp_path / "sub" / "b.yaml", "../a.yaml")
    with pytest.raises(PlaybookError) as caught:
        load_playbook(tmp_path / "sub" / "b.yaml")
    b, a = tmp_path / "sub" / "b.yaml", os.path.normpath(tmp_path / "sub" / "../a.yaml")
    assert str(caught.value) == (
        f"{b}:8: {b} step 'call' -> {a} step 'call' -> {b}: this ring of sub-playbooks always calls "
        "itself and never ends; put a `when` on one of these calls"
    )
