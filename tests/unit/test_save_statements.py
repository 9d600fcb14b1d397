"""The statements a SQL save runs: a batch's rows planned in one pass (as the per-item plans merged
would be) and sent as multi-row INSERTs, split where one statement could not take them."""

from __future__ import annotations

from typing import Any

import pytest

from noetl.actions.save import postgres_storage
from noetl.actions.save.postgres_storage import POSTGRES, _multi_row
from noetl.actions.save.request import SaveRequest
from noetl.actions.save.sql_rows import Work, insert_many_sql, merged, plan, plan_many
from noetl.dsl.models import SaveSpec
from noetl.errors import SaveError

UPSERT = SaveSpec(storage="postgres", mode="upsert", table="items", key=("id",))


def request(args: Any, spec: SaveSpec = UPSERT, table: str = "items") -> SaveRequest:
    return SaveRequest(spec=spec, args=args, table=table, statement=None)


def upsert_work(rows: list[dict[str, Any]]) -> Work:
    (work,) = plan(request(rows), POSTGRES)
    return work


def test_a_batch_is_planned_as_the_merged_plans_of_its_items() -> None:
    statement = SaveSpec(storage="postgres", mode="statement", statement="UPDATE t SET v = :v WHERE id = :id")
    requests = [
        request({"id": 1, "value": "a"}),
        request([{"id": 2, "value": "b"}, {"id": 3, "value": "c"}]),
        request({"id": 4}),  # other columns: a statement of its own
        request({"id": 5, "value": "e"}, table="other"),
        request({"id": 6, "value": "f"}, table="other"),
        request({"id": 7, "value": "g"}),
    ]
    expected = merged([w for r in requests for w in plan(r, POSTGRES)])
    assert plan_many(requests, POSTGRES) == expected
    assert [(w.shape[0] if w.shape else None, w.count) for w in expected] == [
        (("items",), 3),
        (("items",), 1),
        (("other",), 2),
        (("items",), 1),
    ]
    with_statement = [
        *requests,
        SaveRequest(spec=statement, args={"id": 1, "v": 2}, table=None, statement=statement.statement),
    ]
    assert plan_many(with_statement, POSTGRES) == merged(
        [w for r in with_statement for w in plan(r, POSTGRES)]
    )


def test_a_bad_row_anywhere_in_a_batch_is_refused_before_anything_is_written() -> None:
    with pytest.raises(SaveError, match=r"row 1 lacks key column\(s\) id"):
        plan_many([request({"id": 1}), request([{"id": 2}, {"value": "x"}])], POSTGRES)
    with pytest.raises(SaveError, match="mode upsert needs `key`"):
        plan_many([request({"id": 1}, spec=SaveSpec(storage="postgres", mode="upsert", table="t"))], POSTGRES)


def test_the_rows_of_an_upsert_go_as_multi_row_statements_bound_by_position() -> None:
    work = upsert_work([{"id": i, "value": f"v{i}"} for i in range(3)])
    ((text, values, _),) = _multi_row(work) or []
    assert text == (
        'INSERT INTO "items" ("id", "value") VALUES ($1, $2), ($3, $4), ($5, $6) '
        'ON CONFLICT ("id") DO UPDATE SET "value" = EXCLUDED."value"'
    )
    assert values == [0, "v0", 1, "v1", 2, "v2"]


def test_a_repeated_key_starts_the_next_statement_so_a_later_row_updates_an_earlier_one() -> None:
    work = upsert_work([{"id": i % 2, "value": f"v{i}"} for i in range(5)])
    statements = _multi_row(work) or []
    assert [values for _, values, _ in statements] == [[0, "v0", 1, "v1"], [0, "v2", 1, "v3"], [0, "v4"]]


def test_rows_whose_conflict_changes_nothing_may_repeat_a_key_in_one_statement() -> None:
    spec = SaveSpec(storage="postgres", mode="upsert", table="tags", key=("id",))
    (work,) = plan(request([{"id": 1}, {"id": 1}], spec=spec, table="tags"), POSTGRES)
    ((text, values, _),) = _multi_row(work) or []
    assert text.endswith('ON CONFLICT ("id") DO NOTHING') and values == [1, 1]


def test_statements_stay_within_the_rows_and_the_binds_one_statement_may_hold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    work = upsert_work([{"id": i, "value": "v"} for i in range(2500)])
    assert [len(values) // 2 for _, values, _ in _multi_row(work) or []] == [1000, 1000, 500]
    monkeypatch.setattr(postgres_storage, "_MAX_BINDS", 7)  # 3 rows of 2 values
    insert = SaveSpec(storage="postgres", mode="insert", table="items")
    (work,) = plan(request([{"id": i, "value": "v"} for i in range(7)], spec=insert), POSTGRES)
    assert [len(values) // 2 for _, values, _ in _multi_row(work) or []] == [3, 3, 1]


def test_keys_that_cannot_be_compared_leave_the_rows_to_executemany() -> None:
    work = upsert_work([{"id": bytearray(b"1"), "value": "a"}, {"id": bytearray(b"2"), "value": "b"}])
    assert _multi_row(work) is None


def test_the_multi_row_text_numbers_every_value() -> None:
    text = insert_many_sql(("s", "t"), ("a", "b", "c"), (), POSTGRES, 2)
    assert text == 'INSERT INTO "s"."t" ("a", "b", "c") VALUES ($1, $2, $3), ($4, $5, $6)'


def test_only_statements_of_a_size_that_recurs_are_prepared() -> None:
    """A full statement (1,000 rows here) and a full batch's (500) recur, so they are prepared; the
    rest (a batch's tail, a run cut by a repeated key) are not: the server keeps each prepared one."""
    work = upsert_work([{"id": i, "value": "v"} for i in range(2300)])
    assert [(len(v) // 2, p) for _, v, p in _multi_row(work, 500) or []] == [
        (1000, True),
        (1000, True),
        (300, False),
    ]
    work = upsert_work([{"id": i, "value": "v"} for i in range(500)])
    assert [(len(v) // 2, p) for _, v, p in _multi_row(work, 500) or []] == [(500, True)]
    assert [(len(v) // 2, p) for _, v, p in _multi_row(work, 0) or []] == [(500, False)]
