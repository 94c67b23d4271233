"""Which method judges a column: Evidently 0.7's default choice, and the two methods whose
kernels are ours (``mlops.drift.scores``), described without importing Evidently (about 4 s).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from evidently.legacy.calculations.stattests.registry import StatTest

Kind = Literal["num", "cat"]  # Evidently's ColumnType values for numerical and categorical
# Evidently picks its small-sample tests at or below this many reference values.
SMALL_REFERENCE = 1000
# ...and treats a numeric column with at most this many distinct values as discrete.
FEW_VALUES = 5


def default_method(kind: Kind, reference_rows: int, distinct: int) -> str:
    """The stattest Evidently 0.7 picks when none is given (``_get_default_stattest``).

    Args:
        kind: 'num' or 'cat'.
        reference_rows: Non-missing reference values.
        distinct: Distinct values over reference and current together.
    """
    if reference_rows <= SMALL_REFERENCE:
        if kind == "num" and distinct > FEW_VALUES:
            return "ks"
        return "chisquare" if distinct > 2 else "z"
    if kind == "num" and distinct > FEW_VALUES:
        return "wasserstein"
    return "jensenshannon"


@dataclass(frozen=True)
class Kernel:
    """A default method computed by our own kernels: what a verdict needs of Evidently's
    StatTest, so that judging with it imports no Evidently."""

    name: str
    display_name: str
    default_threshold: float


# Evidently 0.7's names, labels and default thresholds for the two methods computed here;
# tests/mlops/drift/test_drift.py compares them with Evidently's StatTests.
KERNELS: dict[tuple[Kind, str], Kernel] = {
    ("num", "wasserstein"): Kernel("wasserstein", "Wasserstein distance (normed)", 0.1),
    ("cat", "jensenshannon"): Kernel("jensenshannon", "Jensen-Shannon distance", 0.1),
}
_EVIDENTLY = threading.Lock()  # the columns' threads import it once, one at a time


def stattests() -> dict[str, StatTest]:
    with _EVIDENTLY:
        from evidently.legacy.calculations import stattests as ev  # noqa: PLC0415 - ~4 s

    return {
        t.name: t for t in (
            ev.ks_stat_test, ev.chi_stat_test, ev.z_stat_test, ev.wasserstein_stat_test,
            ev.jensenshannon_stat_test,
        )
    }
