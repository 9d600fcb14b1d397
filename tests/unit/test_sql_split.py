"""The SQL splitter and the `:name` conversion read quotes, dollar bodies and comments as a database does."""

from __future__ import annotations

import pytest

from noetl.actions.sql_split import bind_named, placeholder_names, split_commands, split_statements


def test_splits_on_semicolons_and_drops_empty_statements() -> None:
    sql = "CREATE TABLE t (a int);\n\nINSERT INTO t VALUES (1);;  SELECT * FROM t;\n"
    assert split_statements(sql) == ["CREATE TABLE t (a int)", "INSERT INTO t VALUES (1)", "SELECT * FROM t"]


def test_a_statement_without_a_final_semicolon_is_kept() -> None:
    assert split_statements("SELECT 1; SELECT 2") == ["SELECT 1", "SELECT 2"]


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO t VALUES ('a;b')",
        "INSERT INTO t VALUES ('it''s; fine')",
        "INSERT INTO t VALUES (E'back\\'slash; still a string')",
        'SELECT 1 AS "odd;name"',
        'SELECT 1 AS "with ""quotes""; inside"',
        "SELECT 1 -- a comment; not a separator\n + 1",
        "SELECT /* a; b /* nested; */ still comment; */ 1",
        "CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END; $$ LANGUAGE plpgsql",
        "DO $body$ BEGIN PERFORM 1; RAISE NOTICE '$$;'; END $body$",
    ],
)
def test_semicolons_inside_quotes_bodies_and_comments_do_not_split(statement: str) -> None:
    assert split_statements(f"{statement}; SELECT 2") == [statement, "SELECT 2"]


def test_a_dollar_tag_needs_its_own_closing_tag() -> None:
    sql = "SELECT $a$ text with $$; inside $a$; SELECT 2"
    assert split_statements(sql) == ["SELECT $a$ text with $$; inside $a$", "SELECT 2"]


def test_positional_parameters_and_dollar_identifiers_are_not_dollar_quotes() -> None:
    assert split_statements("SELECT $1; SELECT a$b$ FROM t; SELECT 3") == [
        "SELECT $1",
        "SELECT a$b$ FROM t",
        "SELECT 3",
    ]


def test_a_trailing_comment_is_not_a_statement() -> None:
    assert split_statements("SELECT 1; -- done\n/* really */") == ["SELECT 1"]


def test_an_unterminated_string_is_left_to_the_database() -> None:
    assert split_statements("SELECT 'open; SELECT 2") == ["SELECT 'open; SELECT 2"]


def test_split_commands_accepts_a_string_or_a_list() -> None:
    assert split_commands("SELECT 1; SELECT 2") == ["SELECT 1", "SELECT 2"]
    assert split_commands(["SELECT 1; SELECT 2", "SELECT 3"]) == ["SELECT 1", "SELECT 2", "SELECT 3"]
    with pytest.raises(ValueError, match="list of SQL texts"):
        split_commands({"sql": "SELECT 1"})


def test_names_become_psycopg_placeholders_and_percent_is_doubled() -> None:
    bound = bind_named("SELECT :a, :b::text, '%' || :a WHERE x LIKE 'a%'", {"a", "b"}, "pyformat")
    assert bound.text == "SELECT %(a)s, %(b)s::text, '%%' || %(a)s WHERE x LIKE 'a%%'"
    assert bound.names == ("a", "b")


def test_names_become_duckdb_parameters() -> None:
    bound = bind_named("SELECT :a + :b", {"a", "b"}, "dollar")
    assert bound.text == "SELECT $a + $b"
    assert bound.names == ("a", "b")


def test_casts_strings_comments_and_unknown_names_are_left_alone() -> None:
    sql = "SELECT x::int, ':a', \":a\", :other /* :a */ -- :a\n, $$ :a $$, arr[1:a] FROM t WHERE v = :a"
    bound = bind_named(sql, {"a"}, "dollar")
    expected = "SELECT x::int, ':a', \":a\", :other /* :a */ -- :a\n, $$ :a $$, arr[1:a] FROM t WHERE v = $a"
    assert bound.text == expected
    assert bound.names == ("a",)


def test_sql_that_binds_nothing_is_untouched() -> None:
    sql = "SELECT '100%' FROM t WHERE a = :missing"
    assert bind_named(sql, {"a"}, "pyformat").text == sql
    assert bind_named(sql, {"a"}, "pyformat").names == ()


def test_placeholder_names_lists_each_name_once_in_order() -> None:
    assert placeholder_names("INSERT INTO t VALUES (:b, :a, :b, 'x:c', y::date)") == ["b", "a"]
