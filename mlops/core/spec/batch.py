"""The spec's batch section: what batch scoring copies beside each prediction, and how it reads."""

from __future__ import annotations

from pydantic import Field, model_validator

from mlops.core.spec.columns import _Strict
from serving.columns import normalize_name


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

    @model_validator(mode="after")
    def _distinct(self) -> BatchSpec:
        keys = [normalize_name(c) for c in self.passthrough]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"batch.passthrough repeats columns: {dupes}")
        return self
