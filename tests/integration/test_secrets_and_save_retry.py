"""Secrets reach the steps that use them and never the log; a save retries and says so in its events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import cli, run_text

HEAD = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: secrets_test}
"""


def test_secret_value_is_usable_but_never_stored(store: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("NOETL_SECRET_API_TOKEN", "tok-123456789")
    store.put_credential("db_pw", "secret", {"value": "hunter2-very-secret"})
    outcome, events = run_text(
        store,
        HEAD
        + """
workflow:
  - step: start
    next: [{step: get_pw}]
  - step: get_pw
    type: secrets
    name: db_pw
    next: [{step: get_token}]
  - step: get_token
    type: secrets
    provider: secret
    name: api_token
    next: [{step: use}]
  - step: use
    type: python
    data: {pw: "{{ get_pw.result }}", token: "{{ get_token }}"}
    code: |
      def main(pw, token):
          return {"pw_length": len(pw), "token_tail": token[-3:], "echo": "pw is " + pw}
    next: [{step: end}]
  - step: end
""",
    )
    assert outcome.status == "COMPLETED", outcome.error
    used = next(e for e in events if e.event_type == "action_completed" and e.node_name == "use").result
    assert used["pw_length"] == len("hunter2-very-secret") and used["token_tail"] == "789"
    assert used["echo"] == "pw is ***", "a secret echoed into a result is masked"
    stored = "\n".join(json.dumps(e.to_dict(), default=str) for e in events)
    assert "hunter2-very-secret" not in stored and "tok-123456789" not in stored


def test_credential_values_are_never_printed(store_path: Path) -> None:
    db = str(store_path)
    added = cli(
        "credential", "add", "api", "--type", "bearer", "--data", '{"token": "zzz-secret-zzz"}', "--db", db
    )
    assert added.returncode == 0 and "zzz-secret-zzz" not in added.stdout + added.stderr
    listed = cli("credential", "list", "--db", db)
    assert "api" in listed.stdout and "bearer" in listed.stdout and "zzz-secret-zzz" not in listed.stdout
    files = [p for p in store_path.parent.iterdir() if p.name.startswith("noetl.db")]
    assert files and all(b"zzz-secret-zzz" not in p.read_bytes() for p in files), "encrypted at rest"


def test_save_retries_are_events_with_attempt_and_whether_another_follows(store: Any, tmp_path: Path) -> None:
    counter = tmp_path / "attempts"
    outcome, events = run_text(
        store,
        HEAD
        + f"""
workflow:
  - step: start
    next: [{{step: produce}}]
  - step: produce
    type: python
    code: |
      def main():
          return {{"n": 1}}
    save:
      storage: python
      retry: {{max_attempts: 3, initial_delay: 0.01}}
      args: {{n: "{{{{ this.n }}}}"}}
      code: |
        import pathlib
        def main(n):
            counter = pathlib.Path("{counter}")
            attempt = int(counter.read_text()) + 1 if counter.exists() else 1
            counter.write_text(str(attempt))
            if attempt < 3:
                raise ConnectionError(f"target busy on attempt {{attempt}}")
            return 1
    next: [{{step: end}}]
  - step: end
""",
    )
    assert outcome.status == "COMPLETED", outcome.error
    saves = [e for e in events if e.node_type == "save"]
    assert [e.event_type for e in saves] == ["save_started", "save_failed", "save_failed", "save_completed"]
    assert [(e.meta["attempt"], e.meta["will_retry"]) for e in saves[1:3]] == [(1, True), (2, True)]
    assert saves[3].meta["attempt"] == 3 and saves[3].meta["rows"] == 1
    assert "target busy on attempt 1" in (saves[1].error or "")
    assert [e.event_type for e in events if e.node_name == "produce"] == [
        "step_started",
        "action_started",
        "save_started",
        "save_failed",
        "save_failed",
        "save_completed",
        "action_completed",
        "step_completed",
    ]


@pytest.mark.parametrize(
    ("rule", "attempts", "reason"),
    [
        ("retry_when: \"{{ 'busy' in error }}\"", 3, None),  # matches: retried as often as allowed
        ("retry_when: \"{{ 'timeout' in error }}\"", 1, "retry_when did not match"),
        ("stop_when: \"{{ 'busy' in error }}\"", 1, "stop_when matched"),
    ],
)
def test_a_saves_retry_reads_retry_when_and_stop_when_as_a_steps_does(
    store: Any, tmp_path: Path, rule: str, attempts: int, reason: str | None
) -> None:
    """Issue 8 item 7: one retry mechanism; a save's `retry` means what a step's means."""
    outcome, events = run_text(
        store,
        HEAD
        + f"""
workflow:
  - step: start
    type: python
    code: |
      def main():
          return {{"n": 1}}
    save:
      storage: python
      retry: {{max_attempts: 3, initial_delay: 0.01, {rule}}}
      code: |
        def main(**rows):
            raise ConnectionError("target busy")
""",
    )
    assert outcome.status == "FAILED"
    failed = [e for e in events if e.event_type == "save_failed"]
    assert len(failed) == attempts
    assert failed[-1].meta["will_retry"] is False
    if reason is not None:
        assert failed[-1].meta["retry_reason"] == reason
