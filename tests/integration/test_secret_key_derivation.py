"""NOETL_SECRET_KEY as a passphrase (issue 9): stretched with scrypt and a random salt kept in the store,
derived once per process, on SQLite and on PostgreSQL; stores written before (credentials and sealed
values encrypted with the SHA-256 of the passphrase) still decrypt and are re-encrypted when the key is
first derived; a Fernet key is used as it is. And the files NoETL creates are its owner's alone."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet, InvalidToken

from noetl.errors import CredentialError
from noetl.store import crypto, open_store
from noetl.store.sqlfiles import migrations

PASSPHRASE = "correct horse battery staple"


def legacy(secret: str = PASSPHRASE) -> Fernet:
    """How NoETL turned a passphrase into the key before: one unsalted SHA-256."""
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()))


class Raw:
    """The database under a store, read and written without NoETL: what a thief (or an old version) sees."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = not url.startswith("postgresql://")

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.sqlite:
            with sqlite3.connect(self.url) as conn:
                return conn.execute(sql.replace("%s", "?"), params).fetchall()
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def table(self, name: str) -> str:
        return name if self.sqlite else f"noetl_{name}"

    def setting(self, name: str) -> str | None:
        rows = self._run(f"SELECT value FROM {self.table('settings')} WHERE name = %s", (name,))
        return rows[0][0] if rows else None

    def credential_token(self, name: str) -> bytes:
        return bytes(
            self._run(f"SELECT data FROM {self.table('credentials')} WHERE name = %s", (name,))[0][0]
        )

    def sealed_token(self, execution_id: str, name: str) -> bytes:
        sql = f"SELECT data FROM {self.table('sealed_values')} WHERE execution_id = %s AND name = %s"
        return bytes(self._run(sql, (execution_id, name))[0][0])

    def put_credential(self, name: str, token: bytes) -> None:
        self._run(
            f"INSERT INTO {self.table('credentials')} (name, type, data, updated_at) VALUES (%s, %s, %s, %s)",
            (name, "bearer", token, "2026-01-01T00:00:00+00:00"),
        )

    def put_sealed(self, execution_id: str, name: str, token: bytes) -> None:
        self._run(
            f"INSERT INTO {self.table('sealed_values')} (execution_id, name, data) VALUES (%s, %s, %s)",
            (execution_id, name, token),
        )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(tmp_path / "noetl.db") if request.param == "sqlite" else request.getfixturevalue("pg_dsn")


@pytest.fixture(autouse=True)
def passphrase(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(crypto.KEY_ENV, PASSPHRASE)
    crypto.derive_key.cache_clear()  # each test derives for itself
    yield
    crypto.derive_key.cache_clear()


def old_store(url: str) -> Raw:
    """A store as NoETL wrote it before the salt: no settings, rows under the SHA-256 key."""
    raw = Raw(url)
    if raw.sqlite:
        open_store(url).close()
        raw._run("DROP TABLE settings")
    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE noetl_schema_migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ)"
            )
            for name, sql in migrations("postgres"):
                if name < "007":  # the migrations that existed then
                    conn.execute(sql)
                    conn.execute("INSERT INTO noetl_schema_migrations (name) VALUES (%s)", (name,))
    raw.put_credential("api", legacy().encrypt(json.dumps({"token": "old-token-1234"}).encode()))
    raw.put_sealed("x1", "workload", legacy().encrypt(json.dumps({"value": {"pw": "old-pw-5678"}}).encode()))
    return raw


def test_a_passphrase_is_stretched_with_the_stores_own_salt(url: str) -> None:
    store = open_store(url)
    try:
        store.put_credential("api", "bearer", {"token": "new-token-1234"})
        store.seal("x1", "workload", {"pw": "new-pw-5678"})
        assert store.get_credential("api").data == {"token": "new-token-1234"}  # type: ignore[union-attr]
    finally:
        store.close()
    raw = Raw(url)
    token = raw.credential_token("api")
    with pytest.raises(InvalidToken):  # the SHA-256 of the passphrase no longer opens it
        legacy().decrypt(token)
    params = json.loads(raw.setting(crypto.KDF_SETTING) or "{}")
    assert params["kdf"] == "scrypt" and params["n"] >= 2**17 and params["r"] >= 8
    assert len(base64.b64decode(params["salt"])) == 16
    stretched = hashlib.scrypt(
        PASSPHRASE.encode(),
        salt=base64.b64decode(params["salt"]),
        n=params["n"],
        r=params["r"],
        p=params["p"],
        maxmem=2**28,
        dklen=32,
    )
    key = Fernet(base64.urlsafe_b64encode(stretched))
    assert json.loads(key.decrypt(token)) == {"token": "new-token-1234"}
    assert json.loads(key.decrypt(raw.sealed_token("x1", "workload"))) == {"value": {"pw": "new-pw-5678"}}


def test_each_store_has_a_salt_of_its_own(tmp_path: Path) -> None:
    salts = []
    for name in ("a.db", "b.db"):
        store = open_store(str(tmp_path / name))
        try:
            store.put_credential("api", "bearer", {"token": "same-token"})
        finally:
            store.close()
        salts.append(json.loads(Raw(str(tmp_path / name)).setting(crypto.KDF_SETTING) or "{}")["salt"])
    assert salts[0] != salts[1]
    # The same passphrase, yet one store's key does not open the other's rows.
    a, b = Raw(str(tmp_path / "a.db")), Raw(str(tmp_path / "b.db"))
    b._run("DELETE FROM credentials")
    b.put_credential("api", a.credential_token("api"))
    store = open_store(str(tmp_path / "b.db"))
    try:
        with pytest.raises(CredentialError, match="cannot be decrypted"):
            store.get_credential("api")
    finally:
        store.close()


def test_the_key_is_derived_once_per_process_not_per_read(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = hashlib.scrypt

    def counting(*args: Any, **kwargs: Any) -> bytes:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    first, second = open_store(url), open_store(url)
    try:
        for n in range(10):
            first.put_credential(f"c{n}", "bearer", {"token": f"token-{n}-value"})
            first.seal("x", f"s{n}", n)
        for n in range(10):
            assert second.get_credential(f"c{n}").data == {"token": f"token-{n}-value"}  # type: ignore[union-attr]
            assert second.unseal("x", f"s{n}") == n
    finally:
        first.close()
        second.close()
    assert len(calls) == 1


def test_a_store_written_before_decrypts_and_is_encrypted_again(url: str) -> None:
    raw = old_store(url)
    before = raw.credential_token("api")
    store = open_store(url)  # PostgreSQL: migration 007 adds the settings table
    try:
        assert store.get_credential("api").data == {"token": "old-token-1234"}  # type: ignore[union-attr]
        assert store.unseal("x1", "workload") == {"pw": "old-pw-5678"}
    finally:
        store.close()
    assert raw.setting(crypto.REKEYED_SETTING) is not None
    for token in (raw.credential_token("api"), raw.sealed_token("x1", "workload")):
        assert token != before
        with pytest.raises(InvalidToken):  # no row is left under the weak key
            legacy().decrypt(token)

    # A process of the older version, still running, writes a row the old way: it is read all the same,
    # and stored again under the stretched key.
    raw.put_credential("late", legacy().encrypt(json.dumps({"token": "late-token-99"}).encode()))
    crypto.derive_key.cache_clear()
    store = open_store(url)
    try:
        assert store.get_credential("late").data == {"token": "late-token-99"}  # type: ignore[union-attr]
        store.put_credential("late", "bearer", {"token": "late-token-99"})
    finally:
        store.close()
    with pytest.raises(InvalidToken):
        legacy().decrypt(raw.credential_token("late"))


def test_a_wrong_passphrase_leaves_an_old_store_for_the_right_one(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = old_store(url)
    monkeypatch.setenv(crypto.KEY_ENV, "not the passphrase")
    store = open_store(url)
    try:
        with pytest.raises(CredentialError, match="cannot be decrypted with this key"):
            store.get_credential("api")
    finally:
        store.close()
    assert raw.setting(crypto.REKEYED_SETTING) is None  # nothing could be re-encrypted: try again later
    monkeypatch.setenv(crypto.KEY_ENV, PASSPHRASE)
    store = open_store(url)
    try:
        assert store.get_credential("api").data == {"token": "old-token-1234"}  # type: ignore[union-attr]
    finally:
        store.close()
    assert raw.setting(crypto.REKEYED_SETTING) is not None


def test_a_fernet_key_is_used_as_it_is(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    key = Fernet.generate_key()
    monkeypatch.setenv(crypto.KEY_ENV, key.decode())
    store = open_store(url)
    try:
        store.put_credential("api", "bearer", {"token": "tok-1234"})
        assert store.get_credential("api").data == {"token": "tok-1234"}  # type: ignore[union-attr]
    finally:
        store.close()
    raw = Raw(url)
    assert json.loads(Fernet(key).decrypt(raw.credential_token("api"))) == {"token": "tok-1234"}
    assert raw.setting(crypto.KDF_SETTING) is None  # no derivation, no salt


@pytest.mark.postgres
def test_hosts_starting_at_once_agree_on_one_salt(pg_dsn: str) -> None:
    stores = [open_store(pg_dsn) for _ in range(3)]
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def first_use(n: int) -> None:
        try:
            barrier.wait()
            stores[n].put_credential(f"c{n}", "bearer", {"token": f"token-of-{n}"})
        except BaseException as exc:
            errors.append(exc)

    # As three hosts would: the first to store the salt wins, the others read it.
    threads = [threading.Thread(target=first_use, args=(n,)) for n in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors, errors
        crypto.derive_key.cache_clear()
        reader = open_store(pg_dsn)
        try:
            for n in range(len(stores)):
                assert reader.get_credential(f"c{n}").data == {"token": f"token-of-{n}"}  # type: ignore[union-attr]
        finally:
            reader.close()
    finally:
        for s in stores:
            s.close()


def test_the_store_its_journal_and_its_key_file_are_created_0600(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(crypto.KEY_ENV)  # the key file is made only without the variable
    old_mask = os.umask(0)  # even a permissive umask does not open them up
    try:
        store = open_store(str(tmp_path / "state" / "noetl.db"))
        try:
            store.put_credential("c", "bearer", {"token": "t-1234"})  # creates secret.key
            store.seal("x", "s", "v")
            names = sorted(p.name for p in (tmp_path / "state").iterdir())
            assert names == ["noetl.db", "noetl.db-shm", "noetl.db-wal", "secret.key"], names
            for name in names:
                mode = stat.S_IMODE((tmp_path / "state" / name).stat().st_mode)
                assert mode == 0o600, (name, oct(mode))
        finally:
            store.close()
    finally:
        os.umask(old_mask)


def test_stores_opened_at_once_share_one_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(crypto.KEY_ENV)
    path = str(tmp_path / "noetl.db")
    stores = [open_store(path) for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def first_use(n: int) -> None:
        try:
            barrier.wait()
            stores[n].put_credential(f"c{n}", "bearer", {"token": f"token-of-{n}"})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(n,)) for n in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors, errors
        for n in range(len(stores)):
            assert stores[0].get_credential(f"c{n}").data == {"token": f"token-of-{n}"}  # type: ignore[union-attr]
        assert sorted(p.name for p in tmp_path.iterdir() if "secret" in p.name) == ["secret.key"]
    finally:
        for s in stores:
            s.close()
