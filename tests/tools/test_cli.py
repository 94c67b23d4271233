"""The `mlops` command: options generated from the flows' signatures, one entry point."""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest

import flows.training
from tools.cli import COMMANDS, main
from tools.options import add_options, call_with, parameter_docs

ROOT = Path(__file__).resolve().parents[2]
FLOW_COMMANDS = {"train": "flows.training:training", "drift": "flows.drift_check:drift_check",
                 "watch": "flows.watch_data:watch_data",
                 "score-batch": "flows.batch_scoring:batch_scoring"}


def _help(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as caught:
        main([command, "--help"])
    assert caught.value.code == 0
    return capsys.readouterr().out


def _sample(
    spec_path: str = "configs/x.yaml",
    rows: int = 3,
    share: float = 0.5,
    data_url: str | None = None,
    force: bool = False,
    retrain: bool = True,
    mode: Literal["fast", "full"] = "fast",
) -> dict:
    """A function shaped like a flow.

    Args:
        spec_path: The spec.
        rows: How many rows, at 100%
            of the data.
        share: A share.
        data_url: Another URL.
        force: Recompute.
        retrain: Start training.
        mode: How.
    """
    return dict(locals())


def _parse(function, *argv: str) -> dict:
    parser = argparse.ArgumentParser(prog="t")
    add_options(parser, function, {"spec_path": "--spec"})
    return call_with(function, parser.parse_args(list(argv)))


def test_defaults_come_from_the_signature():
    assert _parse(_sample) == {
        "spec_path": "configs/x.yaml", "rows": 3, "share": 0.5, "data_url": None,
        "force": False, "retrain": True, "mode": "fast",
    }


def test_options_are_typed_and_bools_are_flag_pairs():
    got = _parse(_sample, "--spec", "a.yaml", "--rows", "7", "--share", "0.25",
                 "--data-url", "abfs://d", "--force", "--no-retrain", "--mode", "full")
    assert got == {
        "spec_path": "a.yaml", "rows": 7, "share": 0.25, "data_url": "abfs://d",
        "force": True, "retrain": False, "mode": "full",
    }
    assert _parse(_sample, "--spec-path", "b.yaml")["spec_path"] == "b.yaml"


@pytest.mark.parametrize(("argv", "expected"), [
    (["--rows", "many"], "argument --rows: invalid int value: 'many'"),
    (["--share", "half"], "argument --share: invalid float value: 'half'"),
    (["--mode", "slow"], "argument --mode: invalid choice: 'slow'"),
    (["--force=yes"], "argument --force/--no-force: ignored explicit argument 'yes'"),
])
def test_a_bad_value_names_the_option_and_the_value(argv, expected, capsys):
    with pytest.raises(SystemExit) as caught:
        _parse(_sample, *argv)
    assert caught.value.code == 2
    assert expected in capsys.readouterr().err


def test_a_parameter_without_a_command_line_form_is_named():
    def flow(spec_path: str = "x", columns: list[str] | None = None) -> None:
        """A flow."""

    with pytest.raises(TypeError, match=r"parameter 'columns' of .*flow is typed list\[str\]"):
        _parse(flow)


def test_a_parameter_without_a_default_is_a_required_option(capsys):
    def flow(location: str, settle_s: float = 2.0) -> dict:
        """A flow."""
        return {"location": location, "settle_s": settle_s}

    assert _parse(flow, "--location", "here") == {"location": "here", "settle_s": 2.0}
    with pytest.raises(SystemExit):
        _parse(flow)
    assert "the following arguments are required: --location" in capsys.readouterr().err


def test_the_help_of_a_parameter_is_its_docstring_entry():
    docs = parameter_docs(_sample.__doc__)
    assert docs["rows"] == "How many rows, at 100% of the data."
    assert set(docs) == set(inspect.signature(_sample).parameters)


@pytest.mark.parametrize("command", sorted(FLOW_COMMANDS))
def test_every_flow_parameter_is_an_option_with_its_default(command, capsys):
    module, _, name = FLOW_COMMANDS[command].partition(":")
    assert COMMANDS[command].target == FLOW_COMMANDS[command]
    function = getattr(importlib.import_module(module), name).fn
    text = " ".join(_help(command, capsys).split())
    for parameter in inspect.signature(function).parameters.values():
        option = f"--{parameter.name.replace('_', '-')}"
        if parameter.annotation in (bool, "bool"):
            assert f"{option}, --no-{option[2:]}" in text
        else:
            assert option in text
        if parameter.default is inspect.Parameter.empty:  # required: no brackets in the usage
            assert f" {option} " in text.split(" options:")[0] and f"[{option} " not in text
        else:
            assert f"(default: {parameter.default})" in text


def test_a_new_flow_parameter_is_an_option_without_editing_the_cli(monkeypatch, capsys):
    calls = []

    def training(spec_path: str = "configs/churn.yaml", new_knob: int = 7,
                 dry: bool = False) -> dict:
        """The training flow, one parameter longer.

        Args:
            spec_path: The spec.
            new_knob: A parameter the CLI has never heard of.
            dry: Another one.
        """
        calls.append({"spec_path": spec_path, "new_knob": new_knob, "dry": dry})
        return {}

    monkeypatch.setattr(flows.training, "training", training)
    text = " ".join(_help("train", capsys).split())
    assert "--new-knob INT A parameter the CLI has never heard of. (default: 7)" in text
    assert main(["train", "--spec", "s.yaml", "--new-knob", "3", "--dry"]) == 0
    assert calls == [{"spec_path": "s.yaml", "new_knob": 3, "dry": True}]


def test_the_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name, command in COMMANDS.items():
        assert f"  {name:<12} {command.help}" in out
    with pytest.raises(SystemExit) as caught:
        main(["trian"])
    assert caught.value.code == 2
    assert "invalid choice: 'trian'" in capsys.readouterr().err


def test_status_gets_the_environment_settings(tmp_path, monkeypatch, caplog):
    state = tmp_path / "state"
    (state / "pids").mkdir(parents=True)
    (state / "pids" / "worker.pid").write_text("999999999")
    monkeypatch.setenv("MLOPS_STATE_DIR", str(state))
    monkeypatch.setenv("MLOPS_ENDPOINT_URL", "http://127.0.0.1:9")
    with caplog.at_level(logging.INFO, logger="tools.stack"):
        assert main(["status"]) == 0
    assert "worker: not running" in caplog.text
    assert "endpoint http://127.0.0.1:9: not answering" in caplog.text


def test_data_hands_its_arguments_to_the_generator(tmp_path):
    out = tmp_path / "churn"
    assert main(["data", "churn", "--rows", "40", "--partitions", "2", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.parquet", "part-00001.parquet"]


def test_prefect_settings_are_applied_before_a_flow_is_imported(tmp_path):
    """Prefect reads its settings once, on import: they must be in place by then."""
    script = (
        "import sys\n"
        "from tools.cli import main\n"
        "try:\n"
        "    main(['train', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert 'flows.training' in sys.modules\n"
        "from prefect.settings import get_current_settings\n"
        "settings = get_current_settings()\n"
        "sys.stderr.write(f'{settings.home}|{settings.server.analytics_enabled}\\n')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["MLOPS_STATE_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120, check=True,
    )
    assert result.stderr.strip().splitlines()[-1] == f"{tmp_path / 'prefect'}|False"
