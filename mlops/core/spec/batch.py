"""The spec's batch section: what batch scoring copies beside each prediction, and how it reads;
how an Azure ML batch deployment of the model runs (`batch.azureml`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mlops.core.spec.columns import _Strict
from serving.columns import normalize_name


class AzureMLBatchSpec(_Strict):
    """An Azure ML batch endpoint deployment (mlops/batch/azureml.py): where and how it runs."""

    compute: str = Field(description="The Azure ML compute cluster the deployment runs on.")
    instance_count: int = Field(1, ge=1, description="Nodes of the cluster a job uses.")
    max_concurrency_per_instance: int = Field(
        1, ge=1, description="Scoring processes per node; one predict already uses a core.")
    mini_batch_size: int = Field(
        10, ge=1, description="Input files handed to one run() call of the driver script.")
    output_action: Literal["append_row", "summary_only"] = Field(
        "append_row", description="append_row: every scored row goes into the job's output "
        "file; summary_only: the job only counts files done.")
    max_retries: int = Field(3, ge=0, description="Retries of a mini-batch that fails or "
                             "times out.")
    timeout: int = Field(300, ge=30, description="Seconds a mini-batch may take.")
    error_threshold: int = Field(
        -1, ge=-1, description="Files that may fail before the job fails; -1: any number.")


class BatchSpec(_Strict):
    """How `mlops score-batch` (flows/batch_scoring.py) scores a dataset with the champion.

    The output always holds the spec's `id` columns, the prediction, class probabilities for
    classifiers, the model's name and version, the scoring time and an error column.
    """

    passthrough: list[str] = Field(
        default_factory=list,
        description="Spec columns copied from the input beside each prediction (besides the "
        "id columns, which are always copied), e.g. a region to aggregate by.",
    )
    rows_per_batch: int = Field(
        131_072, ge=1024, le=4_194_304,
        description="Rows read, scored and written at a time: memory grows with it, not with "
        "the size of a file.",
    )
    probabilities: bool = Field(
        True, description="Write class probabilities (one column per class) for classifiers.",
    )
    azureml: AzureMLBatchSpec | None = Field(
        None, description="An Azure ML batch endpoint deployment of the model, if it has one.",
    )

    @model_validator(mode="after")
    def _distinct(self) -> BatchSpec:
        keys = [normalize_name(c) for c in self.passthrough]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"batch.passthrough repeats columns: {dupes}")
        return self
