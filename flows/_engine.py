"""One adjustment to Prefect's flow engine, guarded by the exact Prefect code it replaces.

Prefect 3.8.8's flow-run heartbeat thread sleeps in one-second steps and the engine joins it
when the flow function returns, so every flow run ends on the next whole second after its
last task: on average half a second of nothing, on every run (a cached training run takes
about 3 s in all). The replacement below is Prefect's own `_send_heartbeats` with the steps
replaced by one `Event.wait`, which returns as soon as the run ends. Heartbeats are sent as
before (zombie-run detection relies on them).

Upstream: the one-second steps came with the heartbeat's move into the flow engine
(PrefectHQ/prefect#19641, `time.sleep(1)` in `heartbeat_loop`, joined with a 2 s timeout). When
a Prefect release waits on the stop event instead, this file goes.

It is installed only over the function it was written against (its source's SHA-256); any
other Prefect keeps its own, says so in a warning at every flow import, and
`tests/flows/test_engine.py` fails, so an upgrade is a deliberate look at this file rather than
a silent change.
"""

from __future__ import annotations

import contextvars
import hashlib
import inspect
import logging
import threading
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger(__name__)

# SHA-256 of `inspect.getsource(prefect.flow_engine._send_heartbeats)` in prefect 3.8.8
REPLACED_SOURCE_SHA256 = "83e152cb73a04e977ca181188e99b3d583c894892b5456043b2eb51e45dbe996"
THREAD_NAME = "flow-run-heartbeat"


@contextmanager
def _send_heartbeats(engine: Any, join_on_exit: bool = True) -> Generator[None, None, None]:
    """Prefect's `_send_heartbeats`, stopping as soon as the flow run ends."""
    from prefect.flow_engine import MINIMUM_HEARTBEAT_INTERVAL  # noqa: PLC0415

    heartbeat_seconds = engine.heartbeat_seconds
    if heartbeat_seconds is None:
        yield
        return
    heartbeat_seconds = max(heartbeat_seconds, MINIMUM_HEARTBEAT_INTERVAL)
    resource, related = engine._build_heartbeat_event_template()
    stop_event = threading.Event()

    def heartbeat_loop() -> None:
        while not stop_event.is_set():
            if engine.flow_run and engine.flow_run.state and engine.flow_run.state.is_final():
                engine.logger.debug("Flow run in terminal state, stopping heartbeat")
                return
            try:
                engine._emit_flow_run_heartbeat(resource, related)
            except Exception:  # noqa: BLE001 - as Prefect's: a lost heartbeat is not fatal
                engine.logger.debug("Failed to emit heartbeat", exc_info=True)
            if stop_event.wait(heartbeat_seconds):
                return

    # As in Prefect: the thread sees the caller's settings context (its API URL).
    heartbeat_ctx = contextvars.copy_context()
    thread = threading.Thread(target=heartbeat_ctx.run, args=(heartbeat_loop,), daemon=True,
                              name=THREAD_NAME)
    thread.start()
    engine.logger.debug("Started flow run heartbeat context")
    try:
        yield
    finally:
        stop_event.set()
        if join_on_exit:
            thread.join(timeout=2)
        engine.logger.debug("Stopped flow run heartbeat context")


_send_heartbeats.replaces_prefect = True  # type: ignore[attr-defined]


def install() -> bool:
    """Put the prompt-stopping heartbeat in Prefect's flow engine; True if it is in place."""
    import prefect.flow_engine as engine  # noqa: PLC0415

    current = engine._send_heartbeats
    if getattr(current, "replaces_prefect", False):
        return True
    digest = hashlib.sha256(inspect.getsource(current).encode()).hexdigest()
    if digest != REPLACED_SOURCE_SHA256:
        logger.warning(
            "flows/_engine.py was written against prefect 3.8.8's _send_heartbeats and this "
            "Prefect's differs, so it is not installed: flow runs may end up to a second late. "
            "Check whether PrefectHQ/prefect still sleeps in one-second steps there, then "
            "update or delete flows/_engine.py."
        )
        return False
    engine._send_heartbeats = _send_heartbeats
    return True
