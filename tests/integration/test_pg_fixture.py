"""The throwaway PostgreSQL the suite starts is real and gives every test its own database."""

import psycopg


def test_each_test_gets_an_empty_database(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
        version = conn.execute("SHOW server_version_num").fetchone()
    assert tables == (0,)
    assert version is not None and int(version[0]) >= 150000
