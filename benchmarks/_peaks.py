"""Peak memory per pipeline stage, measured inside the process that runs the flow.

A thread reads the kernel's resident-memory high-water mark (`VmHWM`) every few milliseconds,
charges it to the stage the main thread is in (the outermost function on its stack from a
stage module, `tasks/*.py` but not `tasks/_*.py`: the Prefect task), and resets the mark
(`/proc/self/clear_refs`), so each stage gets the highest memory seen while it ran. Linux only;
elsewhere it records nothing.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = "(outside the stages)"


def _high_water_mark() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_high_water_mark() -> None:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


class StagePeaks:
    """Use as a context manager around the flow call; `peaks` maps stage name -> bytes.

    Resetting the mark also resets what `getrusage` reports as the process's peak, so `overall`
    keeps the highest mark seen, including the one from before the first reset.
    """

    def __init__(self, package: str = "tasks", interval: float = 0.01):
        self.folder = str(ROOT / package) + "/"
        self.interval = interval
        self.peaks: dict[str, int] = {}
        self.overall = 0
        self._main = threading.main_thread().ident
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StagePeaks:
        try:
            self.overall = _high_water_mark()
            _reset_high_water_mark()
        except OSError:
            return self  # not Linux, or not allowed: no figures
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()

    def _stage(self) -> str:
        frame = sys._current_frames().get(self._main)
        stage = OUTSIDE
        while frame is not None:  # innermost to outermost: keep the outermost task function
            path = frame.f_code.co_filename
            if path.startswith(self.folder) and not Path(path).name.startswith("_"):
                stage = frame.f_code.co_qualname
            frame = frame.f_back
        return stage

    def _sample(self) -> None:
        stage, peak = self._stage(), _high_water_mark()
        _reset_high_water_mark()
        self.peaks[stage] = max(self.peaks.get(stage, 0), peak)
        self.overall = max(self.overall, peak)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()
        self._sample()
