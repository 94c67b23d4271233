"""The local stack's endpoint command: it keeps only an endpoint of its own state folder."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from mlops.core.settings import Settings
from tests.conftest import free_port
from tools.endpoint_process import endpoint_up, start_endpoint

pytestmark = [pytest.mark.service, pytest.mark.slow]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(15)


def test_endpoint_up_keeps_only_an_endpoint_of_its_own_state_folder(tmp_path):
    ours, other = tmp_path / "ours", tmp_path / "other"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_endpoint(other, port, {"MLOPS_ENDPOINT_COLLECT": "false"})
    try:
        with pytest.raises(SystemExit) as caught:
            endpoint_up(Settings(state_dir=ours, endpoint_url=url))
        message = str(caught.value)
        assert f"pid {proc.pid}" in message and "-m serving" in message
        assert str(ours.resolve()) in message
        assert not (ours / "pids" / "endpoint.pid").exists()  # nothing started
        endpoint_up(Settings(state_dir=other, endpoint_url=url))  # its own folder: kept
        assert not (other / "pids" / "endpoint.pid").exists()
        assert proc.poll() is None
    finally:
        _stop(proc)


def test_endpoint_up_names_a_process_that_holds_the_port_without_answering(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(SystemExit) as caught:
            endpoint_up(Settings(state_dir=tmp_path, endpoint_url=f"http://127.0.0.1:{port}"))
    assert f"pid {os.getpid()}" in str(caught.value)
    assert not (tmp_path / "pids" / "endpoint.pid").exists()
