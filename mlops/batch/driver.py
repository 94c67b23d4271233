"""What an Azure ML batch deployment's driver script (deployments/azureml/batch_score.py) runs.

Azure ML's batch runner calls the script's ``init()`` once per scoring process and
``run(mini_batch)`` with a list of input file paths. `FileScorer` scores each file exactly as a
local batch run scores a partition (`mlops.batch.run.scored_batches`: row batches, the
endpoint's scoring core, the same output columns) and returns the rows as one DataFrame, which
the deployment's ``append_row`` output action appends to its output file. What the output
holds (ids, passthrough columns, probabilities, rows per batch) travels as the deployment's
``MLOPS_BATCH_PLAN`` environment variable (`plan_settings`), written from the spec when the
deployment entity is built; the model is the bundle Azure ML mounted.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from mlops.batch.partitions import ModelRef, OutputPlan
from mlops.batch.run import scored_batches, scorer_for
from mlops.data.storage import FileInfo
from serving.bundle import MANIFEST_FILE

logger = logging.getLogger(__name__)

PLAN_VARIABLE = "MLOPS_BATCH_PLAN"
# Known only where the job runs: the mounted model, and the fast-path switch (as the endpoint).
_FROM_THE_JOB = ("output_url", "model", "fast")


def plan_settings(plan: OutputPlan) -> str:
    """The plan's output settings as the JSON value of `PLAN_VARIABLE`."""
    return json.dumps({k: v for k, v in asdict(plan).items() if k not in _FROM_THE_JOB},
                      sort_keys=True)


class FileScorer:
    """A bundle folder's model scoring whole files into output rows."""

    def __init__(self, bundle_dir: str, settings: str, fast: bool) -> None:
        """Load the model (every check of `serving.bundle.load_bundle`) with `settings`.

        Raises:
            ValueError: `settings` names a setting an `OutputPlan` does not have.
        """
        manifest = json.loads((Path(bundle_dir) / MANIFEST_FILE).read_text())
        model = ModelRef(manifest["model_name"], str(manifest["version"]), bundle_dir,
                         manifest["model_sha256"])
        given = json.loads(settings)
        unknown = sorted(set(given) - {f.name for f in fields(OutputPlan)})
        if unknown or set(given) & set(_FROM_THE_JOB):
            raise ValueError(f"{PLAN_VARIABLE} holds settings it may not: {sorted(given)}")
        given.update(ids=tuple(given["ids"]), passthrough=tuple(given["passthrough"]), fast=fast)
        self.plan = OutputPlan(output_url="", model=model, **given)
        self.scorer = scorer_for(model, self.plan.probabilities, fast)

    def score_files(self, paths: list[str]) -> pd.DataFrame:
        """Every row of every file, in order, with the columns a local batch run writes.

        Raises:
            DataLoadError: a file cannot be read or lacks a needed column (the batch runner
                counts the mini-batch as failed and retries it, as the deployment says).
        """
        frames: list[pd.DataFrame] = []
        for path in paths:
            info = FileInfo(str(path), os.path.getsize(path), "")
            batches = [batch for batch, _ in scored_batches(info, self.plan, self.scorer)]
            frames += [pa.Table.from_batches(batches).to_pandas()] if batches else []
            logger.info("%s: %d rows", path, sum(b.num_rows for b in batches))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def fast_path() -> bool:
    from serving.config import EndpointConfig  # noqa: PLC0415 - reads the environment

    return EndpointConfig().fast_path


def file_scorer(bundle_dir: str, environ: Any = os.environ) -> FileScorer:
    return FileScorer(bundle_dir, environ[PLAN_VARIABLE], fast_path())
