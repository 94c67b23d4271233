"""The spec's drift section: which columns are judged, with which methods and thresholds."""

from __future__ import annotations

from pydantic import Field, model_validator

from mlops.core.spec.columns import _Strict


class DriftSpec(_Strict):
    """How the drift check judges the champion's reference sample against recent data.

    Per column, Evidently's default method is used (chosen by column type, reference size and
    number of distinct values) with its default threshold, unless overridden here.
    """

    drift_share: float = Field(
        0.5, gt=0.0, le=1.0,
        description="Dataset drift (and retraining) when at least this share of the checked "
        "columns drift; 0.5 is Evidently's DataDriftPreset default.",
    )
    thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="Column -> drift threshold instead of the method's default (distances: "
        "drift at or above it; p-value tests: drift below it).",
    )
    methods: dict[str, str] = Field(
        default_factory=dict,
        description="Column -> Evidently stattest name (e.g. psi, ks, jensenshannon) instead "
        "of Evidently's default choice.",
    )
    min_current_rows: int = Field(
        1000, ge=1,
        description="Fewer current rows than this: no verdict, no retraining (small samples "
        "make distances noisy: the Wasserstein distance of 100 undrifted rows is often near 0.1).",
    )
    window_hours: int = Field(
        24, ge=1, le=24 * 90, description="Current window: the last N hours of inference data."
    )
    cooldown_hours: float = Field(
        24, ge=0, le=24 * 90,
        description="After a drift-triggered training run, no further drift-triggered run for "
        "this many hours: a drift that persists is not retrained every hour (0: no cooldown).",
    )
    report_rows: int = Field(
        10_000, ge=1000,
        description="Most rows per side in Evidently's HTML report (a seeded sample); the "
        "verdicts are always computed on every row.",
    )

    @model_validator(mode="after")
    def _thresholds_positive(self) -> DriftSpec:
        bad = {k: v for k, v in self.thresholds.items() if not v > 0}
        if bad:
            raise ValueError(f"drift.thresholds must be > 0, got {bad}")
        return self
