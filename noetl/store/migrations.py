"""Schema migrations of the PostgreSQL store: numbered files of sql/postgres/, each applied once."""

from __future__ import annotations

from noetl.store.pg_pool import ConnectionPool
from noetl.store.sqlfiles import migrations

FOLDER = "postgres"

# Every server runs migrate() at start; the transaction-scoped lock makes the second one wait, then find
# the files recorded and skip them, instead of racing the first one through CREATE TABLE.
LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('noetl_schema_migrations', 0))"
CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS noetl_schema_migrations "
    "(name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
)
IS_APPLIED = "SELECT 1 FROM noetl_schema_migrations WHERE name = %(name)s"
RECORD = "INSERT INTO noetl_schema_migrations (name) VALUES (%(name)s)"


def migrate(pool: ConnectionPool) -> list[str]:
    """Apply, in name order, every migration not yet recorded; each in its own transaction. Returns their names.

    Idempotent, and safe when several processes start at once.
    """
    applied: list[str] = []
    with pool.connection() as conn:
        for name, sql in migrations(FOLDER):
            with conn.transaction():
                conn.execute(LOCK)
                conn.execute(CREATE_TABLE)
                if conn.execute(IS_APPLIED, {"name": name}).fetchone():
                    continue
                conn.execute(sql)  # no parameters: a file may hold several statements and a literal %
                conn.execute(RECORD, {"name": name})
            applied.append(name)
    return applied
