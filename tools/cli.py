"""The ``mlops`` command: one entry point for people, over the flows and the local tools.

``mlops train``, ``mlops drift``, ``mlops score-batch`` and ``mlops watch`` run a flow once
in this process; their options come from the flow's own signature and docstring
(`tools.options`), so a flow parameter is written once. ``mlops rollback`` runs
`tools.rollback`, which flips a warm deployment's traffic before it imports Prefect and then
runs the rollback flow; its options are the flow's less two the command fills in (a test keeps
them equal). The stack and predict commands get theirs the same way from their functions;
``mlops data`` hands its arguments to the sample-data generator's own parser.

A command's module is imported only when that command runs, after Prefect's settings are in
the environment (`flows._prefect_env.apply`): Prefect reads them when it is imported. Adding a
command is one entry in `COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flows import _prefect_env
from mlops.core.settings import get_settings
from tools.options import add_options, call_with

# `--spec` is how people (and the Makefile) name the spec; `--spec-path` matches the flow.
ALIASES = {"spec_path": "--spec"}


@dataclass(frozen=True)
class Command:
    """A subcommand: what it runs, as ``module:function``, and how."""

    help: str
    target: str
    prefect: bool = True  # imports Prefect: its settings go into the environment first
    own_parser: bool = False  # the target is a `main(argv)` that parses its arguments itself


COMMANDS: dict[str, Command] = {
    "train": Command("run the training flow once", "flows.training:training"),
    "drift": Command("run the drift check once", "flows.drift_check:drift_check"),
    "score-batch": Command("score a dataset with the champion (or a named version) once",
                           "flows.batch_scoring:batch_scoring"),
    "watch": Command("look at a data location once, announce new files",
                     "flows.watch_data:watch_data"),
    "rollback": Command("move traffic and champion back to the previous champion",
                        "tools.rollback:rollback", prefect=False),
    "predict": Command("score a few rows of the spec's data on the endpoint",
                       "tools.predict:predict", prefect=False),
    "data": Command("write the sample datasets (`mlops data churn --help`)",
                    "tools.datasets:main", prefect=False, own_parser=True),
    "up": Command("bring up the local stack and train every model without a champion",
                  "tools.stack:up"),
    "deploy": Command("deploy every model's deployments (configs/*.yaml) to the stack",
                      "tools.stack:deploy_all"),
    "down": Command("stop every process the stack started", "tools.stack:down", prefect=False),
    "status": Command("say which stack processes run, or where a model's releases stand "
                      "(--spec)", "tools.status:status", prefect=False),
    "endpoint-up": Command("start only the local endpoint", "tools.endpoint_process:endpoint_up",
                           prefect=False),
}


def _resolve(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlops", description="Continuous training and delivery of scikit-learn models.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {n:<12} {c.help}" for n, c in COMMANDS.items())
        + "\n\n`mlops COMMAND --help` lists a command's options.",
    )
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND")
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def command_parser(name: str, function: Callable[..., Any]) -> argparse.ArgumentParser:
    """The parser of one command, its options generated from `function`'s signature."""
    parser = argparse.ArgumentParser(prog=f"mlops {name}", description=COMMANDS[name].help)
    add_options(parser, function, ALIASES)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (errors in arguments exit with 2)."""
    top = _top_parser().parse_args(argv)
    command = COMMANDS[top.command]
    if command.prefect:
        _prefect_env.apply()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    function = _resolve(command.target)
    if command.own_parser:
        return function([*top.args]) or 0
    args = command_parser(top.command, function).parse_args(top.args)
    call_with(function, args, settings=get_settings())  # the stack's functions take settings
    return 0


if __name__ == "__main__":
    sys.exit(main())
