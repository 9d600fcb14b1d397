"""DuckDB steps writing to gs:// and s3:// on a real S3-compatible server (moto on 127.0.0.1), through
secrets made from `auth` aliases, and INSTALL/LOAD of extensions that work offline."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import duckdb
import pytest

from noetl.actions.duckdb_extensions import configure, extension_directory, merged_directory
from noetl.engine.events import Event
from tests.helpers import run_text, types_of

KEY_ID = "GOOG1EKEYID0001"
SECRET = "Hmac-Secret-7781/xyz'quote"  # a quote too: it goes into CREATE SECRET as an escaped literal


@pytest.fixture(autouse=True)
def _private_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default DuckDB files (one per execution, under the temp folder) go to this test's folder."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def _read_back(url: str, secret_type: str, endpoint: str, scope: str) -> list[tuple[Any, ...]]:
    """The rows of a parquet object, read by a fresh DuckDB through its own secret."""
    with duckdb.connect() as con:
        configure(con)
        con.execute(
            f"CREATE SECRET reader (TYPE {secret_type}, KEY_ID 'reader', SECRET 'reader', "
            f"ENDPOINT '{endpoint}', URL_STYLE 'path', USE_SSL false, REGION 'us-east-1', SCOPE '{scope}')"
        )
        return con.execute("SELECT * FROM read_parquet(?) ORDER BY 1", [url]).fetchall()


def _object(endpoint: str, bucket: str, key: str) -> bytes:
    """The object's bytes, by another S3 client (boto3, which moto brings): it is on the server."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=f"http://{endpoint}",
        aws_access_key_id="other",
        aws_secret_access_key="other",
        region_name="us-east-1",
    )
    body: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def _assert_secret_absent(events: list[Event], *values: str) -> None:
    assert events
    for event in events:
        text = json.dumps(asdict(event), default=str)
        for value in values:
            assert value not in text, f"{value!r} leaked into {event.event_type}"


def _error(events: list[Event]) -> str:
    return next(e for e in events if e.event_type == "step_failed").error or ""


GCS = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: duck_gcs}
workload: {bucket: BUCKET, endpoint: ENDPOINT}
workflow:
  - step: start
    next: [{step: export}]
  - step: export
    type: duckdb
    auth:
      gcs:
        type: gcs_hmac
        key: my_hmac
        scope: "gs://{{ workload.bucket }}"
        endpoint: "{{ workload.endpoint }}"
        url_style: path
        use_ssl: "false"
    command: |
      CREATE TABLE cities AS SELECT * FROM (VALUES (1, 'London', 11.5), (2, 'Paris', 15.0)) t(id, city, temp);
      COPY cities TO 'gs://{{ workload.bucket }}/x.parquet' (FORMAT PARQUET);
      SELECT name, type, scope FROM duckdb_secrets();
    next: [{step: end}]
  - step: end
    result: {secrets: "{{ export.command_2.rows }}"}
"""


def test_a_gcs_hmac_alias_becomes_a_gcs_secret_and_copy_writes_to_the_bucket(
    store: Any, s3_server: str, s3_bucket: str
) -> None:
    # The credential's endpoint leads nowhere: the settings in the auth spec must win over it.
    store.put_credential(
        "my_hmac", "gcs_hmac", {"key_id": KEY_ID, "secret_key": SECRET, "endpoint": "127.0.0.1:9"}
    )
    playbook = GCS.replace("BUCKET", s3_bucket).replace("ENDPOINT", s3_server)
    outcome, events = run_text(store, playbook)
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == {"secrets": [{"name": "gcs", "type": "gcs", "scope": [f"gs://{s3_bucket}"]}]}
    copied = next(e for e in events if e.event_type == "action_completed" and e.node_name == "export")
    assert copied.result["command_1"]["row_count"] == 2
    assert _object(s3_server, s3_bucket, "x.parquet")[:4] == b"PAR1"
    rows = _read_back(f"gs://{s3_bucket}/x.parquet", "gcs", s3_server, f"gs://{s3_bucket}")
    assert rows == [(1, "London", 11.5), (2, "Paris", 15.0)]
    _assert_secret_absent(events, SECRET, SECRET.replace("'", "''"))


S3 = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: duck_s3}
workload: {bucket: BUCKET}
workflow:
  - step: start
    next: [{step: export}]
  - step: export
    type: duckdb
    auth: {lake: my_s3}
    command: |
      COPY (SELECT range AS n, range * range AS square FROM range(4)) TO 's3://{{ workload.bucket }}/y.parquet' (FORMAT PARQUET);
      SELECT sum(square) AS total FROM read_parquet('s3://{{ workload.bucket }}/y.parquet');
    next: [{step: end}]
  - step: end
    result: {total: "{{ export.command_1.rows[0].total }}"}
"""


def test_an_s3_alias_with_its_settings_in_the_credential_writes_to_s3(
    store: Any, s3_server: str, s3_bucket: str
) -> None:
    store.put_credential(
        "my_s3",
        "s3",
        {
            "access_key_id": "AKIAEXAMPLE",
            "secret_access_key": SECRET,
            "region": "us-east-1",
            "endpoint": s3_server,
            "url_style": "path",
            "use_ssl": False,
            "scope": f"s3://{s3_bucket}",
        },
    )
    outcome, events = run_text(store, S3.replace("BUCKET", s3_bucket))
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == {"total": 0 + 1 + 4 + 9}  # read back in the step, through the alias
    assert _object(s3_server, s3_bucket, "y.parquet")[:4] == b"PAR1"
    rows = _read_back(f"s3://{s3_bucket}/y.parquet", "s3", s3_server, f"s3://{s3_bucket}")
    assert rows == [(0, 0), (1, 1), (2, 4), (3, 9)]
    _assert_secret_absent(events, SECRET, SECRET.replace("'", "''"))


@pytest.mark.parametrize(
    ("stored", "auth"),
    [
        ("ftp", "{lake: my_s3}"),  # the credential's own type
        ("s3", "{lake: {type: ftp, key: my_s3}}"),  # the auth spec's type wins over it
    ],
)
def test_an_alias_of_an_unsupported_type_fails_naming_the_supported_types(
    store: Any, stored: str, auth: str
) -> None:
    store.put_credential("my_s3", stored, {"key_id": KEY_ID, "secret_key": SECRET})
    outcome, events = run_text(store, S3.replace("BUCKET", "b").replace("{lake: my_s3}", auth))
    assert outcome.status == "FAILED"
    error = _error(events)
    assert "type ftp" in error and "supports credentials of type postgres, gcs_hmac, hmac, gcs, s3" in error
    assert "action_retry" not in types_of(events)
    _assert_secret_absent(events, SECRET)


def test_a_storage_alias_without_a_secret_key_fails_naming_the_fields(store: Any) -> None:
    store.put_credential("my_s3", "hmac", {"key_id": KEY_ID})
    outcome, events = run_text(store, S3.replace("BUCKET", "b"))
    assert outcome.status == "FAILED"
    assert "needs key_id and secret_key" in _error(events)


INSTALL = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: duck_install}
workflow:
  - step: start
    next: [{step: extensions}]
  - step: extensions
    type: duckdb
    command: |
      SQL
    next: [{step: end}]
  - step: end
    result: {loaded: "{{ extensions.command_4.rows }}"}
"""


def test_install_and_load_of_the_packaged_extensions_work_offline(store: Any) -> None:
    sql = (
        "INSTALL httpfs; LOAD httpfs; INSTALL postgres; LOAD postgres;\n"
        "      SELECT extension_name, loaded, install_path FROM duckdb_extensions()"
        " WHERE extension_name IN ('httpfs', 'postgres_scanner') ORDER BY 1;"
    )
    outcome, _ = run_text(store, INSTALL.replace("SQL", sql))
    assert outcome.status == "COMPLETED", outcome.error
    directory = extension_directory()
    assert directory is not None
    loaded = outcome.result["loaded"]
    assert [(r["extension_name"], r["loaded"]) for r in loaded] == [
        ("httpfs", True),
        ("postgres_scanner", True),
    ]
    for row in loaded:  # read from the pip packages' files, not from ~/.duckdb or a download
        assert Path(row["install_path"]).is_file()
        assert Path(row["install_path"]).is_relative_to(directory), row


@pytest.mark.parametrize("sql", ["INSTALL spatial;", "LOAD spatial;"])
def test_an_extension_that_is_not_installed_fails_naming_its_pip_package(store: Any, sql: str) -> None:
    outcome, events = run_text(store, INSTALL.replace("SQL", sql))
    assert outcome.status == "FAILED"
    error = _error(events)
    assert f"install the pip package duckdb-ext-spatial=={duckdb.__version__}.*" in error, error
    assert "Failed to download" not in error  # INSTALL never tried the network
    assert "action_retry" not in types_of(events)


def test_force_install_of_a_packaged_extension_says_it_comes_from_pip(store: Any) -> None:
    outcome, events = run_text(store, INSTALL.replace("SQL", "FORCE INSTALL httpfs;"))
    assert outcome.status == "FAILED"
    error = _error(events)
    assert "is installed from the pip package duckdb-ext-httpfs" in error, error
    assert "not FORCE INSTALL" in error


def test_the_installed_packages_give_one_directory_with_both_extensions() -> None:
    directory = extension_directory()
    assert directory is not None
    names = {p.name for p in directory.glob(f"v{duckdb.__version__}/*/*.duckdb_extension")}
    assert {"httpfs.duckdb_extension", "postgres_scanner.duckdb_extension"} <= names


def test_extensions_from_packages_in_several_folders_are_merged_into_one_directory(tmp_path: Path) -> None:
    """The duckdb_ext namespace package split over two folders (one wheel each) still loads both."""
    real = extension_directory()
    assert real is not None
    folders = []
    for name in ("httpfs", "postgres_scanner"):
        source = next(real.glob(f"v{duckdb.__version__}/*/{name}.duckdb_extension"))
        folder = tmp_path / name / "duckdb_ext" / "extensions"
        target = folder / source.relative_to(real)
        target.parent.mkdir(parents=True)
        os.symlink(source, target)
        folders.append(folder)
    assert merged_directory([folders[0]]) == folders[0]
    assert merged_directory([tmp_path / "nothing"]) is None
    merged = merged_directory([tmp_path / "nothing", *folders])
    assert merged is not None and merged not in folders
    with duckdb.connect() as con:
        con.execute("SET extension_directory = ?", [str(merged)])
        con.execute("SET custom_extension_repository = ?", [str(tmp_path / "no-repository")])
        con.execute("SET autoinstall_known_extensions = false")
        for sql in ("INSTALL httpfs", "LOAD httpfs", "INSTALL postgres", "LOAD postgres"):
            con.execute(sql)
        paths = con.execute(
            "SELECT install_path FROM duckdb_extensions() WHERE loaded"
            " AND extension_name IN ('httpfs', 'postgres_scanner') ORDER BY 1"
        ).fetchall()
    assert [Path(p).name for (p,) in paths] == [
        "httpfs.duckdb_extension",
        "postgres_scanner.duckdb_extension",
    ]
    assert all(Path(p).is_relative_to(merged) for (p,) in paths)
