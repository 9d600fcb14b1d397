"""Every complete playbook in the user docs (a ```yaml block holding `apiVersion:`) loads as it is written.

A block that shows a mistake on purpose starts with the line `# invalid: TEXT`: it must be rejected, and
the error must contain TEXT. A block that shows a form `noetl validate` warns about may start with
`# warns: TEXT`: it must load, with a warning containing TEXT. Fragments (blocks without `apiVersion:`)
are not checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from noetl.dsl import parse_playbook
from noetl.errors import PlaybookError

DOCS = Path(__file__).resolve().parents[2] / "docs"
_FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
_MARKER = re.compile(r"^\s*#\s*(invalid|warns):\s*(.+?)\s*$")


@dataclass(frozen=True)
class Block:
    doc: str
    line: int  # of the opening fence
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def marker(self) -> tuple[str, str] | None:
        """('invalid' | 'warns', the text the error or warning must contain), from the first line."""
        first = self.text.splitlines()[0] if self.text.strip() else ""
        match = _MARKER.match(first)
        return (match.group(1), match.group(2)) if match else None


def yaml_blocks(text: str, doc: str) -> list[Block]:
    """The ```yaml blocks of a Markdown text, dedented to their fence, with the fence's line."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening or not opening.group(2):
            i += 1
            continue
        indent, lang, start = len(opening.group(1)), opening.group(2), i
        body: list[str] = []
        i += 1
        while i < len(lines) and not _FENCE.match(lines[i]):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        if lang in ("yaml", "yml"):
            blocks.append(Block(doc, start + 1, "\n".join(body) + "\n"))
        i += 1
    return blocks


def playbook_blocks() -> list[Block]:
    found: list[Block] = []
    for path in sorted(DOCS.glob("*.md")):
        found += [
            b for b in yaml_blocks(path.read_text(encoding="utf-8"), path.name) if "apiVersion:" in b.text
        ]
    return found


def check(block: Block) -> None:
    """Raise AssertionError (with the block's place in the docs) unless the block is what it says."""
    marker = block.marker
    if marker is not None and marker[0] == "invalid":
        try:
            parse_playbook(block.text, source=block.where)
        except PlaybookError as exc:
            assert marker[1] in str(exc), f"{block.where}: the error does not say {marker[1]!r}:\n{exc}"
            return
        raise AssertionError(f"{block.where}: marked `# invalid: {marker[1]}`, but it loads")
    try:
        playbook = parse_playbook(block.text, source=block.where)
    except PlaybookError as exc:
        raise AssertionError(f"{block.where}: the playbook in the docs does not load:\n{exc}") from None
    if marker is not None:
        warnings = "\n".join(str(w) for w in playbook.warnings)
        assert marker[1] in warnings, f"{block.where}: no warning says {marker[1]!r}; warnings:\n{warnings}"


BLOCKS = playbook_blocks()


@pytest.mark.parametrize("block", BLOCKS, ids=[b.where for b in BLOCKS])
def test_the_playbooks_in_the_docs_are_what_they_say(block: Block) -> None:
    check(block)


def test_the_docs_have_playbooks_to_check() -> None:
    docs = {b.doc for b in BLOCKS}
    assert {"playbooks.md", "compat.md"} <= docs, f"no complete playbook found in {sorted(docs)}"
    assert any(b.marker and b.marker[0] == "invalid" for b in BLOCKS), "no `# invalid:` block is checked"


STALE = """\
Text before.

```yaml
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: stale}
workflow:
  - step: start
    type: python
    methd: GET
```

```yaml
# invalid: unknown key 'methd'
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: stale}
workflow:
  - step: start
    type: python
    code: |
      def main():
          return 1
```

```yaml
# invalid: a reason it does not give
apiVersion: noetl.io/v1
workflow:
  - step: start
    type: workbook
    name: missing
```

```yaml
# warns: prefer `metadata
apiVersion: noetl.io/v1
metadata: {name: no_warning}
workflow:
  - step: start
```
"""


def test_the_check_fails_on_stale_blocks() -> None:
    """A broken block, an `invalid` block that loads, a wrong error text and a missing warning all fail."""
    blocks = yaml_blocks(STALE, "stale.md")
    assert [b.line for b in blocks] == [3, 13, 26, 35]
    outcomes = []
    for block in blocks:
        with pytest.raises(AssertionError) as caught:
            check(block)
        outcomes.append(str(caught.value))
    assert "does not load" in outcomes[0] and "unknown key 'methd'" in outcomes[0]
    assert "but it loads" in outcomes[1]
    assert "does not say 'a reason it does not give'" in outcomes[2] and "workbook entry" in outcomes[2]
    assert "no warning says" in outcomes[3]


def test_a_marked_block_passes_when_it_says_what_happens() -> None:
    ok = yaml_blocks(
        "```yaml\n# invalid: has no step named 'start'\napiVersion: noetl.io/v1\n"
        "workflow:\n  - step: begin\n```\n"
        "```yaml\n# warns: prefer `metadata: {name\napiVersion: noetl.io/v1\nname: top\n"
        "workflow:\n  - step: start\n```\n",
        "ok.md",
    )
    for block in ok:
        check(block)
