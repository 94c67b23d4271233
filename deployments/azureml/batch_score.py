"""Azure ML batch deployment driver script: the local batch scoring core behind ``init``/``run``.

Azure ML's batch runner calls ``init()`` once per scoring process and ``run(mini_batch)`` with a
list of input file paths (``mini_batch_size`` of them). Each file is scored as a local batch run
scores a partition (`mlops.batch.driver`, over `mlops.batch.run`): row batches, the endpoint's
scoring core, the same output columns, rows that cannot be scored kept with a reason. ``run``
returns the rows as one DataFrame; the deployment's ``append_row`` action writes them to the
job's output file. The code folder holds this script beside ``mlops/`` and ``serving/``
(`mlops.batch.azureml.stage_batch_code`); the mounted bundle is found as the online entry script
finds it (`serving.entry.find_bundle`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

_scorer: Any = None


def init() -> None:
    """Load the mounted bundle once per process (digest and type allow-list are checked)."""
    global _scorer
    # Azure ML imports this script by file path; its packages are beside it.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from mlops.batch.driver import file_scorer  # noqa: PLC0415 - importable once the path is set
    from serving.entry import find_bundle  # noqa: PLC0415

    _scorer = file_scorer(str(find_bundle(os.environ["AZUREML_MODEL_DIR"])))


def run(mini_batch: list[str]) -> Any:
    """Every row of the mini-batch's files, scored (a pandas DataFrame)."""
    return _scorer.score_files(mini_batch)
