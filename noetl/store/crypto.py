"""Encryption at rest for credentials: a Fernet key from NOETL_SECRET_KEY or a key file beside the store.

`NOETL_SECRET_KEY` is either a Fernet key (used as it is) or a passphrase, stretched into the key with
scrypt and a random salt kept in the store (the `kdf` setting): a stolen row costs an attacker a slow
derivation per guess, not one SHA-256. Stores written before the salt existed encrypted with the
SHA-256 of the passphrase: their rows still decrypt, and are re-encrypted with the stretched key the
first time a process derives it (`rekey`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import secrets
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from noetl.errors import CredentialError

KEY_ENV = "NOETL_SECRET_KEY"
KDF_SETTING = "kdf"  # the derivation's name, parameters and salt (JSON), one per store
REKEYED_SETTING = "kdf_rekeyed"  # set once every row encrypted the old way was re-encrypted

# OWASP's minimum for scrypt (128 MiB, about 0.3 s on one core); stored with the salt, so that a later
# version may raise them without making older rows unreadable.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1
PBKDF2_ITERATIONS = 600_000  # where this Python's OpenSSL has no scrypt
_SALT_BYTES = 16
_MAX_MEMORY = 2**28

Cipher = Fernet | MultiFernet


@dataclass(frozen=True)
class Keyring:
    """What a store offers the key's derivation: its settings and its encrypted rows.

    `add(name, value)` stores the value unless the setting exists and returns the stored one, so two
    processes adding a salt at once agree on the first. `tokens()` lists every encrypted row as
    (its key, its token); `replace(key, old, new)` writes the new token unless the row changed meanwhile
    (a credential stored again while the rows were re-encrypted keeps its new value).
    """

    read: Callable[[str], str | None]
    add: Callable[[str, str], str]
    tokens: Callable[[], list[tuple[Any, bytes]]]
    replace: Callable[[Any, bytes, bytes], None]


_lock = threading.Lock()  # one derivation (and one re-encryption) at a time, per process


def load_cipher(key_file: Path | None, keyring: Keyring | None = None) -> Cipher:
    """The store's cipher. A passphrase needs `keyring` (its salt is kept in the store)."""
    secret = os.environ.get(KEY_ENV)
    if secret:
        raw = _fernet_key(secret)
        if raw is not None:
            return raw
        if keyring is None:
            raise CredentialError(f"{KEY_ENV} holds a passphrase, which this store cannot stretch")
        with _lock:
            return _passphrase_cipher(secret, keyring)
    if key_file is None:
        raise CredentialError(f"set {KEY_ENV} to encrypt credentials in this store")
    return _key_file(key_file)


def _fernet_key(secret: str) -> Fernet | None:
    """The key itself when NOETL_SECRET_KEY is one (32 bytes, url-safe base64), else None."""
    try:
        return Fernet(secret.encode())
    except (ValueError, binascii.Error):
        return None


def legacy_fernet(secret: str) -> Fernet:
    """The key NoETL derived from a passphrase before it had a salt: one SHA-256. Only to read old rows."""
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()))


def _passphrase_cipher(secret: str, keyring: Keyring) -> MultiFernet:
    params = keyring.read(KDF_SETTING) or keyring.add(KDF_SETTING, new_kdf_params())
    new = Fernet(derive_key(secret, params))
    legacy = legacy_fernet(secret)
    if keyring.read(REKEYED_SETTING) is None and not rekey(keyring, new, legacy):
        # Not set while some row decrypts with neither key: the right passphrase may come later.
        keyring.add(REKEYED_SETTING, datetime.now(UTC).isoformat())
    # New rows are encrypted with the first; rows an older version writes still decrypt with the second.
    return MultiFernet([new, legacy])


def rekey(keyring: Keyring, new: Fernet, legacy: Fernet) -> int:
    """Re-encrypt with `new` every row encrypted with `legacy`; returns how many rows neither decrypts."""
    unreadable = 0
    for key, token in keyring.tokens():
        try:
            new.decrypt(token)
            continue  # already under the stretched key
        except InvalidToken:
            pass
        try:
            value = legacy.decrypt(token)
        except InvalidToken:
            unreadable += 1  # stored with another key: left as it is
            continue
        keyring.replace(key, token, new.encrypt(value))
    return unreadable


def new_kdf_params() -> str:
    """A fresh salt and this version's parameters, as the `kdf` setting stores them."""
    salt = base64.b64encode(secrets.token_bytes(_SALT_BYTES)).decode()
    if hasattr(hashlib, "scrypt"):
        return json.dumps({"kdf": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": salt})
    return json.dumps({"kdf": "pbkdf2_sha256", "iterations": PBKDF2_ITERATIONS, "salt": salt})


@lru_cache(maxsize=16)
def derive_key(secret: str, params: str) -> bytes:
    """The Fernet key of a passphrase under a store's `kdf` setting. Slow on purpose, so cached: once
    per process and store, not per credential read."""
    try:
        p = json.loads(params)
        salt = base64.b64decode(p["salt"])
        if p["kdf"] == "scrypt":
            raw = hashlib.scrypt(
                secret.encode(), salt=salt, n=p["n"], r=p["r"], p=p["p"], maxmem=_MAX_MEMORY, dklen=32
            )
        elif p["kdf"] == "pbkdf2_sha256":
            raw = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, p["iterations"], dklen=32)
        else:
            raise ValueError(f"unknown kdf {p['kdf']!r}")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CredentialError(
            f"the store's key derivation setting cannot be used ({exc}); it was written by another NoETL "
            "version, or changed by hand"
        ) from None
    return base64.urlsafe_b64encode(raw)


def _key_file(key_file: Path) -> Fernet:
    """The key in `key_file`, made (mode 0600) when there is none. Written whole under a temporary name,
    then linked in place: a process starting at the same time reads the one key, never a partial file."""
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".secret-", dir=key_file.parent)  # mkstemp: mode 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key())
                handle.flush()
                os.fsync(handle.fileno())
            _link(temporary, key_file)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
    try:
        return Fernet(key_file.read_bytes().strip())
    except (ValueError, binascii.Error):
        raise CredentialError(
            f"{key_file} is not a key file (a Fernet key); restore it, or set {KEY_ENV} to the key the "
            "credentials were stored with"
        ) from None


def _link(temporary: str, key_file: Path) -> None:
    try:
        os.link(temporary, key_file)
    except FileExistsError:
        pass  # another process made it first: use theirs
    except OSError:  # a file system without hard links
        if not key_file.exists():
            os.replace(temporary, key_file)


def encrypt(cipher: Cipher, data: dict[str, Any]) -> bytes:
    return cipher.encrypt(json.dumps(data).encode())


def decrypt(cipher: Cipher, token: bytes, name: str) -> dict[str, Any]:
    try:
        value: dict[str, Any] = json.loads(cipher.decrypt(token))
    except InvalidToken:
        raise CredentialError(
            f"credential {name!r} cannot be decrypted with this key; set {KEY_ENV} to the key it was stored with"
        ) from None
    return value
