"""SQL identifier rules shared by validation (load time) and the save writers (run time)."""

from __future__ import annotations

import re

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_identifier(name: str) -> bool:
    return bool(_IDENT.match(name)) and len(name) <= 63


def is_table_name(name: str) -> bool:
    parts = name.split(".")
    return 1 <= len(parts) <= 2 and all(is_identifier(p) for p in parts)
