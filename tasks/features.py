"""Feature stage: split the validated rows into training and holdout sets."""

from __future__ import annotations

from prefect import get_run_logger, task

from mlops.core.lineage import DataRef
from mlops.core.spec import PipelineSpec
from mlops.data.frames import FrameRef, frame_columns, load_frame, release_memory, take_rows
from mlops.model.results import Split
from tasks._options import output_path, stage_cache


@task(**stage_cache("features"))
def build_features(clean: FrameRef, data: DataRef, spec: PipelineSpec) -> Split:
    """Split once, so the candidate and the champion are judged on the same holdout rows.

    The preprocessing itself (impute, scale, encode) is fitted inside the model pipeline in
    `train_model`, on the training rows only, so serving cannot disagree with training.
    """
    from mlops.model.features import (  # noqa: PLC0415 - scikit-learn; a cached run never needs it
        split_columns,
        split_positions,
    )

    # Only the columns that decide the split are loaded; Arrow gathers the rows of each part.
    keys = [c for c in split_columns(spec) if c in frame_columns(clean)]
    train, test = split_positions(load_frame(clean, keys), spec)
    get_run_logger().info(
        "Split (%s): %d training rows, %d holdout rows", spec.split.method, len(train), len(test)
    )
    params = {"data": data, "spec": spec}
    split = Split(
        take_rows(clean, train, output_path("features", params, "train")),
        take_rows(clean, test, output_path("features", params, "test")),
    )
    release_memory()
    return split
