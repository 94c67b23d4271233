"""Mirror (shadow) traffic: sending copies of live requests to the mirrored deployment.

The mirror traffic table (``serving.traffic``) draws which live requests are copied; only
requests the traffic table routes are, not one that names its deployment in
``azureml-model-deployment`` (as on Azure ML). A copy is queued after the live answer has been
sent, so the client never waits for it; one task on the event loop works through the queue and
the server scores each copy in a worker thread, so a slow shadow shares the CPU with live
requests but never holds the event loop. The answer is discarded; the server counts it in the
deployment's metrics (``serving.metrics``, ``mlops_mirrored_requests_total`` too) and writes
it to the inference log marked ``mirrored``. When ``limit`` copies wait (the shadow is slower
than the share it gets), new copies are dropped and counted (``mlops_mirror_dropped_total``)
rather than queued without limit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import orjson

from serving.errors import ServingError
from serving.metrics import Metrics
from serving.state import READY, Deployment, Endpoint

logger = logging.getLogger(__name__)

# The server's scoring of a table by a deployment: (deployment, table, probabilities,
# request id, mirrored) -> the answer's body.
ScoreOn = Callable[[Deployment, Any, bool, str, bool], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Copy:
    """A live request to be scored again by the mirrored deployment (same request id)."""

    deployment: str
    table: Any
    probabilities: bool
    request_id: str


class Mirror:
    """The mirror copies of one endpoint: drawn at routing, queued (at most `limit`) after the
    live answer, scored one at a time by a task on the event loop (started with the first)."""

    def __init__(self, endpoint: Endpoint, metrics: Metrics, score_on: ScoreOn,
                 limit: int) -> None:
        self.endpoint, self.metrics, self._score_on = endpoint, metrics, score_on
        self._queue: asyncio.Queue[Copy] = asyncio.Queue(maxsize=limit)
        self._task: asyncio.Task[None] | None = None

    def draw(self, table: Any, probabilities: bool, request_id: str) -> Copy | None:
        """The copy of a request the traffic table routed, if the mirror table draws one."""
        target = self.endpoint.mirror.draw()
        return None if target is None else Copy(target, table, probabilities, request_id)

    def offer(self, copy: Copy) -> None:
        """Queue `copy`, or drop it (counted) when `limit` copies already wait."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        try:
            self._queue.put_nowait(copy)
        except asyncio.QueueFull:
            self.metrics.of(copy.deployment).mirror_dropped += 1

    def stats(self) -> dict[str, int]:
        return {"waiting": self._queue.qsize(), "limit": self._queue.maxsize}

    async def _run(self) -> None:
        while True:
            await self.score(await self._queue.get())

    async def score(self, copy: Copy) -> None:
        """Score one copy and count its answer like a live one's (then discard it).

        A copy whose deployment was deleted or is loading again is dropped. A failure is the
        deployment's 5xx, logged with the request id as a live one's is; nobody waits for the
        answer, so there is no one else to tell.
        """
        deployment = self.endpoint.deployments.get(copy.deployment)
        metrics = self.metrics.of(copy.deployment)
        if deployment is None or deployment.status != READY:
            metrics.mirror_dropped += 1
            return
        started, status = perf_counter(), 500
        try:
            orjson.dumps(await self._score_on(deployment, copy.table, copy.probabilities,
                                              copy.request_id, True))
            status = 200
        except ServingError as exc:
            status = exc.status
        except Exception:
            logger.exception("Mirror copy of request %s to deployment %s failed",
                             copy.request_id, copy.deployment)
        metrics.observe(status, perf_counter() - started,
                        copy.table.n_rows if status == 200 else 0)
        metrics.mirrored += 1

    def close(self) -> None:
        """Stop scoring copies; the ones still waiting are not scored."""
        if self._task is not None:
            self._task.cancel()
