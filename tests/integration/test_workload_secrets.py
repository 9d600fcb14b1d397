"""Secret values in a workload never reach the log, yet the steps use the real values: the workload
under secret-looking keys (and rendered from secret-looking env variables) is masked in events, and
its real form travels sealed with the store's credential key."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from tests.helpers import one, run_text

PLAYBOOK = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: workload_secrets}
workload:
  api_token: literal-token-value-123
  db: {host: localhost, db_password: "{{ env.NOETL_TEST_DB_PASSWORD }}"}
  city: Lisbon
workflow:
  - step: start
    type: python
    data:
      token: "{{ workload.api_token }}"
      password: "{{ workload.db.db_password }}"
      extra: "{{ workload.pg_password }}"
      city: "{{ workload.city }}"
    code: |
      import hashlib
      def main(token, password, extra, city):
          digest = lambda s: hashlib.sha256(s.encode()).hexdigest()
          return {"token": digest(token), "password": digest(password), "extra": digest(extra),
                  "echo": token, "city": city}
"""


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_workload_secrets_are_masked_in_events_and_real_in_steps(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOETL_TEST_DB_PASSWORD", "env-password-value-456")
    outcome, events = run_text(store, PLAYBOOK, {"pg_password": "payload-password-789"})
    assert outcome.status == "COMPLETED", outcome.error
    result = one(events, "step_completed", "start").result
    assert result["token"] == sha("literal-token-value-123")
    assert result["password"] == sha("env-password-value-456")
    assert result["extra"] == sha("payload-password-789")
    assert result["echo"] == "***" and result["city"] == "Lisbon"
    log = json.dumps([e.to_dict() for e in events])
    for secret in ("literal-token-value-123", "env-password-value-456", "payload-password-789"):
        assert secret not in log
    shown = events[0].context["workload"]
    assert shown["api_token"] == "***" and shown["db"]["db_password"] == "***" and shown["city"] == "Lisbon"
    assert events[0].context["workload_sealed"] is True
    assert store.unseal(outcome.execution_id, "workload")["api_token"] == "literal-token-value-123"
    assert "literal-token-value-123" not in json.dumps(events[0].context)


def test_a_workload_without_secrets_is_not_sealed(store: Any) -> None:
    outcome, events = run_text(
        store,
        """
        apiVersion: noetl.io/v1
        kind: Playbook
        metadata: {name: plain_workload}
        workload: {city: Lisbon, label: "{{ city }}-x"}
        workflow:
          - step: start
            next: [{step: end}]
          - step: end
            result: {label: "{{ workload.label }}"}
        """,
    )
    assert outcome.result == {"label": "Lisbon-x"}
    assert "workload_sealed" not in events[0].context
    assert store.unseal(outcome.execution_id, "workload") is None
