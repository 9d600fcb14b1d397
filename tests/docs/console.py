"""The ```console blocks of the user docs, read, run in a shell and compared with what they show.

The conventions are described at the top of tests/docs/test_console_blocks.py.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*(file|needs):\s*(.+?)\s*-->\s*$")
PORTS = (8000, 8083, 9000)  # the stub API, the server, an S3-compatible server: free ports when run
COMMAND_TIMEOUT = 120.0
_BACKGROUND = re.compile(r"(?<![&|])&\s*(#[^\n'\"]*)?$")
BACKGROUND_WAIT = 30.0


@dataclass(frozen=True)
class Command:
    line: int  # in the page
    text: str  # without the `$ `, continuation lines joined by `\` and a newline
    expected: tuple[str, ...]

    @property
    def background(self) -> bool:
        """Ends with `&` (before a comment, if any): runs in the background."""
        return bool(_BACKGROUND.search(self.text))


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # of the opening fence
    lang: str
    text: str
    markers: tuple[tuple[str, str], ...] = ()

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    def marker(self, key: str) -> str | None:
        return next((value for k, value in self.markers if k == key), None)

    def commands(self) -> list[Command]:
        found: list[Command] = []
        lines = self.text.splitlines()
        i = 0
        while i < len(lines):
            if not lines[i].startswith("$ "):
                i += 1  # text before the first command is not compared
                continue
            start, text = i, lines[i][2:]
            while (text.endswith("\\") or _open_quote(text)) and i + 1 < len(lines):
                i += 1
                text += "\n" + lines[i]
            i += 1
            output: list[str] = []
            while i < len(lines) and not lines[i].startswith("$ "):
                output.append(lines[i])
                i += 1
            found.append(Command(self.line + 1 + start, text, tuple(output)))
        return found


def _open_quote(text: str) -> bool:
    """A quote left open: the shell reads on, as it does after a line ending in `\\`."""
    try:
        shlex.split(text, comments=True)
    except ValueError:
        return True
    return False


def blocks(text: str, page: str) -> list[Block]:
    """Every fenced block of a Markdown text, dedented to its fence, with the markers just above it."""
    found: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening or not opening.group(2):
            i += 1
            continue
        markers: list[tuple[str, str]] = []
        j = i - 1
        while j >= 0 and (m := _MARKER.match(lines[j])):
            markers.insert(0, (m.group(1), m.group(2)))
            j -= 1
        indent, lang, start = len(opening.group(1)), opening.group(2), i
        body: list[str] = []
        i += 1
        while i < len(lines) and not _FENCE.match(lines[i]):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        found.append(Block(page, start + 1, lang, "\n".join(body) + "\n", tuple(markers)))
        i += 1
    return found


# Normalization: what differs from one run to the next, on both sides, before comparing.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_PLACEHOLDERS = (
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:[+-]\d\d:\d\d|Z)?"), "<time>"),
    (re.compile(r"(?<![\w.])(?:\+\s*)?\d+\.\d+\s?(?:s|ms)\b"), "<s>"),
    (re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?=(?: items)?/s\b)"), "<n>"),
)


def normalize(line: str) -> str:
    line = _ANSI.sub("", line)
    for pattern, placeholder in _PLACEHOLDERS:
        line = pattern.sub(placeholder, line)
    return " ".join(line.split())


def _trimmed(lines: list[str]) -> list[str]:
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether the actual lines are what the expected ones show: a line `...` stands for any number of
    lines, and `...` inside a line for any text. Both sides are normalized first."""
    want = _trimmed([normalize(line) for line in expected])
    got = _trimmed([normalize(line) for line in actual])
    patterns = [
        None if line == "..." else re.compile(".*".join(re.escape(part) for part in line.split("...")))
        for line in want
    ]
    memo: dict[tuple[int, int], bool] = {}

    def fits(i: int, j: int) -> bool:
        if (i, j) not in memo:
            if i == len(patterns):
                memo[i, j] = j == len(got)
            elif patterns[i] is None:
                memo[i, j] = fits(i + 1, j) or (j < len(got) and fits(i, j + 1))
            else:
                pattern = patterns[i]
                memo[i, j] = (
                    j < len(got)
                    and pattern is not None
                    and bool(pattern.fullmatch(got[j]))
                    and fits(i + 1, j + 1)
                )
        return memo[i, j]

    return fits(0, 0)


def difference(expected: list[str], actual: list[str]) -> str:
    want = _trimmed([normalize(line) for line in expected])
    got = _trimmed([normalize(line) for line in actual])
    diff = difflib.unified_diff(want, got, "the docs show", "it printed", lineterm="", n=2)
    return "\n".join(list(diff)[:60])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Rewrites:
    """Doc text -> what runs here, in commands; and back, in what they print."""

    to_real: list[tuple[re.Pattern[str], str]] = field(default_factory=list)
    to_doc: list[tuple[re.Pattern[str], str]] = field(default_factory=list)

    def add(self, doc: str, real: str, *, numeric: bool = False) -> None:
        edge_before, edge_after = (r"(?<![\d.])", r"(?!\d)") if numeric else ("", "")
        self.to_real.append((re.compile(edge_before + re.escape(doc) + edge_after), real))
        self.to_doc.append((re.compile(edge_before + re.escape(real) + edge_after), doc))

    def command(self, text: str) -> str:
        for pattern, real in self.to_real:
            text = pattern.sub(real.replace("\\", "\\\\"), text)
        return text

    def output(self, text: str) -> str:
        for pattern, doc in self.to_doc:
            text = pattern.sub(doc.replace("\\", "\\\\"), text)
        return text


_PG_URL = re.compile(r"postgresql://(?:[^@\s/'\"]+@)?([^/\s'\"]+)/(\w+)")
_PG_FIELD = re.compile(r'"(db_host|db_port|db_user|db_password|db_name)":\s*("(?:[^"\\]|\\.)*"|\d+)')


@dataclass
class Postgres:
    """Fresh databases on the test session's server, one per database name a page uses."""

    server: str  # a DSN whose database we may create others from
    created: dict[str, str] = field(default_factory=dict)  # name in the docs -> real name
    shown: dict[str, str] = field(default_factory=dict)  # real display form -> the docs' display form

    def _fields(self) -> dict[str, str]:
        from psycopg.conninfo import conninfo_to_dict

        info = conninfo_to_dict(self.server)
        return {
            "host": str(info.get("host", "127.0.0.1")),
            "port": str(info.get("port", 5432)),
            "user": str(info.get("user", "postgres")),
            "password": str(info.get("password", "")),
        }

    def database(self, name: str) -> str:
        if name not in self.created:
            import psycopg

            real = f"docs_{os.urandom(5).hex()}_{name}"[:60]
            with psycopg.connect(self.server, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{real}"')
            self.created[name] = real
        return self.created[name]

    def url(self, name: str) -> str:
        f = self._fields()
        auth = f["user"] + (f":{f['password']}" if f["password"] else "")
        return f"postgresql://{auth}@{f['host']}:{f['port']}/{self.database(name)}"

    def rewrite(self, text: str) -> str:
        def url(m: re.Match[str]) -> str:
            real = self.url(m.group(2))
            f = self._fields()
            self.shown.setdefault(
                f"postgresql://{f['host']}:{f['port']}/{self.database(m.group(2))}",
                f"postgresql://{m.group(1)}/{m.group(2)}",
            )
            return real

        def credential_field(m: re.Match[str]) -> str:
            key, f = m.group(1), self._fields()
            value: str
            if key == "db_port":
                value = f["port"]
            elif key == "db_name":
                value = '"' + self.database(m.group(2).strip('"')) + '"'
            else:
                value = (
                    '"'
                    + {"db_host": f["host"], "db_user": f["user"], "db_password": f["password"]}[key]
                    + '"'
                )
            return f'"{key}": {value}'

        return _PG_FIELD.sub(credential_field, _PG_URL.sub(url, text))

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(self.server, autocommit=True) as conn:
            for real in self.created.values():
                conn.execute(f'DROP DATABASE IF EXISTS "{real}" WITH (FORCE)')


@dataclass
class Outcome:
    command: Command
    block: Block
    problem: str | None = None
    skipped: str | None = None
    printed: tuple[str, ...] = ()


_STATE_SKIP = re.compile(r"^declare -x (PWD|OLDPWD|SHLVL|_)=")


class Session:
    """One page's shell session: a folder that looks like a checkout, and the state between commands."""

    def __init__(self, folder: Path, postgres: Callable[[], str | None] | None = None) -> None:
        self.folder = folder
        self.state = folder / ".console-state"
        self.rc = 0
        self.rewrites = Rewrites()
        self.postgres_server = postgres
        self.pg: Postgres | None = None
        self.background: list[tuple[Command, subprocess.Popen[bytes], Path]] = []
        for name in ("examples", ".venv"):
            (folder / name).symlink_to(REPO / name)
        self.rewrites.add("/tmp/", f"{folder}/")
        for port in PORTS:
            self.rewrites.add(str(port), str(free_port()), numeric=True)
        venv_bin = REPO / ".venv" / "bin"
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("NOETL_", "PYTEST_", "VIRTUAL_ENV"))
        }
        self.env.update(
            PATH=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
            HOME=str(folder),
            TMPDIR=str(folder),
            PYTHONUNBUFFERED="1",
            TERM="dumb",
            NO_COLOR="1",
        )
        for name in ("FORCE_COLOR", "COLUMNS", "LINES"):  # piped, as at a shell: no width is given
            self.env.pop(name, None)

    def _script(self, text: str, *, background: bool = False) -> str:
        state = shlex.quote(str(self.state))
        prelude = f"set -a\n[ -f {state} ] && . {state}\n(exit {self.rc})\n"
        if background:  # in the foreground of its own process group, which close() stops
            return prelude + _BACKGROUND.sub(lambda m: " " + (m.group(1) or ""), text) + "\n"
        save = (
            f"__rc=$?\nexport -p | grep -Ev '{_STATE_SKIP.pattern}' > {state}\n"
            f'printf "cd %q\\n" "$PWD" >> {state}\nexit $__rc\n'
        )
        return prelude + text + "\n" + save

    def _text(self, block: Block, command: Command) -> str | None:
        """The command as it runs here; None when it needs a PostgreSQL this session does not have."""
        text = command.text
        if block.marker("needs") == "postgres":
            if self.pg is None:
                server = self.postgres_server() if self.postgres_server else None
                if server is None:
                    return None
                self.pg = Postgres(server)
            text = self.pg.rewrite(text)
        return self.rewrites.command(text)

    def _printed(self, raw: str) -> list[str]:
        text = self.rewrites.output(raw)
        if self.pg is not None:
            for real, shown in self.pg.shown.items():
                text = text.replace(real, shown)
        return text.splitlines()

    def write_file(self, block: Block) -> None:
        name = block.marker("file")
        assert name is not None
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.text, encoding="utf-8")

    def run(self, block: Block, command: Command, next_command: Command | None) -> Outcome:
        text = self._text(block, command)
        if text is None:
            return Outcome(command, block, skipped="needs PostgreSQL, and this test session has none")
        if command.background:
            return self._start(block, command, text)
        try:
            done = subprocess.run(
                ["bash", "-c", self._script(text)],
                cwd=self.folder,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=COMMAND_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            so_far = (exc.stdout or b"").decode(errors="replace")
            return Outcome(
                command, block, f"did not end within {COMMAND_TIMEOUT:.0f}s; it printed:\n{so_far}"
            )
        self.rc = done.returncode
        printed = self._printed(done.stdout.decode(errors="replace"))
        if not matches(list(command.expected), printed):
            return Outcome(
                command, block, difference(list(command.expected), printed), printed=tuple(printed)
            )
        if done.returncode != 0 and not _failure_shown(command, next_command):
            why = (
                f"exited with code {done.returncode}; show an error line, or `echo $?` after it, "
                "if that is what it should do"
            )
            return Outcome(command, block, why, printed=tuple(printed))
        return Outcome(command, block, printed=tuple(printed))

    def _start(self, block: Block, command: Command, text: str) -> Outcome:
        log = self.folder / f".background-{len(self.background) + 1}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                ["bash", "-c", self._script(text, background=True)],
                cwd=self.folder,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.background.append((command, proc, log))
        expected = [line for line in command.expected if line.strip()]
        deadline = time.monotonic() + BACKGROUND_WAIT
        while True:
            printed = self._printed(log.read_text(errors="replace"))
            if not expected or matches([*expected, "..."], printed):
                return Outcome(command, block)
            if proc.poll() is not None or time.monotonic() > deadline:
                why = f"exited with code {proc.returncode}" if proc.poll() is not None else "is still silent"
                return Outcome(
                    command,
                    block,
                    f"{why} after {BACKGROUND_WAIT:.0f}s:\n{difference(expected, printed)}",
                )
            time.sleep(0.1)

    def close(self) -> None:
        """Stop the background commands: each is the process group this session started for it."""
        for _, proc, _ in self.background:
            _signal_group(proc, signal.SIGTERM)
        for _, proc, _ in self.background:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        if self.pg is not None:
            self.pg.drop()
        shutil.rmtree(self.folder, ignore_errors=True)


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _failure_shown(command: Command, next_command: Command | None) -> bool:
    """A command may exit non-zero when the page says so: an error in its output, or `echo $?` next."""
    if next_command is not None and next_command.text.strip() == "echo $?":
        return True
    return any(re.search(r"\berror\b|\bFAILED\b", line, re.IGNORECASE) for line in command.expected)


def run_page(
    text: str, page: str, folder: Path, postgres: Callable[[], str | None] | None = None
) -> list[Outcome]:
    """Run every console block of a page in order, in one session; the outcome of each command."""
    folder.mkdir(parents=True, exist_ok=True)
    session = Session(folder, postgres)
    outcomes: list[Outcome] = []
    try:
        for block in blocks(text, page):
            if block.marker("file"):
                session.write_file(block)
            if block.lang != "console":
                continue
            commands = block.commands()
            for i, command in enumerate(commands):
                outcomes.append(
                    session.run(block, command, commands[i + 1] if i + 1 < len(commands) else None)
                )
    finally:
        session.close()
    return outcomes


def report(outcomes: list[Outcome]) -> str:
    parts = []
    for o in outcomes:
        if o.problem is not None:
            first = o.command.text.splitlines()[0]
            parts.append(f"{o.block.page}:{o.command.line}: $ {first}\n{o.problem}")
    return "\n\n".join(parts)
