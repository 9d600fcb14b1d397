"""Values a template derives from a secret are masked like the secret (issue 9): `{{ token[4:] }}`,
`{{ token | upper }}`, `{{ 'Bearer ' ~ token }}`, ... Real playbook runs against a real HTTP server:
the steps get the real values (the server sees them, a python step hashes them), the log never holds
them, whether the secret comes from the workload, a `secrets` step (a stored credential) or the
environment."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.helpers import one, run_text, types_of

WORKLOAD_TOKEN = "wl_4Rk9vQ2mXp7Lz3Bn8Ty"
CREDENTIAL_TOKEN = "cr_7Gh3jK9pLq2Ws5Df8Zx"
ENV_TOKEN = "ev_2Nm8bV4cXz6Qw1Er9Ty"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def longest_piece(text: str, secret: str) -> int:
    best = 0
    for start in range(len(secret)):
        length = best + 1
        while start + length <= len(secret) and secret[start : start + length] in text:
            best = length
            length += 1
    return best


# What the templates below derive, as the steps must receive it.
DERIVED = {
    "x-slice": WORKLOAD_TOKEN[4:],
    "x-upper": CREDENTIAL_TOKEN.upper(),
    "authorization": "Bearer " + ENV_TOKEN,
    "x-reversed": WORKLOAD_TOKEN[::-1],
    "x-middle": f"id={CREDENTIAL_TOKEN[3:15]};",
}

PLAYBOOK = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: derived_secrets}
workload:
  api_token: %(workload_token)s
  url: "%(url)s"
workflow:
  - step: start
    type: secrets
    name: api
    next: [{step: call}]
  - step: call
    type: http
    method: POST
    endpoint: "{{ workload.url }}"
    headers:
      X-Slice: "{{ workload.api_token[4:] }}"
      X-Upper: "{{ start.token | upper }}"
      Authorization: "{{ 'Bearer ' ~ env.NOETL_TEST_API_TOKEN }}"
      X-Reversed: "{{ workload.api_token | reverse }}"
      X-Middle: "id={{ start.token[3:15] }};"
    data:
      tail: "{{ start.token[-10:] }}"
    next: [{step: check}]
  - step: check
    type: python
    data:
      sliced: "{{ workload.api_token[4:] }}"
      lowered: "{{ env.NOETL_TEST_API_TOKEN | lower }}"
      echoed: "{{ call.data.headers['x-upper'] }}"
    code: |
      import hashlib
      def main(sliced, lowered, echoed):
          digest = lambda s: hashlib.sha256(s.encode()).hexdigest()
          return {"sliced": digest(sliced), "lowered": digest(lowered), "echoed": digest(echoed),
                  "lengths": [len(sliced), len(lowered), len(echoed)]}
"""


def test_values_derived_from_secrets_are_masked_but_the_steps_get_them(
    store: Any, server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOETL_TEST_API_TOKEN", ENV_TOKEN)
    store.put_credential("api", "secret", {"token": CREDENTIAL_TOKEN})
    received: list[dict[str, str]] = []

    def echo(request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items() if k.lower() in DERIVED}
        received.append({**headers, "tail": request.get_json()["tail"]})
        # The answer echoes them back: a result that holds derived values is masked (and sealed) too.
        return Response(json.dumps({"headers": headers}), content_type="application/json")

    server.expect_request("/echo", method="POST").respond_with_handler(echo)
    yaml = PLAYBOOK % {"workload_token": WORKLOAD_TOKEN, "url": server.url_for("/echo")}
    outcome, events = run_text(store, yaml)
    assert outcome.status == "COMPLETED", outcome.error
    assert types_of(events, "call") == [
        "step_started",
        "action_started",
        "action_completed",
        "step_completed",
    ]

    # The step got the real values.
    assert received == [{**DERIVED, "tail": CREDENTIAL_TOKEN[-10:]}]
    checked = one(events, "step_completed", "check").result
    assert checked["sliced"] == sha(WORKLOAD_TOKEN[4:])
    assert checked["lowered"] == sha(ENV_TOKEN.lower())
    assert checked["echoed"] == sha(CREDENTIAL_TOKEN.upper())  # the sealed result, read back for real

    # The log holds none of them, nor any piece of a token longer than 4 characters.
    log = json.dumps([e.to_dict() for e in events])
    for value in [*DERIVED.values(), CREDENTIAL_TOKEN[-10:], ENV_TOKEN.lower()]:
        assert value not in log, value
    for token in (WORKLOAD_TOKEN, CREDENTIAL_TOKEN, ENV_TOKEN):
        assert longest_piece(log, token) <= 4, token
        assert longest_piece(log.upper(), token.upper()) <= 4, token  # nor a case-changed piece
    sent = one(events, "action_started", "call").context
    assert sent["config"]["headers"] == {
        "X-Slice": "***",
        "X-Upper": "***",
        "Authorization": "Bearer ***",
        "X-Reversed": "***",
        "X-Middle": "id=***;",
    }
    assert one(events, "step_completed", "call").meta["sealed"] is True


def test_templates_that_read_no_secret_are_left_alone(store: Any) -> None:
    outcome, events = run_text(
        store,
        """
        apiVersion: noetl.io/v1
        kind: Playbook
        metadata: {name: plain_and_secret}
        workload: {api_token: wl_9Zx8Cv7Bn6Mq5Wr4Et, city: Lisbon}
        workflow:
          - step: start
            type: python
            data:
              city: "{{ workload.city | upper }}"
              label: "{{ workload.city ~ '-' ~ workload.api_token | length }}"
              known: "{{ workload.api_token | length > 10 }}"
            code: |
              def main(city, label, known):
                  return {"city": city, "label": label, "known": known}
        """,
    )
    assert outcome.status == "COMPLETED", outcome.error
    # A length, a comparison and plain values are not the secret: they stay as they are.
    assert one(events, "step_completed", "start").result == {
        "city": "LISBON",
        "label": "Lisbon-21",
        "known": True,
    }


@pytest.mark.postgres
def test_on_a_worker_too(
    pg_dsn: str, tmp_path: Any, server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same playbook run by a worker process: the scope it builds learns the same derived values."""
    from noetl.store import open_store
    from tests.processes import SECRET_KEY, run_on_worker

    monkeypatch.setenv("NOETL_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("NOETL_TEST_API_TOKEN", ENV_TOKEN)
    store = open_store(pg_dsn)
    try:
        store.put_credential("api", "secret", {"token": CREDENTIAL_TOKEN})
    finally:
        store.close()
    received: list[dict[str, str]] = []

    def echo(request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items() if k.lower() in DERIVED}
        received.append(headers)
        return Response(json.dumps({"headers": headers}), content_type="application/json")

    server.expect_request("/echo", method="POST").respond_with_handler(echo)
    yaml = PLAYBOOK % {"workload_token": WORKLOAD_TOKEN, "url": server.url_for("/echo")}
    yaml = yaml.replace("{name: derived_secrets}", "{name: derived_secrets, path: tests/derived_secrets}")
    record, events = run_on_worker(pg_dsn, tmp_path, yaml, "tests/derived_secrets")
    assert record["status"] == "COMPLETED", record
    assert received == [DERIVED]
    checked = next(e for e in events if e["event_type"] == "step_completed" and e["node_name"] == "check")
    assert checked["result"]["sliced"] == sha(WORKLOAD_TOKEN[4:])
    assert checked["result"]["echoed"] == sha(CREDENTIAL_TOKEN.upper())
    log = json.dumps(events)
    for value in DERIVED.values():
        assert value not in log, value
    for token in (WORKLOAD_TOKEN, CREDENTIAL_TOKEN, ENV_TOKEN):
        assert longest_piece(log, token) <= 4, token


WORKLOAD_DERIVED = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: workload_derived}
workload:
  tail: "{{ env.NOETL_TEST_API_TOKEN[4:] }}"
  shout: "{{ env.NOETL_TEST_API_TOKEN | upper }}"
workflow:
  - step: start
    type: python
    data: {tail: "{{ workload.tail }}", shout: "{{ workload.shout }}"}
    code: |
      def main(tail, shout):
          return {"tail_length": len(tail), "shout_is_upper": shout == shout.upper()}
    next: [{step: end}]
  - step: end
"""


def test_workload_values_derived_from_a_secret_are_masked_and_the_steps_get_them(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOETL_TEST_API_TOKEN", ENV_TOKEN)
    outcome, events = run_text(store, WORKLOAD_DERIVED)
    assert outcome.status == "COMPLETED", outcome.error
    text = json.dumps([e.to_dict() for e in events])
    assert ENV_TOKEN[4:] not in text and ENV_TOKEN.upper() not in text
    [done] = [e for e in events if e.event_type == "step_completed" and e.node_name == "start"]
    assert done.result == {"tail_length": len(ENV_TOKEN) - 4, "shout_is_upper": True}
