"""Start and stop the local services as background processes with recorded PIDs.

``python -m mlops.stack endpoint-up`` starts the scoring endpoint (if it is not already up),
``down`` stops exactly what was started here, ``status`` says what runs. Logs go to
``<state>/logs/``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from mlops.settings import Settings, get_settings

logger = logging.getLogger(__name__)


def _pid_file(settings: Settings, name: str) -> Path:
    return settings.state_dir / "pids" / f"{name}.pid"


def _running(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    return pid


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def endpoint_up(settings: Settings, timeout_s: float = 60.0) -> None:
    """Start the endpoint in the background unless it already answers."""
    url = settings.endpoint_url.rstrip("/")
    if _healthy(url):
        logger.info("Endpoint already up at %s", url)
        return
    port = url.rsplit(":", 1)[-1].split("/")[0]
    log_dir = settings.state_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    pid_file = _pid_file(settings, "endpoint")
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "endpoint.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "serving", "--port", port],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "MLOPS_STATE_DIR": str(settings.state_dir)},
        )
    pid_file.write_text(str(proc.pid))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"endpoint exited with {proc.returncode}; see {log_dir}/endpoint.log")
        if _healthy(url):
            logger.info("Endpoint up at %s (pid %s)", url, proc.pid)
            return
        time.sleep(0.3)
    raise SystemExit(f"endpoint did not answer at {url} within {timeout_s:.0f} s")


def down(settings: Settings) -> None:
    """Stop every process started by this module (by its recorded PID)."""
    for pid_file in sorted((settings.state_dir / "pids").glob("*.pid")):
        pid = _running(pid_file)
        if pid:
            os.killpg(pid, signal.SIGTERM)
            logger.info("Stopped %s (pid %s)", pid_file.stem, pid)
        pid_file.unlink(missing_ok=True)


def status(settings: Settings) -> None:
    for pid_file in sorted((settings.state_dir / "pids").glob("*.pid")):
        pid = _running(pid_file)
        logger.info("%s: %s", pid_file.stem, f"running (pid {pid})" if pid else "not running")
    url = settings.endpoint_url
    logger.info("endpoint %s: %s", url, "healthy" if _healthy(url) else "not answering")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["endpoint-up", "down", "status"])
    args = parser.parse_args()
    settings = get_settings()
    {"endpoint-up": endpoint_up, "down": down, "status": status}[args.command](settings)


if __name__ == "__main__":
    main()
