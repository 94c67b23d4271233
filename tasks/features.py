"""Feature stage: split the validated rows into training and holdout sets."""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd
from prefect import get_run_logger, task

from mlops.features import split_frame
from mlops.lineage import DataRef
from mlops.spec import PipelineSpec
from tasks._options import stage_cache


class Split(NamedTuple):
    train: pd.DataFrame
    test: pd.DataFrame


@task(**stage_cache("features"))
def build_features(clean: pd.DataFrame, data: DataRef, spec: PipelineSpec) -> Split:
    """Split once, so the candidate and the champion are judged on the same holdout rows.

    The preprocessing itself (impute, scale, encode) is fitted inside the model pipeline in
    `train_model`, on the training rows only, so serving cannot disagree with training.
    """
    train, test = split_frame(clean, spec)
    get_run_logger().info(
        "Split (%s): %d training rows, %d holdout rows", spec.split.method, len(train), len(test)
    )
    return Split(train, test)
