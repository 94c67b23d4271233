"""Prefect settings of a flow run as a script: the Makefile's, applied before Prefect loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from flows import _prefect_env

ROOT = Path(__file__).resolve().parents[2]


def test_unset_settings_get_the_makefile_values_and_set_ones_stay(tmp_path):
    environ = {"MLOPS_STATE_DIR": str(tmp_path), "PREFECT_LOGGING_LEVEL": "DEBUG"}
    applied = _prefect_env.apply(environ)
    assert applied == {
        "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    assert environ["PREFECT_LOGGING_LEVEL"] == "DEBUG"
    assert (tmp_path / "prefect").is_dir()


def test_the_local_stack_server_is_used_while_it_is_up(tmp_path):
    (tmp_path / "stack.env").write_text("PREFECT_API_URL=http://127.0.0.1:4321/api\n")
    environ = {"MLOPS_STATE_DIR": str(tmp_path)}
    _prefect_env.apply(environ)
    assert environ["PREFECT_API_URL"] == "http://127.0.0.1:4321/api"


def test_running_the_training_module_applies_them_before_prefect_reads_its_settings(tmp_path):
    """As ``python -m flows.training``: Prefect's own settings object shows the values."""
    script = (
        "import runpy, sys\n"
        "sys.argv = ['flows.training', '--help']\n"
        "try:\n"
        "    runpy.run_module('flows.training', run_name='__main__', alter_sys=True)\n"
        "except SystemExit:\n"
        "    pass\n"
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
