"""The spec's data sections: columns with their types and rules, where the data is, the split."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DType = Literal["int", "float", "category", "string", "bool", "datetime"]
Role = Literal["feature", "timestamp", "id", "ignore"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ColumnRules(_Strict):
    min: float | None = Field(None, description="Smallest allowed value (inclusive).")
    max: float | None = Field(None, description="Largest allowed value (inclusive).")
    allowed: list[str | int | float | bool] | None = Field(
        None, description="The only values allowed (categorical columns)."
    )
    max_null_fraction: float = Field(
        0.0, ge=0.0, le=1.0, description="Largest share of missing values allowed."
    )
    allow_nonfinite: bool | None = Field(
        None,
        description="Whether +inf and -inf may appear (float columns); default: "
        "data.allow_nonfinite.",
    )


class ColumnSpec(_Strict):
    name: str
    dtype: DType
    role: Role = "feature"
    rules: ColumnRules = Field(default_factory=ColumnRules)


class DataSpec(_Strict):
    url: str = Field(description="fsspec URL: a file, a folder of partitions or a glob.")
    format: Literal["parquet", "csv", "auto"] = "auto"
    extra_columns: Literal["error", "drop"] = Field(
        "error", description="Columns the spec does not name: fail (default) or drop them."
    )
    separator: str = Field(
        ",", min_length=1, max_length=1,
        description="Field separator of CSV files (one character, e.g. ';' or a tab).",
    )
    allow_nonfinite: bool = Field(
        False, description="Whether float columns may hold +inf and -inf (per column: "
        "rules.allow_nonfinite).",
    )
    missing_target: Literal["error", "drop"] = Field(
        "error", description="Rows whose target is missing: fail (default) or drop them; the "
        "bundle's lineage counts them (source_rows minus clean_rows).",
    )


class SplitSpec(_Strict):
    method: Literal["random", "time"] = "random"
    test_size: float = Field(0.2, gt=0.0, lt=1.0)
    time_column: str | None = Field(None, description="Timestamp column for a time split.")
    seed: int = 42

    @model_validator(mode="after")
    def _time_needs_column(self) -> SplitSpec:
        if self.method == "time" and not self.time_column:
            raise ValueError("split.method 'time' needs split.time_column")
        return self
