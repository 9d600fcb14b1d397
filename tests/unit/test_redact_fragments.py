"""What is left of a secret cut short is masked from 5 characters on (issue 9), and values a template
derives from a secret are learned as secrets (noetl/runtime/redact.py, DerivedSecrets)."""

from __future__ import annotations

from typing import Any

import pytest

from noetl.dsl.render import WATCH, StepView, compile_render, render
from noetl.engine.events import Event
from noetl.runtime.redact import DerivedSecrets, Redactor

TOKEN = "tok_9fQ2xLm7Rv3ZpW8kN4s"  # 23 characters


def longest_piece(text: str, secret: str = TOKEN) -> int:
    best = 0
    for start in range(len(secret)):
        length = best + 1
        while start + length <= len(secret) and secret[start : start + length] in text:
            best = length
            length += 1
    return best


def redactor(*secrets: str) -> Redactor:
    r = Redactor()
    for s in secrets or (TOKEN,):
        r.add(s)
    return r


@pytest.mark.parametrize("cut", range(1, len(TOKEN)))
def test_an_error_cut_anywhere_in_a_token_keeps_at_most_4_of_its_characters(cut: int) -> None:
    r = redactor()
    for text in (
        f"HTTP 401: bad token {TOKEN[:cut]}",  # cut at the end
        f"{TOKEN[cut:]} was refused",  # cut at the start
        f"step 'x': item 3: HTTP 401: bad token {TOKEN[:cut]} (after 3 attempts)",  # cut, then wrapped
        f"near '{TOKEN[cut // 2 : cut // 2 + 9]}': syntax error",  # a window inside it
    ):
        assert longest_piece(r.error_text(text)) <= 4, text


def test_values_that_were_cut_are_masked_at_their_ends_only() -> None:
    r = redactor()
    long_text = "x" * 1990 + " " + TOKEN[:9]  # an action's input shown truncated at 2,000 characters
    assert r.text(long_text) == "x" * 1990 + " ***"
    assert r.text(TOKEN[-9:] + " " + "y" * 80) == "*** " + "y" * 80
    preview = {"truncated": True, "preview": '{"rows": [' + "1, " * 40 + f'"{TOKEN[:12]}', "chars": 5000}
    assert longest_piece(str(r.value(preview))) <= 4
    # A short value is data, not an excerpt: it keeps its text, even when it starts like the token.
    assert r.text("tok_9fQ2") == "tok_9fQ2"
    assert r.text(f"token {TOKEN} here") == "token *** here"


def test_short_secrets_and_connection_strings_are_masked_only_where_a_text_visibly_ends() -> None:
    dsn = "postgresql://noetl:Hunter2-pw@db.example.com:5432/noetl"
    r = redactor("s3cr3t-pw", dsn)
    # Everyday words that a connection string holds are not masked inside an error...
    assert r.error_text("relation noetl.users does not exist at postgresql://") == (
        "relation noetl.users does not exist at ***"
    )
    assert (
        r.error_text("database noetl on db.example.com refused") == "database noetl on db.example.com refused"
    )
    # ... but its password is a secret of its own, and a cut one is masked where the text ends.
    assert r.error_text("password Hunter2-pw was refused") == "password *** was refused"
    assert r.error_text("could not connect: s3cr3t") == "could not connect: ***"
    assert r.error_text("statement `SELECT 's3cr3t...` failed") == "statement `SELECT '***...` failed"
    assert r.error_text("the s3cr3 is short") == "the s3cr3 is short"  # mid-text, 5 of a 9-character secret


def test_a_secret_inside_a_longer_one_leaves_nothing_of_either() -> None:
    r = redactor(TOKEN, TOKEN[4:14])
    assert r.text(f"a {TOKEN} b {TOKEN[4:14]} c") == "a *** b *** c"


def test_an_event_error_is_masked_with_its_fragments() -> None:
    r = redactor()
    event = Event(
        execution_id="e",
        event_type="action_error",
        event_id=1,
        error=f"HTTP 401 from GET http://h/: invalid token {TOKEN[:11]}",
        result={"data": f"invalid token {TOKEN} (expired)"},
    )
    shown = r.event(event)
    assert shown.error == "HTTP 401 from GET http://h/: invalid token ***"
    assert shown.result == {"data": "invalid token *** (expired)"}


# ---- values derived in templates -----------------------------------------------------------------


def watched(secrets: list[str], **names: Any) -> tuple[dict[str, Any], list[str]]:
    learned: list[str] = []
    return {**names, WATCH: DerivedSecrets(secrets, learned.append)}, learned


@pytest.mark.parametrize(
    ("template", "derived"),
    [
        ("{{ token[4:] }}", TOKEN[4:]),
        ("{{ token | upper }}", TOKEN.upper()),
        ("{{ 'Bearer ' ~ token }}", TOKEN),  # the token itself: the text around it is not secret
        ("Bearer {{ token | lower }}", TOKEN.lower()),
        ("{{ token | reverse }}", TOKEN[::-1]),
        ("{{ s.creds.token[2:9] }}", TOKEN[2:9]),
        ("k={{ token | b64encode }};", None),  # base64 of it: learned whole
        ("{{ {'h': token[1:]} }}", TOKEN[1:]),
    ],
)
@pytest.mark.parametrize("how", ["render", "compiled"])
def test_a_value_derived_from_a_secret_is_learned(template: str, derived: str | None, how: str) -> None:
    scope, learned = watched([TOKEN], token=TOKEN, s=StepView({"creds": {"token": TOKEN}}))
    # compiled: as an iterator's task data is rendered per item (Task.render_data)
    value = render(template, scope) if how == "render" else compile_render(template)(scope, "")
    assert learned, value
    if derived is not None:
        assert derived in learned
    r = redactor()
    r.add_all(learned)
    assert longest_piece(str(r.value(value))) <= 4, r.value(value)
    assert longest_piece(str(r.value(value)).upper(), TOKEN.upper()) <= 4


def test_a_derived_value_is_a_secret_for_the_templates_after_it() -> None:
    scope, learned = watched([TOKEN], token=TOKEN)
    header = render("Bearer {{ token[4:] }}", scope)
    scope = {**scope, "header": header}  # a step's input, a name in its config's templates
    render("{{ header | upper }}", scope)
    assert ("BEARER " + TOKEN[4:].upper())[7:] in learned or TOKEN[4:].upper() in learned


@pytest.mark.parametrize(
    "template",
    [
        "{{ city | upper }}",
        "{{ token | length }}",
        "{{ token == 'x' }}",
        "{{ 'yes' if token else 'no' }}",
        "{{ token.startswith('tok') }}",
        "{{ token }}",  # the secret itself, already known
    ],
)
def test_what_is_not_derived_from_a_secret_is_not_learned(template: str) -> None:
    scope, learned = watched([TOKEN], token=TOKEN, city="Lisbon")
    render(template, scope)
    assert [x for x in learned if x != TOKEN] == []


def test_the_watch_is_not_a_name_templates_see() -> None:
    scope, _ = watched([TOKEN], token=TOKEN)
    with pytest.raises(Exception, match="undefined name"):
        render("{{ _noetl_watch }}", scope)


def test_a_template_the_twin_breaks_is_learned_whole() -> None:
    scope, learned = watched([TOKEN], token=TOKEN, table={TOKEN: "row-for-this-token"})
    assert render("{{ table[token] }}", scope) == "row-for-this-token"
    assert learned == ["row-for-this-token"]


def test_the_second_rendering_changes_nothing_the_step_holds() -> None:
    rows: list[str] = []
    scope, _ = watched([TOKEN], token=TOKEN, rows=rows)
    assert render("{{ rows.append(token[2:]) or rows | length }}", scope) == 1
    assert rows == [TOKEN[2:]]  # appended once, by the real rendering
