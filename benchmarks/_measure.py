"""Shared benchmark helpers: run a step in a fresh process, read its time and peak memory."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULT_PREFIX = "BENCH-RESULT "


def own_peak_bytes() -> int:
    """This process's peak resident memory since it started its program.

    Linux carries `ru_maxrss` across exec: a process started from a large parent reports the
    parent's size at the fork if its own peak stays below it. The memory map's high-water
    mark (`VmHWM`) starts again at exec.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def report(**figures: Any) -> None:
    """Called at the end of a measured process: its own peak RSS and CPU time (user + system,
    all threads) plus the given figures."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    own = {"peak_rss_bytes": own_peak_bytes(), "cpu_s": usage.ru_utime + usage.ru_stime}
    sys.stdout.write(RESULT_PREFIX + json.dumps({**own, **figures}) + "\n")
    sys.stdout.flush()


def run_measured(args: list[str], env: dict[str, str] | None = None,
                 log: Path | None = None, tree: bool = False) -> dict[str, Any]:
    """Run `python -m ...args` and return wall seconds plus what the process reported.

    The process reports its own peak (`report`), which leaves out processes it starts (Dask
    workers, say). With `tree`, a thread here also samples the memory of the process and all
    its descendants every `TREE_INTERVAL_S`, and the result carries the highest sums:
    ``tree_peak_rss_bytes``, resident memory summed (at least the process's own peak), where
    a page two processes share counts in each, and ``tree_peak_pss_bytes``, proportional set
    sizes summed, where a shared page counts once, divided among the processes that map it:
    what the tree holds of the machine's memory; and ``tree_cpu_s``, the CPU seconds of every
    process seen (the process's own figure at least: a child's last interval is missed). A
    sample can miss a spike shorter than the interval.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", *args], env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    sampler = _TreeSampler(proc.pid) if tree else None
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - started
    if sampler:
        sampler.stop()
    if log:
        log.write_text(stdout + stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed ({proc.returncode}):\n{stderr[-3000:]}")
    lines = [ln for ln in stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    result = {"wall_s": wall, **json.loads(lines[-1][len(RESULT_PREFIX):])}
    if sampler:
        result["tree_peak_rss_bytes"] = max(sampler.peak, result["peak_rss_bytes"])
        result["tree_peak_pss_bytes"] = sampler.pss_peak
        result["tree_cpu_s"] = max(sampler.cpu_s, result["cpu_s"])
    return result


TREE_INTERVAL_S = 0.05


class _TreeSampler:
    """The highest summed RSS and PSS of a process and its descendants, sampled on a thread.

    RSS comes from psutil; PSS from one read of /proc/<pid>/smaps_rollup per process (the
    kernel's own sum; psutil's `memory_full_info` walks every mapping, far slower at 50 ms).
    """

    def __init__(self, pid: int) -> None:
        import threading

        import psutil  # a dependency of dask's distributed; only benchmarks sample trees

        self._root = psutil.Process(pid)
        self._errors = (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess)
        self.peak = self.pss_peak = 0
        self._cpu: dict[int, float] = {}  # pid -> user + system seconds at its last sample
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        rss = pss = 0
        try:
            family = [self._root, *self._root.children(recursive=True)]
        except self._errors:
            return  # the process has ended
        for member in family:
            try:
                rss += member.memory_info().rss
                pss += pss_bytes(member.pid)
                times = member.cpu_times()
                self._cpu[member.pid] = times.user + times.system
            except (*self._errors, FileNotFoundError, ProcessLookupError):
                continue  # ended between the listing and the reading
        self.peak = max(self.peak, rss)
        self.pss_peak = max(self.pss_peak, pss)

    @property
    def cpu_s(self) -> float:
        """CPU seconds of every process seen, at its last sample (a process's last interval
        is missed)."""
        return sum(self._cpu.values())

    def _run(self) -> None:
        while not self._done.wait(TREE_INTERVAL_S):
            self._sample()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def pss_bytes(pid: int) -> int:
    """The proportional set size of process `pid` (Linux): its private pages plus, for each
    page it shares, the page's size divided by the number of processes mapping it.

    Raises:
        FileNotFoundError: the process has ended, or the kernel has no smaps_rollup (before
            Linux 4.14), with the path.
        ValueError: the file has no Pss line.
    """
    path = f"/proc/{pid}/smaps_rollup"
    with open(path, "rb") as rollup:
        for line in rollup:
            if line.startswith(b"Pss:"):
                return int(line.split()[1]) * 1024
    raise ValueError(f"{path} has no Pss line")


def machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = platform.processor() or platform.machine()
    return (f"{platform.node()}: {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


def code_version() -> str:
    """The commit the figures are measured on, and whether tracked files differed from it."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(  # results files are what benchmarks write, not code
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
             ":(exclude)benchmarks/results"],
            cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "code version unknown (not a git checkout)"
    return f"commit {head}" + (" with uncommitted changes" if dirty else "")


_CODE_AT_START = code_version()  # a benchmark module imports this first, before it measures


def stamp() -> str:
    """When, and on which code: goes into every results file's first line.

    The code is the one at the start of the run; if tracked files changed while it ran, the
    line says so rather than naming a commit the figures were not measured on.
    """
    now = code_version()
    code = _CODE_AT_START if now == _CODE_AT_START else (
        f"{_CODE_AT_START} (the checkout changed during the run: now {now})")
    return f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} on {code},"


def prefect_server(home: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """Start a Prefect server with its own home on a free port; returns it and its API URL."""
    import socket

    import httpx

    from tools.prefect_server import command as prefect_command

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            prefect_command("server", "start", "--host", "127.0.0.1", "--port", str(port)),
            env=env, cwd=Path(__file__).resolve().parent.parent, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/api"
    for _ in range(240):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"Prefect server did not start; see {log}")
