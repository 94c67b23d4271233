"""Records a flow could not leave to its recorder process (the process ended without
answering, or they were too many to send before the store was open), recorded by a process of
their own (``python -m mlops.tracking.replay <file>``).

The file holds the spec, the state folder, the flow's working folder, the run id so far and the
records; the process opens the same store, makes the calls in order, stops at the first error
(logged to ``<state>/mlflow/replay.log`` beside the file's folder) and deletes the file when
done. A record the ended process made without saying so is made again: MLflow keeps the same
param and tag values once, and a second ``start_run`` is a second run.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from mlops.core.lineage import source_root
from mlops.tracking.local import local_folder

logger = logging.getLogger("mlops.tracking.replay")


def hand_off(state_dir: Path, spec: dict[str, Any], ops: list[dict[str, Any]],
             run_id: str | None) -> str:
    """Write the records to ``<state>/mlflow/handoff/`` and start the process that sends
    them; returns where they went, for the log."""
    folder = local_folder(state_dir) / "handoff"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.json"
    path.write_text(json.dumps({"spec": spec, "state_dir": str(Path(state_dir).resolve()),
                                "cwd": os.getcwd(), "run_id": run_id, "ops": ops},
                               default=str))
    log = folder.parent / "replay.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own module, on a path we wrote
            [sys.executable, "-m", "mlops.tracking.replay", str(path)], stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            cwd=source_root(),
        )
    return f"process {proc.pid} (log {log})"


def replay(path: Path) -> None:
    from mlops.core.spec import PipelineSpec  # noqa: PLC0415 - the process's own imports
    from mlops.tracking.backend import open_store  # noqa: PLC0415 - mlflow
    from mlops.tracking.recorder import Op, apply, stopped  # noqa: PLC0415

    payload = json.loads(path.read_text())
    os.chdir(payload["cwd"])  # a relative sqlite:/// path is the flow's
    run_id, doing = payload["run_id"], "opening the store"
    try:
        store = open_store(PipelineSpec.model_validate(payload["spec"]), payload["state_dir"])
        for raw in payload["ops"]:
            op = Op(**raw)
            doing = op.doing
            run_id = apply(store, op, run_id)
    except Exception as exc:  # noqa: BLE001 - the flow is gone: the log is all there is
        logger.warning("%s (records of %s)", stopped(doing, exc), path.name)
    else:
        logger.info("Recorded %d handed-off record(s) in MLflow run %s", len(payload["ops"]),
                    run_id)
    finally:
        path.unlink(missing_ok=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    replay(Path(sys.argv[1]))
