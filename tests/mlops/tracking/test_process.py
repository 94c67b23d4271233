"""The recorder process: a run's records reach MLflow's store from a process of its own; a flow
that ends before the store is open leaves them to it; a process killed mid-run loses none; and
the flow's process never imports mlflow."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from mlops.core.spec import PipelineSpec, load_spec
from mlops.tracking.process import LOG, RecorderProcess, process_recorder
from mlops.tracking.recorder import Recorder
from tests.conftest import ROOT, write_spec
from tests.mlops.tracking._logs import wait_for_line

pytestmark = pytest.mark.slow  # each test starts Python processes that import mlflow

WAIT_S = 120  # the process imports mlflow on a loaded 2-core machine


def _spec(tmp_path: Path, uri: str) -> PipelineSpec:
    return load_spec(write_spec(tmp_path, "proc", {
        "name": "proc", "tracking": {"uri": uri, "timeout_s": WAIT_S}}))


def _recorder(spec: PipelineSpec, state: Path) -> tuple[Recorder, RecorderProcess]:
    return process_recorder(spec.model_dump(mode="json"), state, spec.tracking.timeout_s)


def test_records_reach_the_specs_sqlite_store_with_artifacts_beside_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the spec's path is relative: the flow's working folder's
    spec = _spec(tmp_path, "sqlite:///store/runs.db")
    recorder, process = _recorder(spec, tmp_path / "state")
    note = tmp_path / "decision.md"
    note.write_text("promote")
    recorder.start("proc", "a-run", {"mlops.kind": "training"})
    recorder.log("logging the params", params={"model.params.max_iter": "3"})
    run_id = recorder.wait_run_id()
    recorder.log_files("recording the files", [("evaluation", str(note))])
    recorder.end("recording the outcome", {"mlops.outcome": "promoted"}, "FINISHED")
    assert recorder.close() == []  # the records are sent; the process may still record them
    recorder._thread.join(WAIT_S)  # the thread reaps the process once it is done
    assert process.proc is not None and process.proc.returncode == 0

    run = MlflowClient(f"sqlite:///{tmp_path}/store/runs.db").get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "a-run"
    assert run.data.params == {"model.params.max_iter": "3"}
    assert run.data.tags["mlops.outcome"] == "promoted"
    stored = list((tmp_path / "store" / "artifacts").rglob("decision.md"))
    assert [p.parent.name for p in stored] == ["evaluation"]
    assert not (tmp_path / "mlruns").exists()  # not MLflow's default under the working folder


def test_a_flow_that_ends_before_the_store_opens_leaves_its_records_to_the_process(tmp_path):
    spec = _spec(tmp_path, f"sqlite:///{tmp_path}/runs.db")
    state = tmp_path / "state"
    recorder, process = _recorder(spec, state)
    recorder.start("proc", "cached", {})
    recorder.end("recording the outcome", {"mlops.outcome": "retained"}, "FINISHED")
    assert recorder.close() == []  # at once: the process is still importing mlflow
    assert recorder.handed_to == process.where

    recorder._thread.join(WAIT_S)  # the thread reaps the process once it is done
    assert process.proc is not None and process.proc.returncode == 0
    # the log says what the process cost the machine: at least importing mlflow
    spent = re.search(r"Recorded 3 record\(s\) .*\(cpu ([\d.]+) s\)",
                      (state / "mlflow" / LOG).read_text())
    assert spent is not None and float(spent.group(1)) > 0.1
    client = MlflowClient(f"sqlite:///{tmp_path}/runs.db")
    (run,) = client.search_runs([client.get_experiment_by_name("proc").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["mlops.outcome"] == "retained"
    assert not (state / "mlflow" / "handoff").exists()  # nothing needed the replay


def test_a_process_killed_mid_run_is_a_warning_and_loses_no_record(tmp_path):
    spec = _spec(tmp_path, f"sqlite:///{tmp_path}/runs.db")
    state = tmp_path / "state"
    recorder, process = _recorder(spec, state)
    recorder.start("proc", "a-run", {})
    run_id = recorder.wait_run_id()
    assert run_id and process.proc is not None
    os.kill(process.proc.pid, signal.SIGKILL)
    # dead before the next record is sent (a process that dies after the flow has passed
    # its last records on, without waiting for answers, takes them with it: docs/tracking.md)
    process.proc.wait(WAIT_S)

    recorder.log("recording the evaluation", metrics={"candidate.roc_auc": 0.8})
    recorder.end("recording the outcome", {"mlops.outcome": "promoted"}, "FINISHED")
    problems = recorder.close()
    assert len(problems) == 1, problems
    assert problems[0].startswith(
        "MLflow recorder process ended while recording the evaluation: RecorderGoneError: ")
    assert "exit code -9" in problems[0] and "go to another process" in problems[0]
    assert recorder.handed_to and recorder.handed_to.startswith("process ")

    wait_for_line(state / "mlflow" / "replay.log", "Recorded 3 handed-off record(s)", WAIT_S)
    run = MlflowClient(f"sqlite:///{tmp_path}/runs.db").get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics == {"candidate.roc_auc": 0.8}
    assert run.data.tags["mlops.outcome"] == "promoted"


# The flows' own modules and the recorder they start; the parent ends with the run recorded
# and mlflow never imported.
DEFAULT_PATH = """
import sys
import flows.drift_check, flows.rollback, flows.training
from mlops.core.settings import Settings
from mlops.core.spec import load_spec
from tasks.tracking import start_recorder

recorder = start_recorder(load_spec(sys.argv[1]), Settings(state_dir=sys.argv[2]))
recorder.start("quiet", "a-run", {})
assert recorder.wait_run_id(), recorder.new_problems()
recorder.end("recording the outcome", {}, "FINISHED")
assert recorder.close() == []
loaded = sorted(name for name in sys.modules if name.split(".")[0] == "mlflow")
assert not loaded, loaded
"""


def test_the_flows_process_never_imports_mlflow(tmp_path):
    spec = write_spec(tmp_path, "quiet", {"name": "quiet", "tracking": {"timeout_s": WAIT_S}})
    state = tmp_path / "state"
    done = subprocess.run(
        [sys.executable, "-c", DEFAULT_PATH, spec, str(state)], cwd=ROOT, capture_output=True,
        text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{state / 'mlflow' / 'mlflow.db'}")  # the default store
    (run,) = client.search_runs([client.get_experiment_by_name("quiet").experiment_id])
    assert run.info.status == "FINISHED"
