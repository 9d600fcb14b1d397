"""Steps that need an optional extra: `type: snowflake` ([snowflake]) and Google Secret Manager ([gcp]).

Without the extra a playbook still validates, and its run fails at once (no retry) naming the extra to
install. With it, the connected paths are exercised against stand-in modules written by the test: Snowflake
and Google Cloud are cloud services that no test here can reach, and a stand-in for a cloud service is the
one mock our rules allow. Nothing else is faked: the playbooks run in a LocalRunner over a real store.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from noetl.engine.events import Event
from tests.helpers import cli, one, run_text

HEAD = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: extras_test}
"""

SNOWFLAKE_STEP = """
workflow:
  - step: start
    next: [{step: load}]
  - step: load
    type: snowflake
    auth: sf
    retry: 3
    data: {city: Paris}
    command: "INSERT INTO cities (name) VALUES (:city)"
    next: [{step: end}]
  - step: end
"""

GOOGLE_STEP = """
workflow:
  - step: start
    next: [{step: get_key}]
  - step: get_key
    type: secrets
    provider: google
    project_id: p
    name: s
    retry: 3
    next: [{step: end}]
  - step: end
"""

# A stand-in for snowflake-connector-python: the DB-API surface the action uses, recording every call.
FAKE_SNOWFLAKE = """
from collections import namedtuple

LOG = []
ResultMetadata = namedtuple("ResultMetadata", ["name", "type_code"])


class Error(Exception):
    def __init__(self, msg="", sqlstate=None):
        super().__init__(msg)
        self.msg = msg
        self.sqlstate = sqlstate


class InterfaceError(Error): ...
class DatabaseError(Error): ...
class OperationalError(DatabaseError): ...
class ProgrammingError(DatabaseError): ...


class Cursor:
    def __init__(self, conn):
        self.conn = conn
        self.description = None
        self.rowcount = -1
        self._rows = []

    def execute(self, sql, params=None):
        LOG.append(("execute", sql, params))
        if "FAIL" in sql:
            raise ProgrammingError(
                "SQL compilation error near FAIL (session password " + self.conn.kwargs["password"] + ")",
                sqlstate="42000",
            )
        if sql.lstrip().upper().startswith("SELECT"):
            self.description = [ResultMetadata("NAME", 2), ResultMetadata("POP", 0)]
            self._rows = [("Paris", 2100000)]
            self.rowcount = 1
        else:
            self.description, self.rowcount = None, 1
        return self

    def fetchall(self):
        return list(self._rows)

    def close(self):
        LOG.append(("cursor_close",))


class Connection:
    def __init__(self, kwargs):
        self.kwargs = kwargs

    def cursor(self):
        return Cursor(self)

    def commit(self):
        LOG.append(("commit",))

    def rollback(self):
        LOG.append(("rollback",))

    def close(self):
        LOG.append(("close",))


def connect(**kwargs):
    LOG.append(("connect", kwargs))
    return Connection(kwargs)
"""

# A stand-in for google-cloud-secret-manager: one secret, `api_key`, in project `p`, at every version.
FAKE_SECRETMANAGER = """
REQUESTS = []


class NotFound(Exception): ...


class _Payload:
    def __init__(self, data):
        self.data = data


class _Response:
    def __init__(self, data):
        self.payload = _Payload(data)


class SecretManagerServiceClient:
    def access_secret_version(self, name=None, request=None):
        REQUESTS.append(name)
        if name.startswith("projects/p/secrets/api_key/versions/"):
            return _Response("gsm-secret-välue-42".encode("utf-8"))
        raise NotFound("404 Secret [" + name + "] not found or has no versions.")
"""

SF_PASSWORD = "sf-pass-wörd-987"
GSM_VALUE = "gsm-secret-välue-42"


@pytest.fixture
def standins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dict[str, str]], None]]:
    """Put stand-in modules on sys.path; afterwards drop every module imported from them."""
    root = tmp_path / "standins"

    def place(files: dict[str, str]) -> None:
        for relative, text in files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        monkeypatch.syspath_prepend(str(root))

    before = set(sys.modules)
    yield place
    for name in set(sys.modules) - before:
        if name.split(".")[0] in ("snowflake", "google"):
            del sys.modules[name]


def _without(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The extra is not installed here; should it ever be, hide it so that the missing path is still tested."""
    try:
        installed = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        installed = False
    if installed:
        monkeypatch.setitem(sys.modules, module, None)


def _stored(events: list[Event]) -> str:
    return "\n".join(json.dumps(e.to_dict(), default=str, ensure_ascii=False) for e in events)


def _put_sf_credential(store: Any) -> None:
    store.put_credential(
        "sf",
        "snowflake",
        {
            "account": "acme-xy123",
            "user": "LOADER",
            "password": SF_PASSWORD,
            "warehouse": "WH",
            "database": "DB",
            "schema": "PUBLIC",
            "role": "LOADER_ROLE",
        },
    )


@pytest.mark.parametrize(
    ("body", "step", "module", "extra"),
    [
        (SNOWFLAKE_STEP, "load", "snowflake.connector", "noetl[snowflake]"),
        (GOOGLE_STEP, "get_key", "google.cloud.secretmanager", "noetl[gcp]"),
    ],
    ids=["snowflake", "google"],
)
def test_without_the_extra_the_playbook_validates_and_its_run_fails_at_once_naming_it(
    body: str, step: str, module: str, extra: str, store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    playbook = tmp_path / "playbook.yaml"
    playbook.write_text(HEAD + body)
    validated = cli("validate", str(playbook))
    assert validated.returncode == 0, validated.stdout + validated.stderr

    _without(module, monkeypatch)
    _put_sf_credential(store)
    outcome, events = run_text(store, HEAD + body)
    assert outcome.status == "FAILED"
    assert [e.event_type for e in events if e.node_name == step].count("action_started") == 1, (
        "a missing package is not retried, even with `retry: 3`"
    )
    assert not [e for e in events if e.event_type == "action_retry"]
    failed = one(events, "step_failed", step)
    assert extra in (failed.error or "") and f"step '{step}'" in (failed.error or "")
    assert failed.meta["error_type"] == "MissingExtra"


def test_snowflake_runs_the_statements_with_binds_in_one_committed_transaction(
    store: Any, standins: Callable[[dict[str, str]], None]
) -> None:
    """Against a stand-in `snowflake.connector` (Snowflake is a cloud service): what reaches the connector."""
    standins({"snowflake/__init__.py": "", "snowflake/connector.py": FAKE_SNOWFLAKE})
    _put_sf_credential(store)
    outcome, events = run_text(
        store,
        HEAD
        + """
workflow:
  - step: start
    next: [{step: load}]
  - step: load
    type: snowflake
    auth: sf
    data: {city: Paris, min_pop: 1000, tags: [a, b]}
    command: |
      INSERT INTO cities (name, tags) SELECT :city, PARSE_JSON(:tags);
      SELECT name, pop FROM cities WHERE pop > :min_pop AND name LIKE 'P%' AND note = ':city';
    next: [{step: use}]
  - step: use
    type: python
    data: {inserted: "{{ load.result.command_0.row_count }}", rows: "{{ load.result.command_1.rows }}"}
    code: |
      def main(inserted, rows):
          return {"inserted": inserted, "first": rows[0]}
    next: [{step: end}]
  - step: end
""",
    )
    assert outcome.status == "COMPLETED", outcome.error
    log = sys.modules["snowflake.connector"].LOG
    connect = log[0]
    assert connect[0] == "connect"
    assert connect[1] == {
        "account": "acme-xy123",
        "user": "LOADER",
        "password": SF_PASSWORD,
        "warehouse": "WH",
        "database": "DB",
        "schema": "PUBLIC",
        "role": "LOADER_ROLE",
        "autocommit": False,
    }
    executed = [entry[1:] for entry in log if entry[0] == "execute"]
    assert executed == [
        (
            "INSERT INTO cities (name, tags) SELECT %(city)s, PARSE_JSON(%(tags)s)",
            {"city": "Paris", "tags": '["a", "b"]'},
        ),
        (
            "SELECT name, pop FROM cities WHERE pop > %(min_pop)s AND name LIKE 'P%%' AND note = ':city'",
            {"min_pop": 1000},
        ),
    ]
    assert [entry[0] for entry in log if entry[0] in ("commit", "rollback", "close")] == ["commit", "close"]
    result = one(events, "action_completed", "load").result
    assert result["command_0"] == {"status": "ok", "rows": [], "row_count": 1, "columns": []}
    assert result["command_1"]["rows"] == [{"NAME": "Paris", "POP": 2100000}]
    assert one(events, "action_completed", "use").result == {
        "inserted": 1,
        "first": {"NAME": "Paris", "POP": 2100000},
    }
    assert SF_PASSWORD not in _stored(events)


def test_snowflake_statement_error_rolls_back_and_hides_the_password(
    store: Any, standins: Callable[[dict[str, str]], None]
) -> None:
    """Against a stand-in `snowflake.connector` (a cloud service) whose error text echoes the password."""
    standins({"snowflake/__init__.py": "", "snowflake/connector.py": FAKE_SNOWFLAKE})
    _put_sf_credential(store)
    outcome, events = run_text(
        store,
        HEAD
        + """
workflow:
  - step: start
    next: [{step: load}]
  - step: load
    type: snowflake
    auth: sf
    retry: 3
    command: ["INSERT INTO t VALUES (1)", "SELECT FAIL"]
    next: [{step: end}]
  - step: end
""",
    )
    assert outcome.status == "FAILED"
    log = sys.modules["snowflake.connector"].LOG
    assert [entry[0] for entry in log if entry[0] in ("commit", "rollback", "close")] == ["rollback", "close"]
    failed = one(events, "step_failed", "load")
    error = failed.error or ""
    assert "command_1 (statement 2 of 2)" in error and "rolled back" in error and "SQL compilation" in error
    assert failed.meta["error_type"] == "ProgrammingError"
    assert [e.event_type for e in events if e.node_name == "load"].count("action_started") == 1, (
        "an SQL error is not retried"
    )
    assert SF_PASSWORD not in _stored(events)


def test_google_secret_reaches_the_next_step_and_no_event(
    store: Any, standins: Callable[[dict[str, str]], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against a stand-in `google.cloud.secretmanager` (Secret Manager is a cloud service)."""
    standins({"google/cloud/secretmanager.py": FAKE_SECRETMANAGER})
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "p")
    outcome, events = run_text(
        store,
        HEAD
        + """
workflow:
  - step: start
    next: [{step: get_key}]
  - step: get_key
    type: secrets
    provider: google
    project_id: p
    name: api_key
    next: [{step: get_pinned}]
  - step: get_pinned
    type: secrets
    provider: gcp
    name: api_key
    version: "3"
    next: [{step: use}]
  - step: use
    type: python
    data: {key: "{{ get_key }}", pinned: "{{ get_pinned.result }}"}
    code: |
      def main(key, pinned):
          return {"length": len(key), "same": key == pinned, "tail": key[-2:], "echo": "key is " + key}
    next: [{step: end}]
  - step: end
""",
    )
    assert outcome.status == "COMPLETED", outcome.error
    requests = sys.modules["google.cloud.secretmanager"].REQUESTS
    assert requests == [
        "projects/p/secrets/api_key/versions/latest",
        "projects/p/secrets/api_key/versions/3",  # project from GOOGLE_CLOUD_PROJECT
    ]
    used = one(events, "action_completed", "use").result
    assert used["length"] == len(GSM_VALUE) and used["same"] is True and used["tail"] == "42"
    assert used["echo"] == "key is ***", "the value echoed into a result is masked"
    assert GSM_VALUE not in _stored(events)


def test_google_secret_without_a_project_or_that_does_not_exist_fails_clearly(
    store: Any, standins: Callable[[dict[str, str]], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against a stand-in `google.cloud.secretmanager` (Secret Manager is a cloud service)."""
    standins({"google/cloud/secretmanager.py": FAKE_SECRETMANAGER})
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    outcome, events = run_text(store, HEAD + GOOGLE_STEP.replace("    project_id: p\n", ""))
    assert outcome.status == "FAILED"
    error = one(events, "step_failed", "get_key").error or ""
    assert "project_id" in error and "GOOGLE_CLOUD_PROJECT" in error
    assert [e.event_type for e in events if e.node_name == "get_key"].count("action_started") == 1

    outcome, events = run_text(store, HEAD + GOOGLE_STEP)  # project p has no secret `s`
    assert outcome.status == "FAILED"
    failed = one(events, "step_failed", "get_key")
    assert "projects/p/secrets/s/versions/latest" in (failed.error or "")
    assert failed.meta["error_type"] == "NotFound"
    assert [e.event_type for e in events if e.node_name == "get_key"].count("action_started") == 1
