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
  ``DELETE /admin/deployments/{name}``, ``PUT /admin/traffic`` with ``{"blue": 100}``,
  ``PUT /admin/mirror_traffic`` with ``{"green": 10}`` (``serving.mirror``).

Those paths reach the default endpoint. The server hosts more (``serving.endpoints``): each
answers the same routes under ``/endpoints/<name>/`` with its own keys; with the server's admin
key (the default endpoint's), ``GET /endpoints`` lists them, ``PUT /endpoints/<name>`` creates
one (or answers the one that exists) with its keys, ``DELETE /endpoints/<name>`` deletes one
without deployments. The default paths cost one dict lookup, as with one endpoint.

The app is a hand-written ASGI callable rather than a framework: the per-request path is the
thing the benchmark measures, so it does only header lookup, one ``orjson`` decode, the
scoring core and one ``orjson`` encode. Small requests are scored on the event loop (a thread
hop costs more than it saves); large ones go to a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from time import perf_counter
from typing import Any

import orjson

from serving.collect import Record
from serving.config import EndpointConfig, state_fingerprint
from serving.endpoints import Endpoints, Hosted
from serving.errors import ServingError
from serving.http_request import (
    Receive,
    Request,
    check_key,
    read_json,
    wants_probabilities_in_query,
)
from serving.metrics import CONTENT_TYPE, METRICS_OFF
from serving.request_ids import RequestIds
from serving.request_shapes import raw_table, wants_probabilities
from serving.state import Deployment

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Reply = tuple[int, Any, list[tuple[bytes, bytes]]]
Handler = Callable[[Request, Hosted], Awaitable[Reply]]

_JSON = (b"content-type", b"application/json")
_NAMED = "/endpoints/"
_DEPLOYMENTS = "/admin/deployments/"


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
    """The ASGI application; keys, state and the collectors are set up at lifespan startup.

    Every route of one endpoint is a handler taking the request and the endpoint (`Hosted`)
    it is for; the plain paths pass the default endpoint, ``/endpoints/<name>/...`` the named
    one.
    """

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self.endpoints = Endpoints(config, self._score_on)
        self.default = self.endpoints.default
        self._count = config.metrics  # MLOPS_ENDPOINT_METRICS: per-request counters
        self._thread_limits: object | None = None
        self._request_id = RequestIds()
        self._routes: dict[tuple[str, str], Handler] = {
            ("GET", "/health"): self.health,
            ("GET", "/ready"): self.ready,
            ("GET", "/metrics"): self.metrics_text,
            ("POST", "/score"): self.score,
            ("GET", "/admin/state"): self.admin_state,
            ("PUT", "/admin/traffic"): self.admin_traffic,
            ("PUT", "/admin/mirror_traffic"): self.admin_mirror_traffic,
        }
        self._paths = {path for _, path in self._routes}
        self._alive: dict[str, Any] = {"status": "alive"}

    # lifespan ----------------------------------------------------------------------------

    async def startup(self) -> None:
        config = self.config
        if config.omp_threads is not None:
            self._thread_limits = _limit_threads(config.omp_threads)
        self.endpoints.open_all()
        self._alive = {"status": "alive", "pid": os.getpid(),
                       "state": state_fingerprint(config.endpoint_dir)}
        logger.info(
            "Endpoint %s starting; state in %s; inference data %s", config.name,
            config.endpoint_dir, config.inference_url if config.collect else "off",
        )

    async def shutdown(self) -> None:
        await self.endpoints.close_all()
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
        if request.mirror is not None:  # after the answer: the client never waits for it
            mirror, copy = request.mirror
            mirror.offer(copy)

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
        if handler is not None:  # the default endpoint: one lookup, as with one endpoint
            return await handler(request, self.default)
        if request.path.startswith(_NAMED) or request.path == _NAMED[:-1]:
            return await self._route_named(request, request.path[len(_NAMED):])
        return await self._route_rest(request, request.path, self.default)

    async def _route_rest(self, request: Request, path: str, hosted: Hosted) -> Reply:
        """A route of `hosted` that is not a fixed path: a deployment, or a refusal."""
        if path.startswith(_DEPLOYMENTS) and request.method in ("PUT", "DELETE", "GET"):
            return await self.admin_deployment(request, hosted, path[len(_DEPLOYMENTS):])
        if path in self._paths:
            raise ServingError(405, f"{request.method} is not allowed on {request.path}")
        raise ServingError(404, f"no route {request.method} {request.path}")

    async def _route_named(self, request: Request, rest: str) -> Reply:
        """``/endpoints``, ``/endpoints/<name>`` (the server's admin key) and
        ``/endpoints/<name>/<route>`` (the named endpoint's own keys)."""
        name, slash, route = rest.partition("/")
        if not slash:
            check_key(request, self.default.admin_key, "server's admin")
            return await self._manage(request, name)
        hosted = self.endpoints.get(name)
        handler = self._routes.get((request.method, f"/{route}"))
        if handler is not None:
            return await handler(request, hosted)
        return await self._route_rest(request, f"/{route}", hosted)

    async def _manage(self, request: Request, name: str) -> Reply:
        if not name:
            if request.method != "GET":
                raise ServingError(405, f"{request.method} is not allowed on {request.path}")
            return 200, {"endpoints": self.endpoints.describe()}, []
        if request.method == "PUT":
            hosted, created = self.endpoints.create(name)
            return 200, {"endpoint": name, "created": created, "key": hosted.scoring_key.decode(),
                         "admin_key": hosted.admin_key.decode()}, []
        if request.method == "DELETE":
            return 200, await self.endpoints.delete(name), []
        if request.method == "GET":
            return 200, self.endpoints.get(name).describe(), []
        raise ServingError(405, f"{request.method} is not allowed on {request.path}")

    # public routes -------------------------------------------------------------------------

    async def health(self, request: Request, hosted: Hosted) -> Reply:
        return 200, self._alive, []

    async def ready(self, request: Request, hosted: Hosted) -> Reply:
        ready, answer = hosted.ready()
        return (200 if ready else 503), answer, []

    async def metrics_text(self, request: Request, hosted: Hosted) -> Reply:
        check_key(request, hosted.admin_key, "admin or scoring", also=hosted.scoring_key)
        if not self._count:
            raise ServingError(404, METRICS_OFF)
        return 200, hosted.metrics.render(), [(b"content-type", CONTENT_TYPE)]

    async def score(self, request: Request, hosted: Hosted) -> Reply:
        check_key(request, hosted.scoring_key, "scoring")
        started = perf_counter()
        payload = await read_json(request, self.config)
        probabilities = wants_probabilities(
            payload, wants_probabilities_in_query(request.query)
        )
        table = raw_table(payload)
        header = request.headers.get(b"azureml-model-deployment", b"").decode("latin-1")
        named = header.strip() or None
        deployment = hosted.endpoint.pick(named)
        if named is None:  # as on Azure ML, only requests the traffic table routes are copied
            copy = hosted.mirror.draw(table, probabilities, request.request_id)
            request.mirror = None if copy is None else (hosted.mirror, copy)
        # counted from here on: every answer of the deployment, an error in encoding included
        status = 500
        try:
            encoded = orjson.dumps(await self._score_on(hosted, deployment, table, probabilities,
                                                        request.request_id))
            status = 200
        except ServingError as exc:
            status = exc.status
            raise
        finally:
            if self._count:
                hosted.metrics.of(deployment.name).observe(
                    status, perf_counter() - started, table.n_rows if status == 200 else 0
                )
        return 200, encoded, [(b"azureml-model-deployment", deployment.name.encode())]

    async def _score_on(
        self, hosted: Hosted, deployment: Deployment, table: Any, probabilities: bool,
        request_id: str, mirrored: bool = False,
    ) -> dict[str, Any]:
        """The answer of `deployment`; a large table, or a mirror copy (which must not hold
        the event loop), is scored in a worker thread."""
        deployment.inflight += 1
        try:
            scorer = deployment.scorer
            assert scorer is not None  # pick() only returns loaded deployments
            if mirrored or table.n_rows >= self.config.offload_rows:
                scored = await asyncio.to_thread(scorer.score_table, table, probabilities)
            else:
                scored = scorer.score_table(table, probabilities)
        finally:
            deployment.inflight -= 1
        self._collect(hosted, deployment, scored, request_id, mirrored)
        body = scored.body()
        body["model_name"] = deployment.record.model_name
        body["model_version"] = deployment.record.model_version
        body["deployment"] = deployment.name
        return body

    @staticmethod
    def _collect(hosted: Hosted, deployment: Deployment, scored: Any, request_id: str,
                 mirrored: bool) -> None:
        if hosted.collector is None:
            return
        hosted.collector.add(Record(
            scored.columns, scored.predictions, deployment.name, deployment.record.model_name,
            deployment.record.model_version, request_id, datetime.now(UTC), mirrored,
        ))

    # control API ---------------------------------------------------------------------------

    async def admin_state(self, request: Request, hosted: Hosted) -> Reply:
        check_key(request, hosted.admin_key, "admin")
        state = hosted.describe()
        if hosted is self.default:
            state["endpoints"] = sorted(self.endpoints.by_name)
        return 200, state, []

    async def admin_traffic(self, request: Request, hosted: Hosted) -> Reply:
        check_key(request, hosted.admin_key, "admin")
        table = await read_json(request, self.config)
        return 200, {"traffic": hosted.endpoint.set_traffic(table)}, []

    async def admin_mirror_traffic(self, request: Request, hosted: Hosted) -> Reply:
        check_key(request, hosted.admin_key, "admin")
        table = await read_json(request, self.config)
        return 200, {"mirror_traffic": hosted.endpoint.set_mirror_traffic(table)}, []

    async def admin_deployment(self, request: Request, hosted: Hosted, name: str) -> Reply:
        check_key(request, hosted.admin_key, "admin")
        endpoint = hosted.endpoint
        if request.method == "DELETE":
            return 200, await endpoint.delete(name), []
        if request.method == "GET":
            deployment = endpoint.deployments.get(name)
            if deployment is None:
                raise ServingError(404, f"no deployment named '{name}'")
            return 200, deployment.describe(), []
        body = await read_json(request, self.config)
        url = body.get("model_url") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url:
            raise ServingError(422, 'expected a body like {"model_url": "<bundle URL>"}')
        return 200, await endpoint.put(name, url), []


def create_app(config: EndpointConfig | None = None) -> ScoringApp:
    """The ASGI app for `config` (default: from the environment); nothing starts until uvicorn
    sends the lifespan startup."""
    return ScoringApp(config or EndpointConfig())
