"""One training run per model at a time, across every deployment that starts one.

A Prefect global concurrency limit named after the model, with one slot, created on first use.
A run that finds the slot taken waits for it (and says so), so runs that arrive meanwhile queue:
none is lost and none runs in parallel. The slot's lease is renewed while the run holds it and
expires if the run's process dies, so a crash cannot block the model forever.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound


def slot_name(model: str) -> str:
    return f"training-{model}"


def ensure_slot(model: str) -> str:
    """Create the model's one-slot limit unless it exists; returns its name."""
    name = slot_name(model)
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=1)
                )
            except ObjectAlreadyExists:
                pass  # another run created it in between
    return name


@contextmanager
def training_slot(model: str) -> Iterator[None]:
    """Hold the model's training slot for the duration of the block, waiting for it if taken."""
    name = ensure_slot(model)
    get_run_logger().info("Waiting for the training slot '%s' (one run per model)", name)
    with concurrency(name, occupy=1, strict=True):
        get_run_logger().info("Holding the training slot '%s'", name)
        yield
