"""How the `noetl` commands are driven by typer: their help reflowed, their plain values read without
pydantic, the help renderer imported without what it never draws, flags shown without a type, and only
the command a run names built. These
lean on typer's internals; if typer changes, each falls back to typer's own behaviour (and
tests/unit/test_startup_imports.py says so)."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

import typer
import typer.core
import typer.main


class Commands(typer.core.TyperGroup):
    """The class of every `noetl` command group: the help of its commands is reflowed (reflow), and their
    values are coerced by PlainValues, so that a command does not import pydantic to read a path."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.help = reflow(self.help)
        for param in self.params:
            PlainValues.install(param)
        for command in self.commands.values():
            command.help = reflow(command.help)
            for param in command.params:
                PlainValues.install(param)

    def get_help_option(self, ctx: Any) -> Any:
        return PlainValues.install(super().get_help_option(ctx))

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:  # its --help is made on first use (and kept): coerce it as the rest
            PlainValues.install(command.get_help_option(ctx))
        return name, command, rest


def reflow(text: str | None) -> str | None:
    """A docstring as the help shows it: each paragraph on one line, which rich wraps to the terminal (it
    keeps line breaks as they are). A paragraph whose lines are indented, an example, is kept as written."""
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(p if p.startswith(" ") else " ".join(p.split()) for p in paragraphs)


class PlainValues:
    """A parameter's value coercion, as typer's own (typer._coercion.RuntimeParam.coerce) gives it, for
    the values that need no conversion: no value, a str for a str, a path for a Path, a default int or
    float in its range. Anything else goes to typer's, which builds a pydantic TypeAdapter: importing
    pydantic takes longer than the whole of `noetl validate` (docs/performance.md, "Start-up")."""

    def __init__(self, annotation: Any, info: Any) -> None:
        self.annotation, self.info = annotation, info
        self._typer: Any = None

    @classmethod
    def install(cls, param: Any) -> Any:
        """Put one in the slot typer fills on first use; a typer without that slot keeps its own."""
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is not None and getattr(param, "_runtime_param", False) is None:
            param._runtime_param = cls(descriptor.annotation, descriptor.parameter_info)
        return param

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        many = param.multiple or param.nargs == -1
        if value is None:
            return () if many else None
        plain = None if many else self._plain(value, param, ctx)
        if plain is not None:
            return plain
        if self._typer is None:
            from typer._coercion import build_runtime_param

            self._typer = build_runtime_param(param.type_descriptor)
        return self._typer.coerce(value, param=param, ctx=ctx)

    def _plain(self, value: Any, param: Any, ctx: Any) -> Any:
        kind, info = self.annotation, self.info
        if info.parser is not None or type(value) not in (str, int, float):
            return None
        if kind is str and type(value) is str:
            return value
        if kind is Path and type(value) is str and info.path_type is None:
            from typer._param_types import coerce_cli_path

            return coerce_cli_path(Path(value), info, path_type=Path, param=param, ctx=ctx)
        if kind in (int, float) and type(value) is kind and not getattr(param, "count", False):
            low, high = info.min, info.max
            if (low is None or value >= low) and (high is None or value <= high):
                return value
        return None


# What typer.rich_utils imports at its top for what noetl's help never draws: Markdown (for
# rich_markup_mode="markdown"; noetl's is "rich") and Traceback (typer's pretty traceback of a crash).
_NOT_DRAWN_BY_HELP = {"rich.markdown": "Markdown", "rich.traceback": "Traceback"}


def import_help_renderer() -> None:
    """Import typer's help renderer, typer.rich_utils, without rich.markdown and rich.traceback, which
    take about 30 ms of the 130 of `noetl --help` (markdown-it, pygments). rich_utils gets stand-ins for
    the two classes that import the real one the first time one is used, so nothing it does changes."""
    if "typer.rich_utils" in sys.modules:
        return
    stand_ins = {m: _module_of(m, name) for m, name in _NOT_DRAWN_BY_HELP.items() if m not in sys.modules}
    sys.modules.update(stand_ins)
    try:
        import typer.rich_utils  # noqa: F401
    finally:  # whoever imports them next gets the real modules
        for module, stand_in in stand_ins.items():
            if sys.modules.get(module) is stand_in:
                del sys.modules[module]


def hide_flag_types(command: Any) -> None:
    """A flag takes no value, so its help row shows no type (typer 0.29 shows `<bool>`): an empty
    metavar for every flag of `command` and of its subcommands."""
    for param in getattr(command, "params", ()):
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    made = command.get_help_option  # click makes --help when the help is drawn: the same for it

    def get_help_option(ctx: Any) -> Any:
        option = made(ctx)
        if option is not None and option.metavar is None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option
    for sub in getattr(command, "commands", {}).values():
        hide_flag_types(sub)


def _module_of(module: str, name: str) -> Any:
    import types
    from importlib import import_module

    def real() -> Any:
        return getattr(import_module(module), name)

    class OnFirstUse(type):
        def __getattr__(cls, attr: str) -> Any:  # Traceback.from_exception(...)
            return getattr(real(), attr)

    class StandIn(metaclass=OnFirstUse):
        def __new__(cls, *args: Any, **kwargs: Any) -> Any:  # Markdown(text, style=...)
            return real()(*args, **kwargs)

    StandIn.__name__ = StandIn.__qualname__ = name
    stand_in = types.ModuleType(module, f"A stand-in for {module} until {name} is used (cli_common)")
    setattr(stand_in, name, StandIn)
    return stand_in


def click_command(app: typer.Typer, args: list[str]) -> Any:
    """The click command that runs `noetl ARGS`. typer builds the click command of every subcommand,
    options and all, each time the program starts (13 ms of `noetl validate`'s 150, docs/performance.md
    "Start-up"); a run of one top-level command (`validate`, `run`, ...) gets a group with only that
    one, built the same way, so it parses, helps and fails exactly as in the whole tree. `noetl`,
    `noetl --help` and the command groups (`server ...`) get the whole tree."""
    wanted = args[0] if args else None
    only = [c for c in app.registered_commands if _name(c) == wanted]
    if len(only) != 1:
        return typer.main.get_command(app)
    everything = app.registered_commands, app.registered_groups
    app.registered_commands, app.registered_groups = only, []
    try:
        return typer.main.get_group(app)
    finally:
        app.registered_commands, app.registered_groups = everything


def _name(command: Any) -> str:
    return str(command.name or typer.main.get_command_name(command.callback.__name__))
