"""Masking of secrets in events (noetl/runtime/redact.py), including secrets cut short."""

from __future__ import annotations

from noetl.runtime.redact import Redactor

TOKEN = "tok-7Hq2mZp9XwL4vR8sY3nB"  # 24 characters


def redactor() -> Redactor:
    r = Redactor()
    r.add(TOKEN)
    return r


def test_a_whole_secret_is_masked() -> None:
    assert redactor().text(f"Authorization: Bearer {TOKEN} sent") == "Authorization: Bearer *** sent"


def test_a_secret_cut_at_its_end_leaves_at_most_4_characters() -> None:
    for kept in range(5, len(TOKEN)):  # an excerpt cut anywhere in the token
        shown = redactor().error_text(f'HTTP 401: {{"error": "bad token {TOKEN[:kept]}')
        assert TOKEN[:5] not in shown and shown.endswith("***"), kept


def test_a_secret_cut_at_its_start_is_masked_too() -> None:
    shown = redactor().error_text(f"...{TOKEN[5:]} was refused")
    assert TOKEN[-8:] not in shown and shown == "...*** was refused"


def test_text_without_the_secret_is_untouched() -> None:
    # Four characters of a secret are not a secret: at most that much of a cut one is left.
    assert redactor().error_text("tok- plain text") == "tok- plain text"
    assert redactor().error_text("tok-7 plain text") == "*** plain text"


def test_fragments_are_masked_only_in_errors_where_values_stay_data() -> None:
    r = Redactor()
    r.add("workload-secret-value-8812")
    assert r.text("tests/workload_on_workers") == "tests/workload_on_workers"  # a catalog path: data
    assert r.error_text("token workload-secret-va cut") == "token *** cut"


def test_the_engine_keys_are_never_template_names() -> None:
    from noetl.runtime.template_env import template_env

    env = template_env(
        {
            "NOETL_SECRET_KEY": "k",
            "NOETL_API_TOKEN": "t",
            "NOETL_SECRET_API": "s",
            "PGHOST": "db",
            "HOME": "/h",
        }
    )
    assert env == {"PGHOST": "db", "HOME": "/h"}
    narrowed = template_env(
        {"NOETL_TEMPLATE_ENV": "PG*,NOETL_*", "PGHOST": "db", "HOME": "/h", "NOETL_API_TOKEN": "t"}
    )
    assert narrowed == {"NOETL_TEMPLATE_ENV": "PG*,NOETL_*", "PGHOST": "db"}  # never the API token
