"""Command-line options generated from a function's signature, so a flow's parameters are
written once: a new parameter of the flow is a new option of its command, typed and documented.

Each parameter becomes ``--name-with-dashes``: a ``bool`` becomes ``--flag/--no-flag``; ``str``,
``int``, ``float`` and their ``X | None`` forms become typed options (``None`` as the default
means "not given"); a ``Literal`` becomes a choice. The help text is the parameter's entry in
the function's Google-style ``Args:`` section, and the default is shown. A parameter named
``settings`` is not an option: the command passes the environment's settings.
"""

from __future__ import annotations

import argparse
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

SCALARS = (str, int, float)
# Parameters the command fills in itself rather than asking for.
INJECTED = ("settings",)


def parameter_docs(docstring: str | None) -> dict[str, str]:
    """The ``Args:`` entries of a Google-style docstring, one line each."""
    lines = inspect.cleandoc(docstring or "").splitlines()
    docs: dict[str, str] = {}
    inside, current = False, ""
    for line in lines:
        if line.strip() == "Args:":
            inside = True
            continue
        if inside and line and not line.startswith(" "):  # the next section
            break
        entry = re.match(r"^ {4}(\w+)(?: \([^)]*\))?: (.*)$", line) if inside else None
        if entry:
            current = entry[1]
            docs[current] = entry[2].strip()
        elif inside and current and line.strip():
            docs[current] += " " + line.strip()
    return docs


def _option_type(function: Callable[..., Any], name: str, hint: Any) -> tuple[Any, tuple | None]:
    """(scalar type, choices or None) behind a hint; `X | None` counts as X."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        hint = inner[0] if len(inner) == 1 else hint
    if typing.get_origin(hint) is typing.Literal:
        choices = typing.get_args(hint)
        return type(choices[0]), choices
    if hint is bool or hint in SCALARS:
        return hint, None
    raise TypeError(
        f"parameter '{name}' of {function.__qualname__} is typed {hint!r}; a command-line "
        f"option can be one of bool, str, int, float, a Literal, or one of those | None"
    )


def add_options(
    parser: argparse.ArgumentParser,
    function: Callable[..., Any],
    aliases: Mapping[str, str] | None = None,
) -> None:
    """Add one option per parameter of `function` to `parser`.

    Args:
        parser: Where the options go.
        function: The function whose signature and docstring describe them.
        aliases: Extra option strings, e.g. ``{"spec_path": "--spec"}``.

    Raises:
        TypeError: a parameter's type has no command-line form (the message names it).
    """
    function = getattr(function, "fn", function)  # a Prefect flow: the function it wraps
    hints = typing.get_type_hints(function)
    docs = parameter_docs(function.__doc__)
    for name, parameter in inspect.signature(function).parameters.items():
        if name in INJECTED:
            continue
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(f"{function.__qualname__} takes *{name}; a command needs names")
        kind, choices = _option_type(function, name, hints.get(name, str))
        flags = [f"--{name.replace('_', '-')}"]
        if aliases and name in aliases:
            flags.append(aliases[name])
        required = parameter.default is inspect.Parameter.empty
        common: dict[str, Any] = {"dest": name, "required": required}
        if not required:
            common["default"] = parameter.default
        note = docs.get(name, "").replace("%", "%%")
        note += "" if required else " (default: %(default)s)"
        if kind is bool:
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, help=note, **common)
        else:
            metavar = None if choices else kind.__name__.upper()
            parser.add_argument(*flags, type=kind, choices=choices, metavar=metavar, help=note,
                                **common)

def call_with(function: Callable[..., Any], args: argparse.Namespace, **injected: Any) -> Any:
    """Call `function` (or the flow wrapping it) with the options `add_options` parsed."""
    names = inspect.signature(getattr(function, "fn", function)).parameters
    values = {name: getattr(args, name) for name in names if name not in INJECTED}
    return function(**values, **{k: v for k, v in injected.items() if k in names})
