"""Feature stage: split the validated rows into training and holdout sets."""

from __future__ import annotations

from typing import NamedTuple

from prefect import get_run_logger, task

from mlops.frames import FrameRef, load_frame, save_frame
from mlops.lineage import DataRef
from mlops.spec import PipelineSpec
from tasks._options import output_path, stage_cache


class Split(NamedTuple):
    train: FrameRef
    test: FrameRef


@task(**stage_cache("features"))
def build_features(clean: FrameRef, data: DataRef, spec: PipelineSpec) -> Split:
    """Split once, so the candidate and the champion are judged on the same holdout rows.

    The preprocessing itself (impute, scale, encode) is fitted inside the model pipeline in
    `train_model`, on the training rows only, so serving cannot disagree with training.
    """
    from mlops.features import split_frame  # noqa: PLC0415 - scikit-learn; a cached run never needs it

    train, test = split_frame(load_frame(clean), spec)
    get_run_logger().info(
        "Split (%s): %d training rows, %d holdout rows", spec.split.method, len(train), len(test)
    )
    params = {"data": data, "spec": spec}
    return Split(
        save_frame(train, output_path("features", params, "train")),
        save_frame(test, output_path("features", params, "test")),
    )
