"""The local scoring endpoint: a small ASGI app that behaves like an Azure ML online endpoint.

Routes:

- ``GET /health``: liveness; answers as soon as the process serves, with the process id and
  a fingerprint of the state folder (``serving.config.state_fingerprint``), so that the local
  stack adopts only an endpoint of its own.
- ``GET /ready``: 200 once every deployment with traffic has its model loaded, else 503.
- ``GET /metrics``: per-deployment counters and latency histograms in the Prometheus text
  format (``serving.metrics``); either key, as ``Authorization: Bearer <key>``; 404 when
  ``MLOPS_ENDPOINT_METRICS=false`` turned the counting off.
- ``POST /score``: ``Authorization: Bearer <scoring key>``; the header
  ``azureml-model-deployment: NAME`` picks a deployment whatever its traffic, otherwise the
  traffic table draws one. ``?return_probabilities=true`` (or the body flag) adds class
  probabilities.
- Control API (``Authorization: Bearer <admin key>``): ``GET /admin/state``,
  ``PUT /admin/deployments/{name}`` with ``{"model_url": ...}``,
  ``DELETE /admin/deployments/{name}``, ``PUT /admin/traffic`` with ``{"blue": 100}``.

The app is a hand-written ASGI callable rather than a framework: the per-request path is the
thing the benchmark measures, so it does only header lookup, one ``orjson`` decode, the
scoring core and one ``orjson`` encode. Small requests are scored on the event loop (a thread
hop costs more than it saves); large ones go to a worker thread.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from time import perf_counter
from typing import Any
from urllib.parse import parse_qs

import orjson

from serving.collect import InferenceCollector, Record
from serving.config import EndpointConfig, state_fingerprint
from serving.errors import ServingError
from serving.metrics import CONTENT_TYPE, METRICS_OFF, Metrics
from serving.model_roots import parse_root
from serving.request_ids import RequestIds
from serving.request_shapes import parse_json, raw_table, wants_probabilities
from serving.state import Deployment, Endpoint, Keys, resolve_keys

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Reply = tuple[int, Any, list[tuple[bytes, bytes]]]

_JSON = (b"content-type", b"application/json")
_TRUE_QUERY = {"1", "true", "yes"}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[bytes, bytes]
    query: bytes
    receive: Receive
    request_id: str


def _check_key(request: Request, key: bytes, what: str, also: bytes = b"") -> None:
    """Refuse the request unless it carries `key` (or `also`, when given) as a bearer token."""
    value = request.headers.get(b"authorization", b"")
    token = value[7:].strip() if value[:7].lower() == b"bearer " else b""
    if not (hmac.compare_digest(token, key) or (also and hmac.compare_digest(token, also))):
        raise ServingError(401, f"missing or wrong key: this route needs the {what} key as "
                        "'Authorization: Bearer <key>'")


async def _read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The whole body, at most `limit` bytes, within `timeout_s` of the first read.

    A body that arrived with its headers (every small request) is returned without arming a
    timer; a longer one is read under the timeout, so a client that stalls, or promises more
    bytes in Content-Length than it sends, gets a 408 and a closed connection.
    """
    declared = request.headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ServingError(413, f"request body of {int(declared)} bytes is over the {limit} limit",
                        close=True)
    message = await request.receive()
    first = message.get("body", b"")
    if message["type"] == "http.request" and not message.get("more_body", False):
        if len(first) > limit:
            raise ServingError(413, f"request body is over the {limit} byte limit", close=True)
        return first
    chunks, size = [first], len(first)
    try:
        async with asyncio.timeout(timeout_s):
            while message["type"] != "http.disconnect" and message.get("more_body", False):
                message = await request.receive()
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                if size > limit:
                    raise ServingError(413, f"request body is over the {limit} byte limit",
                                    close=True)
    except TimeoutError as exc:
        expected = f"{int(declared)} declared" if declared and declared.isdigit() else "more"
        raise ServingError(
            408, f"request body not received within {timeout_s:g} s: got {size} bytes of "
            f"{expected} (MLOPS_ENDPOINT_BODY_TIMEOUT_S)", close=True,
        ) from exc
    if message["type"] == "http.disconnect":
        raise ServingError(400, "client disconnected before sending the whole body")
    return b"".join(chunks)


async def _read_json(request: Request, config: EndpointConfig) -> Any:
    return parse_json(await _read_body(request, config.max_body_bytes, config.body_timeout_s))


def _wants_probabilities_in_query(query: bytes) -> bool:
    if not query:
        return False
    values = parse_qs(query.decode("latin-1")).get("return_probabilities", [])
    return any(v.lower() in _TRUE_QUERY for v in values)


def _limit_threads(threads: int) -> object:
    """Cap OpenMP and BLAS threads for scoring on this (the event loop's) thread.

    A one-row prediction gains nothing from threads, and on a busy machine OpenMP's spinning
    workers make it ten times slower. OpenMP's limit is per thread, so large requests scored
    in worker threads still use every core. scikit-learn is imported first so that its OpenMP
    runtime is loaded and can be limited.
    """
    import sklearn  # noqa: F401, PLC0415 - loads the OpenMP runtime the models use
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    return threadpool_limits(threads)


def _error_headers(error: ServingError) -> list[tuple[bytes, bytes]]:
    """What a refusal adds to the JSON error body: the auth scheme for a 401, and a closed
    connection when the rest of the request is not worth reading."""
    extra = [(b"www-authenticate", b"Bearer")] if error.status == 401 else []
    if error.close:
        extra.append((b"connection", b"close"))
    return extra


class ScoringApp:
    """The ASGI application; keys, state and the collector are set up at lifespan startup."""

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self.endpoint = Endpoint(
            config.endpoint_dir, config.drain_timeout_s,
            [parse_root(root) for root in config.allowed_model_roots], config.fast_path,
        )
        self.metrics = Metrics(config.name) if config.metrics else None
        self.collector: InferenceCollector | None = None
        self._keys: Keys | None = None
        self._scoring_key = b""
        self._admin_key = b""
        self._restore: asyncio.Task[None] | None = None
        self._thread_limits: object | None = None
        self._request_id = RequestIds()
        self._routes: dict[tuple[str, str], Callable[[Request], Awaitable[Reply]]] = {
            ("GET", "/health"): self.health,
            ("GET", "/ready"): self.ready,
            ("GET", "/metrics"): self.metrics_text,
            ("POST", "/score"): self.score,
            ("GET", "/admin/state"): self.admin_state,
            ("PUT", "/admin/traffic"): self.admin_traffic,
        }
        self._paths = {path for _, path in self._routes}
        self._alive: dict[str, Any] = {"status": "alive"}

    # lifespan ----------------------------------------------------------------------------

    async def startup(self) -> None:
        config = self.config
        if config.omp_threads is not None:
            self._thread_limits = _limit_threads(config.omp_threads)
        self._keys = resolve_keys(
            config.endpoint_dir,
            config.key.get_secret_value() if config.key else None,
            config.admin_key.get_secret_value() if config.admin_key else None,
        )
        self._alive = {"status": "alive", "pid": os.getpid(),
                       "state": state_fingerprint(config.endpoint_dir)}
        self._scoring_key = self._keys.scoring.encode()
        self._admin_key = self._keys.admin.encode()
        if config.collect:
            self.collector = InferenceCollector(
                config.inference_url, config.name, flush_rows=config.collect_flush_rows,
                flush_s=config.collect_flush_s, max_rows=config.collect_queue_rows,
            )
            self.collector.start()
        self.endpoint.recall()
        self._restore = asyncio.create_task(self.endpoint.restore())
        logger.info(
            "Endpoint %s starting; state in %s; inference data %s", config.name,
            config.endpoint_dir, config.inference_url if config.collect else "off",
        )

    async def shutdown(self) -> None:
        if self._restore is not None and not self._restore.done():
            self._restore.cancel()
        if self.collector is not None:
            await asyncio.to_thread(self.collector.close)
        logger.info("Endpoint %s stopped", self.config.name)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except (OSError, ValueError) as exc:
                    logger.exception("Endpoint failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # dispatch ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers = dict(scope["headers"])
        request = Request(
            scope["method"], scope["path"], headers, scope.get("query_string", b""), receive,
            self._request_id(headers),
        )
        status, body, extra = await self._answer(request)
        head = extra if extra and extra[0][0] == b"content-type" else [_JSON, *extra]
        await send({
            "type": "http.response.start", "status": status,
            "headers": [*head, (b"x-request-id", request.request_id.encode())],
        })
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, request: Request) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        try:
            status, content, extra = await self._route(request)
            # a handler that encoded its own answer (scoring, metrics) returns bytes
            body = content if isinstance(content, bytes) else orjson.dumps(content)
            return status, body, extra
        except ServingError as exc:  # every refusal becomes its JSON error body here
            body = self._error_body(exc.status, exc.message, request)
            return exc.status, body, _error_headers(exc)
        except Exception:
            logger.exception("Request %s %s failed (request id %s)", request.method,
                             request.path, request.request_id)
            message = f"internal error; the server log has the details under request id " \
                      f"{request.request_id}"
            return 500, self._error_body(500, message, request), []

    @staticmethod
    def _error_body(status: int, message: str, request: Request) -> bytes:
        return orjson.dumps(
            {"error": message, "status": status, "request_id": request.request_id}
        )

    async def _route(self, request: Request) -> Reply:
        handler = self._routes.get((request.method, request.path))
        if handler is not None:
            return await handler(request)
        prefix = "/admin/deployments/"
        if request.path.startswith(prefix) and request.method in ("PUT", "DELETE", "GET"):
            return await self.admin_deployment(request, request.path[len(prefix):])
        if request.path in self._paths:
            raise ServingError(405, f"{request.method} is not allowed on {request.path}")
        raise ServingError(404, f"no route {request.method} {request.path}")

    # public routes -------------------------------------------------------------------------

    async def health(self, request: Request) -> Reply:
        return 200, self._alive, []

    async def ready(self, request: Request) -> Reply:
        restoring = self._restore is not None and not self._restore.done()
        ready, waiting = self.endpoint.ready()
        if ready and not restoring:
            return 200, {"ready": True}, []
        return 503, {"ready": False, "waiting_for": waiting, "restoring": restoring}, []

    async def metrics_text(self, request: Request) -> Reply:
        _check_key(request, self._admin_key, "admin or scoring", also=self._scoring_key)
        if self.metrics is None:
            raise ServingError(404, METRICS_OFF)
        return 200, self.metrics.render(), [(b"content-type", CONTENT_TYPE)]

    async def score(self, request: Request) -> Reply:
        _check_key(request, self._scoring_key, "scoring")
        started = perf_counter()
        payload = await _read_json(request, self.config)
        probabilities = wants_probabilities(
            payload, _wants_probabilities_in_query(request.query)
        )
        table = raw_table(payload)
        header = request.headers.get(b"azureml-model-deployment", b"").decode("latin-1")
        deployment = self.endpoint.pick(header.strip() or None)
        # counted from here on: every answer of the deployment, an error in encoding included
        status = 500
        try:
            encoded = orjson.dumps(await self._score_on(deployment, table, probabilities,
                                                        request.request_id))
            status = 200
        except ServingError as exc:
            status = exc.status
            raise
        finally:
            if self.metrics is not None:
                self.metrics.of(deployment.name).observe(
                    status, perf_counter() - started, table.n_rows if status == 200 else 0
                )
        return 200, encoded, [(b"azureml-model-deployment", deployment.name.encode())]

    async def _score_on(
        self, deployment: Deployment, table: Any, probabilities: bool, request_id: str,
    ) -> dict[str, Any]:
        deployment.inflight += 1
        try:
            scorer = deployment.scorer
            assert scorer is not None  # pick() only returns loaded deployments
            if table.n_rows >= self.config.offload_rows:
                scored = await asyncio.to_thread(scorer.score_table, table, probabilities)
            else:
                scored = scorer.score_table(table, probabilities)
        finally:
            deployment.inflight -= 1
        self._collect(deployment, scored, request_id)
        body = scored.body()
        body["model_name"] = deployment.record.model_name
        body["model_version"] = deployment.record.model_version
        body["deployment"] = deployment.name
        return body

    def _collect(self, deployment: Deployment, scored: Any, request_id: str) -> None:
        if self.collector is None:
            return
        self.collector.add(Record(
            scored.columns, scored.predictions, deployment.name, deployment.record.model_name,
            deployment.record.model_version, request_id, datetime.now(UTC),
        ))

    # control API ---------------------------------------------------------------------------

    async def admin_state(self, request: Request) -> Reply:
        _check_key(request, self._admin_key, "admin")
        ready, _ = self.endpoint.ready()
        state = {"endpoint": self.config.name, "ready": ready, **self.endpoint.describe()}
        if self.collector is not None:
            state["collection"] = self.collector.stats()
        return 200, state, []

    async def admin_traffic(self, request: Request) -> Reply:
        _check_key(request, self._admin_key, "admin")
        table = await _read_json(request, self.config)
        return 200, {"traffic": self.endpoint.set_traffic(table)}, []

    async def admin_deployment(self, request: Request, name: str) -> Reply:
        _check_key(request, self._admin_key, "admin")
        if request.method == "DELETE":
            return 200, await self.endpoint.delete(name), []
        if request.method == "GET":
            deployment = self.endpoint.deployments.get(name)
            if deployment is None:
                raise ServingError(404, f"no deployment named '{name}'")
            return 200, deployment.describe(), []
        body = await _read_json(request, self.config)
        url = body.get("model_url") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url:
            raise ServingError(422, 'expected a body like {"model_url": "<bundle URL>"}')
        return 200, await self.endpoint.put(name, url), []


def create_app(config: EndpointConfig | None = None) -> ScoringApp:
    """The ASGI app for `config` (default: from the environment); nothing starts until uvicorn
    sends the lifespan startup."""
    return ScoringApp(config or EndpointConfig())
