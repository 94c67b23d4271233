"""Background processes of the local stack: started from the project root, their output in a
log file, their PIDs recorded under ``<state>/pids/`` so that ``down`` stops exactly them."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from mlops.core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def pid_path(settings: Settings, name: str) -> Path:
    return settings.state_dir / "pids" / f"{name}.pid"


def running(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    return pid


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def start_process(
    command: Sequence[str],
    ready: str,
    env: dict[str, str],
    log_file: Path,
    timeout_s: float,
) -> subprocess.Popen[bytes]:
    """Start `command` in its own session from the project root, its output to `log_file`.

    Returns once `ready` (a URL) answers 200, or at once when `ready` is empty. The caller owns
    the process (the stack records its PID; a test terminates it).

    Raises:
        SystemExit: it exited or did not answer within `timeout_s`; the message carries the
            end of its log.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            list(command), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env=env, cwd=ROOT,
        )
    deadline = time.monotonic() + timeout_s
    while ready and time.monotonic() < deadline and proc.poll() is None:
        if answers(ready):
            return proc
        time.sleep(0.1)
    if not ready and proc.poll() is None:
        return proc
    if proc.poll() is None:
        proc.terminate()
        proc.wait(10)
    tail = log_file.read_text(errors="replace")[-2000:]
    raise SystemExit(
        f"{' '.join(command[:3])} did not come up "
        f"(exit code {proc.returncode}, waited up to {timeout_s:.0f} s for {ready or 'start'}); "
        f"log {log_file}:\n{tail}"
    )


def record_pid(settings: Settings, name: str, pid: int) -> None:
    pid_file = pid_path(settings, name)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(str(pid))
