"""The local endpoint's process: start it, or keep the one at the URL if it serves this state
folder (``mlops endpoint-up``), and name whatever else holds its port; then the endpoint of
every model that the server hosts besides its default one."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from mlops.core.settings import Settings
from mlops.endpoint.backend import local_endpoint_url
from mlops.endpoint.local import LocalEndpointClient
from serving.config import state_fingerprint
from tools.deployments import configs_folder, model_specs
from tools.processes import record_pid, start_process

logger = logging.getLogger(__name__)


def start_endpoint(
    state_dir: str | Path,
    port: int,
    env: dict[str, str] | None = None,
    *,
    host: str | None = "127.0.0.1",
    timeout: float = 60.0,
    log_path: str | Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``python -m serving`` on `port` for `state_dir`; return once /health answers.

    Args:
        state_dir: The endpoint's state folder (``MLOPS_STATE_DIR`` of the process).
        port: The port to listen on.
        env: More environment for the process (endpoint settings).
        host: The interface; None leaves it to the endpoint's settings (loopback by default).
        timeout: Seconds to wait for /health.
        log_path: Its log (default ``<state_dir>/logs/endpoint-<port>.log``).
    """
    state_dir = Path(state_dir).resolve()
    log_file = Path(log_path or state_dir / "logs" / f"endpoint-{port}.log")
    command = [sys.executable, "-m", "serving", "--port", str(port)]
    if host:
        command += ["--host", host]
    base_url = f"http://{host or '127.0.0.1'}:{port}"
    proc = start_process(
        command, f"{base_url}/health",
        {**os.environ, "MLOPS_STATE_DIR": str(state_dir), **(env or {})}, log_file, timeout,
    )
    logger.info("Local endpoint up at %s (pid %s)", base_url, proc.pid)
    return proc


def health(url: str) -> dict[str, Any] | None:
    """What ``<url>/health`` answers: its JSON object, {} for another answer, None for none."""
    try:
        response = httpx.get(f"{url}/health", timeout=1.0)
        body = response.json() if response.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return None
    return body if isinstance(body, dict) else {}


def _listening(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def _process(pid: int | str) -> str:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return f"pid {pid}"
    return f"pid {pid} ({command.strip()[:160]})"


def port_holder(port: int) -> str:
    """The process listening on TCP `port`, from /proc (Linux), or a phrase saying it is not
    known (another user's process, or no procfs)."""
    sockets = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                sockets.add(f"socket:[{fields[9]}]")
    for fd in Path("/proc").glob("[0-9]*/fd/*") if sockets else ():
        try:
            if os.readlink(fd) in sockets:
                return _process(fd.parent.parent.name)
        except OSError:
            continue
    return f"a process this user cannot see (try `lsof -i :{port}`)"


def endpoint_up(settings: Settings, timeout_s: float = 60.0) -> None:
    """Start the endpoint in the background, or keep the one that answers if it is ours.

    Ours means it serves this state folder (its ``/health`` fingerprint matches): an endpoint
    of another folder has other keys and deployments, and a run against it would register a
    version it cannot deploy. Anything else at the URL's port stops the command, naming the
    process that holds it.
    """
    url = settings.endpoint_url.rstrip("/")
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    state_dir = settings.state_dir.resolve()
    answer = health(url)
    if answer is not None and answer.get("state") == state_fingerprint(state_dir / "endpoint"):
        logger.info("Endpoint already up at %s (pid %s)", url, answer.get("pid"))
        return
    if answer is not None or _listening(host, port):
        holder = _process(answer["pid"]) if answer and "pid" in answer else port_holder(port)
        raise SystemExit(
            f"{url} is taken by another process, not this project's endpoint for the state "
            f"folder {state_dir}: {holder}. Stop it, or set MLOPS_ENDPOINT_URL to a free port."
        )
    proc = start_endpoint(
        state_dir, port, host=None, timeout=timeout_s,
        log_path=settings.state_dir / "logs" / "endpoint.log",
    )
    record_pid(settings, "endpoint", proc.pid)


def model_endpoints_up(settings: Settings) -> dict[str, str]:
    """Create on the running server the endpoint of every model under the configs folder that it
    serves
    besides the default (kept if it exists), so each answers before its first deployment;
    returns each local model's endpoint URL by model name."""
    server = f"{settings.endpoint_url.rstrip('/')}/endpoints/"
    urls = {}
    for _, spec in model_specs(configs_folder(settings)):
        if spec.endpoint.backend != "local":
            continue
        urls[spec.name] = url = local_endpoint_url(spec, settings)
        if url.startswith(server):
            with LocalEndpointClient.from_settings(settings, url) as client:
                client.ensure_endpoint()
    return urls
