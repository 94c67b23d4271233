"""Retry and cache settings shared by the tasks, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlops.core.errors import MlopsError
from mlops.core.lineage import run_key
from mlops.core.settings import get_settings
from serving.errors import BundleLoadError

IO_RETRY_DELAYS = [2, 5, 15]


# Errors that the same input raises again on every attempt: about the data (a value that
# does not fit a type), about the model file (a digest that does not match, a type outside
# the allow-list), or about the code. Retrying them only delays the message.
DETERMINISTIC_ERRORS: tuple[type[BaseException], ...] = (
    MlopsError, BundleLoadError, ValueError, TypeError, ArithmeticError, LookupError,
    AttributeError, NotImplementedError, AssertionError,
)


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry I/O failures, not errors about the data or the code: a missing file will not
    appear on retry, nor will an integer beyond int64 start to fit."""
    exc = state.result(raise_on_failure=False)
    return not isinstance(exc, DETERMINISTIC_ERRORS)


IO_TASK = {
    "retries": len(IO_RETRY_DELAYS),
    "retry_delay_seconds": IO_RETRY_DELAYS,
    "retry_condition_fn": retry_transient,
}


def stage_key(stage: str, parameters: dict[str, Any]) -> str:
    return run_key(stage, parameters["data"], parameters["spec"].spec_hash())


def output_path(stage: str, parameters: dict[str, Any], name: str) -> Path:
    """Where a stage writes its table `name`: named by the stage's cache key."""
    from mlops.data.frames import frame_path  # noqa: PLC0415 - pandas only for table stages

    return frame_path(get_settings().state_dir, stage_key(stage, parameters), name)


def stage_cache(stage: str) -> dict[str, Any]:
    """Task options that cache a stage by data fingerprint, spec hash and code version."""

    def key(context: Any, parameters: dict[str, Any]) -> str:
        return stage_key(stage, parameters)

    return {"cache_key_fn": key, "persist_result": True}


def run_stage(stage: Any, *args: Any, force: bool = False) -> Any:
    """Run a cached table stage; if its cached tables were deleted since, run it again.

    A cached result is a reference to Arrow files in the state folder, so it is only good while
    those files exist.
    """
    result = stage.with_options(refresh_cache=force)(*args)
    refs = result if isinstance(result, tuple) else (result,)
    if all(ref.exists() for ref in refs):
        return result
    return stage.with_options(refresh_cache=True)(*args)
