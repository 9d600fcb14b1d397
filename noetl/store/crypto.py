"""Encryption at rest for credentials: a Fernet key from NOETL_SECRET_KEY or a key file beside the store."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from noetl.errors import CredentialError

KEY_ENV = "NOETL_SECRET_KEY"


def _fernet_from_secret(secret: str) -> Fernet:
    try:
        return Fernet(secret.encode())
    except ValueError:
        # Any passphrase works: it is stretched into a key, so users need not generate Fernet keys.
        digest = hashlib.sha256(secret.encode()).digest()
        return Fernet(base64.urlsafe_b64encode(digest))


def load_cipher(key_file: Path | None) -> Fernet:
    secret = os.environ.get(KEY_ENV)
    if secret:
        return _fernet_from_secret(secret)
    if key_file is None:
        raise CredentialError(f"set {KEY_ENV} to encrypt credentials in this store")
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(Fernet.generate_key())
    return Fernet(key_file.read_bytes().strip())


def encrypt(cipher: Fernet, data: dict[str, Any]) -> bytes:
    return cipher.encrypt(json.dumps(data).encode())


def decrypt(cipher: Fernet, token: bytes, name: str) -> dict[str, Any]:
    try:
        value: dict[str, Any] = json.loads(cipher.decrypt(token))
    except InvalidToken:
        raise CredentialError(
            f"credential {name!r} cannot be decrypted with this key; set {KEY_ENV} to the key it was stored with"
        ) from None
    return value
