"""Prefect settings of a flow run as a script: the Makefile's, applied before Prefect loads."""

from __future__ import annotations

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

