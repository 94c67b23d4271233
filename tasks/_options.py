"""Retry and cache settings shared by the tasks, defined once."""

from __future__ import annotations

from typing import Any

from mlops.errors import MlopsError
from mlops.lineage import run_key

IO_RETRY_DELAYS = [2, 5, 15]


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry I/O failures, not our own errors: a missing file will not appear on retry."""
    exc = state.result(raise_on_failure=False)
    return not isinstance(exc, MlopsError)


IO_TASK = {
    "retries": len(IO_RETRY_DELAYS),
    "retry_delay_seconds": IO_RETRY_DELAYS,
    "retry_condition_fn": retry_transient,
}


def stage_cache(stage: str) -> dict[str, Any]:
    """Task options that cache a stage's result by data fingerprint, spec hash and code."""

    def key(context: Any, parameters: dict[str, Any]) -> str:
        return run_key(stage, parameters["data"], parameters["spec"].spec_hash())

    return {"cache_key_fn": key, "persist_result": True}
