"""The recorder process: MLflow's calls in a process of their own, fed a run's records over a
pipe (``python -m mlops.tracking.process``).

Opening a store other than the embedded SQLite one imports mlflow, seconds of CPU
(`sqlite_store` says why the embedded one does not); on a thread of the flow's process that
competes for the GIL with loading and training. So the flow starts this process when it
starts, and the recorder's thread (`recorder.Recorder`) only moves plain data: one JSON line
per record (an `Op`) to the process's input, one line back per record (the run id, or the
store's error). The flow's process never imports mlflow.

The process reads its settings first (one line: the spec, the state folder, the flow's working
folder), lowers its priority below the flow's, and only then opens the store; it answers
``{"opened": true}`` or the error. It stops at the first error of the store and ends when its
input ends; its log is ``<state>/mlflow/recorder.log``, whose last line gives the
process's CPU. Its session is its own, so a flow that ends before the store is open sends what
it has and leaves (`RecorderProcess.detach`), and one that ends with the store open sends the
rest without waiting for answers (`RecorderProcess.leave`): the process records it alone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from mlops.core.errors import RecorderError, RecorderGoneError
from mlops.core.lineage import source_root
from mlops.tracking.local import local_folder
from mlops.tracking.recorder import Op, Recorder, apply, short, stopped
from mlops.tracking.replay import hand_off

logger = logging.getLogger("mlops.tracking.process")

LOG = "recorder.log"
# Below the flow's priority: recording waits, loading and training do not (2 cores, one of them
# busy with the flow, the other with its OpenMP threads while it trains).
NICENESS = 10
# What a detaching flow writes into the pipe at most without a reader: Linux gives a pipe
# 64 KiB; more would block the flow until the process reads.
PIPE_ROOM = 48 * 1024


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message, default=str).encode() + b"\n"


class RecorderProcess:
    """The flow's end of the pipe: starts the process, then is the `Store` the recorder's
    thread calls once the process has opened the store.

    Args:
        spec: The pipeline spec, as JSON data.
        state_dir: The state folder (the log goes to its ``mlflow/`` folder).
    """

    def __init__(self, spec: dict[str, Any], state_dir: Path):
        self.log_path = local_folder(state_dir) / LOG
        self.proc: subprocess.Popen[bytes] | None = None
        self._error: Exception | None = None
        self._input = threading.Lock()
        self._leaving = False
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "ab") as err:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "mlops.tracking.process"], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, stderr=err, start_new_session=True,
                    cwd=source_root(),
                )
            self._send(_line({"spec": spec, "state_dir": str(Path(state_dir).resolve()),
                              "cwd": os.getcwd()}))
        except (OSError, RecorderError) as exc:
            self._error = exc

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def where(self) -> str:
        return f"process {self.pid} (log {self.log_path})"

    def _send(self, data: bytes, last: bool = False) -> None:
        if self.proc is None or self.proc.stdin is None:
            raise RecorderError(f"no recorder process: {self._error}")
        with self._input:
            try:
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
                if last:
                    self.proc.stdin.close()
                return
            except (BrokenPipeError, ValueError):
                pass  # the process is gone: say how it ended, outside the lock
        raise self._ended("took no more records")

    def _ended(self, how: str) -> RecorderGoneError:
        self.close()
        code = self.proc.returncode if self.proc is not None else None
        return RecorderGoneError(f"recorder process {self.pid} ended with exit code {code} and "
                                 f"{how} (log {self.log_path})")

    def _answer(self) -> dict[str, Any]:
        """The process's next answer; raises what it reported, or that it ended."""
        if self.proc is None or self.proc.stdout is None:
            raise RecorderError(f"no recorder process: {self._error}")
        line = self.proc.stdout.readline()
        if not line:
            raise self._ended("did not answer")
        answer = json.loads(line)
        if "error" in answer:
            self.close()
            raise RecorderError(answer["error"])
        return answer

    def opened(self) -> RecorderProcess:
        """This store once the process has opened MLflow's (the recorder's `open_store`)."""
        if self._error is not None:
            raise self._error
        self._answer()
        return self

    def _call(self, method: str, **kwargs: Any) -> str | None:
        """Send one record and wait for its answer, or, once the flow is leaving, only send
        it: the process records it after the flow has gone."""
        leaving = self._leaving
        self._send(_line({"doing": method, "method": method, "kwargs": kwargs}))
        return None if leaving else self._answer().get("run_id")

    def start_run(self, experiment: str, name: str, tags: dict[str, str]) -> str:
        return str(self._call("start_run", experiment=experiment, name=name, tags=tags) or "")

    def log(self, run_id: str, *, params: dict[str, str] | None = None,
            metrics: dict[str, float] | None = None, tags: dict[str, str] | None = None) -> None:
        self._call("log", params=params, metrics=metrics, tags=tags)

    def log_files(self, run_id: str, files: list[tuple[str, str]]) -> None:
        self._call("log_files", files=files)

    def end_run(self, run_id: str, status: str) -> None:
        self._call("end_run", status=status)

    def set_champion(self, model_name: str, version: int, source: str,
                     run_id: str | None) -> None:
        self._call("set_champion", model_name=model_name, version=version, source=source)

    def detach(self, ops: list[dict[str, Any]], run_id: str | None) -> str:
        """Give the process the records of a flow that ends before the store is open, and
        leave it to record them (the recorder's `handoff`). No record has reached the store
        yet, so `run_id` is None.

        Raises:
            RecorderError: the process is gone, or the records would not fit the pipe without
                a reader; the recorder then hands them to `replay` instead.
        """
        data = b"".join(_line(op) for op in ops)
        if len(data) > PIPE_ROOM:
            self._send(b"", last=True)
            raise RecorderError(f"{len(data)} bytes of records exceed the pipe's room "
                                f"({PIPE_ROOM} bytes) before the store is open")
        self._send(data, last=True)
        return self.where

    def leave(self) -> str:
        """The flow is ending with the store open (the recorder's `leave`): the records not
        sent yet are only sent, not waited for; the process records them in its own session,
        after the flow has gone if need be. Returns where they go."""
        self._leaving = True
        return self.where

    def close(self) -> None:
        """End the process's input, read what it still answers and wait for its end (it
        records nothing more once its input ends)."""
        if self.proc is None:
            return
        with self._input, contextlib.suppress(OSError):
            self.proc.stdin.close()  # type: ignore[union-attr]
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            with contextlib.suppress(OSError):
                self.proc.stdout.read()
            self.proc.stdout.close()
        self.proc.wait()


def process_recorder(spec: dict[str, Any], state_dir: Path,
                     timeout_s: float) -> tuple[Recorder, RecorderProcess]:
    """A recorder whose store is a recorder process started now. The records of a flow that
    ends before the store opens are left to that process; those a process that ended did not
    take go to `replay`."""
    process = RecorderProcess(spec, state_dir)
    recorder = Recorder(process.opened, timeout_s, handoff=process.detach,
                        rescue=lambda ops, run_id: hand_off(state_dir, spec, ops, run_id),
                        leave=process.leave)
    return recorder, process


class _Answers:
    """The process's answers to the flow; a flow that has left reads none, and that is fine."""

    def __init__(self, fd: int):
        self.fd = fd
        self.listening = True

    def __call__(self, message: dict[str, Any]) -> None:
        if self.listening:
            try:
                os.write(self.fd, _line(message))
            except OSError:
                self.listening = False


def serve(source: IO[bytes], answer: _Answers) -> None:
    """Open the store the first line names, then record each following line in order."""
    settings = json.loads(source.readline())
    os.chdir(settings["cwd"])  # a relative sqlite:/// path is the flow's
    if hasattr(os, "nice"):  # POSIX
        os.nice(NICENESS)
    from mlops.core.spec import PipelineSpec  # noqa: PLC0415 - after the priority drop
    from mlops.tracking.backend import open_store  # noqa: PLC0415

    doing, run_id, count = "opening the store", None, 0
    try:
        store = open_store(PipelineSpec.model_validate(settings["spec"]), settings["state_dir"])
        answer({"opened": True})
        for line in source:
            op = Op(**json.loads(line))
            doing = op.doing
            run_id = apply(store, op, run_id)
            count += 1
            answer({"run_id": run_id})
    except Exception as exc:  # noqa: BLE001 - reported to the flow, which warns; logged here
        logger.warning("%s", stopped(doing, exc))
        answer({"error": short(exc)})
    else:
        logger.info("Recorded %d record(s) in MLflow run %s (%s)", count, run_id, cpu_spent())


def cpu_spent() -> str:
    """This process's CPU so far (user + system, all threads), for its log: what tracking
    costs the machine beside the flow."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return f"cpu {usage.ru_utime + usage.ru_stime:.2f} s"


def main() -> None:
    """Answers go to the pipe the flow reads; anything else written to stdout (a library's
    print) goes to the log instead, where it cannot be taken for an answer."""
    answers = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    serve(sys.stdin.buffer, _Answers(answers))


if __name__ == "__main__":
    main()
