"""One Azure ML workspace: its state, the routing of requests to handlers, planned failures
and long-running operations."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
from azure.core.pipeline.transport import RequestsTransport

from tests.azureml.standin.assets import AssetRoutes
from tests.azureml.standin.endpoints import EndpointRoutes
from tests.azureml.standin.http import (
    ARM_HOST,
    CONTAINER,
    LOCATION,
    MFE_PREFIX,
    OPERATIONS_PATH,
    REGISTRY_PATH,
    RG,
    SUB,
    WORKSPACE_PATH,
    WS,
    ArmAdapter,
    Operation,
    Planned,
    Reply,
    ServiceError,
    Session,
    body_of,
    error_body,
    failed_with,
    now,
    query,
)
from tests.azureml.standin.jobs import JobRoutes
from tests.azureml.standin.monitor import MonitorRoutes


class Workspace(AssetRoutes, EndpointRoutes, JobRoutes, MonitorRoutes):
    """One Azure ML workspace as its REST API answers: state, routes, planned failures.

    Args:
        blob_endpoint: Azurite's account URL (``http://127.0.0.1:PORT/devstoreaccount1``).
        sas_token: a container SAS on Azurite's account, what ``listSecrets`` hands out.
        polls: how many times a long-running operation reports InProgress before it ends.
    """

    def __init__(self, blob_endpoint: str | None = None, sas_token: str | None = None,
                 container: str = CONTAINER, polls: int = 1,
                 new_container: Callable[[], tuple[str, str]] | None = None) -> None:
        self.blob_endpoint = blob_endpoint
        self.container = container
        self.new_container = new_container  # (name, SAS) of a fresh container for a registry
        self.container_sas: dict[str, str] = {container: sas_token or ""}
        self.sas_token = sas_token
        self.polls = polls
        self.requests: list[tuple[str, str]] = []  # (method, path below the workspace)
        self.planned: list[Planned] = []
        self.hooks: list[tuple[str, re.Pattern[str], Callable[[], None]]] = []
        self.sent: list[tuple[str, str, Any]] = []  # writes with their bodies, and scorings
        self.failing_operations: list[tuple[re.Pattern[str], dict[str, Any]]] = []
        self.operations: dict[str, Operation] = {}
        self.models: dict[tuple[str, str], dict[str, Any]] = {}
        self.environments: dict[tuple[str, str], dict[str, Any]] = {}
        self.codes: dict[tuple[str, str], dict[str, Any]] = {}
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.deployments: dict[tuple[str, str], dict[str, Any]] = {}
        self.logs: dict[tuple[str, str], dict[str, str]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.data: dict[tuple[str, str], dict[str, Any]] = {}
        self.registry_models: dict[tuple[str, str], dict[str, Any]] = {}
        self.taken_in_region: set[str] = set()  # endpoint names other customers hold
        self.deployment_outcome: dict[tuple[str, str], dict[str, Any]] = {}
        # Azure Monitor: when traffic changed, how each deployment answers (monitor.py)
        self.clock: Callable[[], float] = time.time
        self.traffic_log: list[tuple[float, str, dict[str, int]]] = []
        self.behaviour: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
        self.lock = threading.Lock()
        self.adapter = ArmAdapter(self.handle, blob_endpoint)
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Reply]]] = []
        self._add_routes()

    # plumbing ------------------------------------------------------------------------------

    def transport(self) -> RequestsTransport:
        """The transport to give MLClient (``transport=``): azure-core's own, on our session."""
        return RequestsTransport(session=Session(self.adapter), session_owner=False)

    def fail(self, method: str, path: str, status: int, code: str, message: str, *,
             times: int = 1, headers: dict[str, str] | None = None) -> None:
        """The next `times` requests `method` whose path (below the workspace) matches `path`
        get this error instead of their answer."""
        self.planned.append(Planned(method, re.compile(path),
                                    Reply(status, error_body(code, message), headers or {}),
                                    times))

    def before(self, method: str, path: str, hook: Callable[[], None]) -> None:
        """Run `hook` once, just before the next `method` request whose path matches: what
        another client does meanwhile."""
        self.hooks.append((method, re.compile(path), hook))

    def fail_operation(self, path: str, code: str, message: str) -> None:
        """The next long-running operation started by a request whose path matches `path`
        is accepted, then ends Failed with this error."""
        self.failing_operations.append((re.compile(path), error_body(code, message)))

    def clear_failures(self) -> None:
        self.planned.clear()

    def writes(self) -> list[tuple[str, str]]:
        """The requests that change something, in order (operation polls left out)."""
        return [(m, p) for m, p in self.requests if m in {"PUT", "POST", "DELETE", "PATCH"}
                and not p.endswith(("/listSecrets", "/listKeys", "/getLogs", "metrics:getBatch"))]

    def handle(self, request: requests.PreparedRequest) -> Reply:
        url = urlsplit(request.url)
        path = url.path
        if url.hostname == ARM_HOST:
            assert "api-version" in query(request), f"no api-version: {request.url}"
        if path != "/discovery":  # the workspace's discovery document is public
            assert request.headers.get("Authorization") == "Bearer standin-token", request.headers
        short = path.removeprefix(WORKSPACE_PATH).removeprefix(f"/{MFE_PREFIX}{REGISTRY_PATH}")
        for hook in list(self.hooks):
            if hook[0] == request.method and hook[1].search(short):
                self.hooks.remove(hook)
                hook[2]()
        with self.lock:
            self.requests.append((request.method, short))
            if request.method in {"PUT", "DELETE"}:
                self.sent.append((request.method, short, body_of(request)))
            self._current = short
            for plan in self.planned:
                if plan.method == request.method and plan.path.search(short):
                    plan.times -= 1
                    if plan.times == 0:
                        self.planned.remove(plan)
                    return plan.reply
            for method, pattern, handler in self.routes:
                found = pattern.fullmatch(path)
                if found and method == request.method:
                    try:
                        return handler(request, **found.groupdict())
                    except ServiceError as exc:
                        return exc.reply
        return Reply(404, error_body("NoRegisteredProviderFound",
                                     f"stand-in has no route for {request.method} {path}"))

    def route(self, method: str, pattern: str, handler: Callable[..., Reply]) -> None:
        self.routes.append((method, re.compile(pattern), handler))

    def _lro(self, finish: Callable[[], dict[str, Any] | None], status: int,
             body: Any, undo: Callable[[], None] | None = None) -> Reply:
        op_id = uuid.uuid4().hex
        for planned in self.failing_operations:
            if planned[0].search(self._current):
                self.failing_operations.remove(planned)
                finish = failed_with(planned[1], undo)
                break
        self.operations[op_id] = Operation(self.polls, finish)
        base = f"https://{ARM_HOST}{OPERATIONS_PATH}"
        return Reply(status, body, {
            "Azure-AsyncOperation": f"{base}/mfeOperationsStatus/{op_id}?api-version=2024-04-01",
            "Location": f"{base}/mfeOperationResults/{op_id}?api-version=2024-04-01",
            # ARM sends Retry-After in seconds; azure-core reads retry-after-ms first, which keeps
            # the tests' polls milliseconds apart
            "Retry-After": "1", "retry-after-ms": "5",
        })

    def _operation(self, op_id: str) -> Operation:
        op = self.operations.get(op_id)
        if op is None:
            raise ServiceError(404, "NotFound", f"operation {op_id} not found")
        if not op.done:
            if op.polls > 0:
                op.polls -= 1
            else:
                op.done, op.error = True, op.finish()
        return op

    def _operation_status(self, request: Any, op_id: str) -> Reply:
        op = self._operation(op_id)
        status = "InProgress" if not op.done else ("Failed" if op.error else "Succeeded")
        body: dict[str, Any] = {"id": op_id, "name": op_id, "status": status, "startTime": now()}
        if op.error:
            body["error"] = op.error["error"]
        return Reply(200, body, {"Retry-After": "1", "retry-after-ms": "5"})

    def _operation_result(self, request: Any, op_id: str) -> Reply:
        op = self._operation(op_id)
        if not op.done:
            return Reply(202, None, {"Location": request.url, "Retry-After": "1",
                                     "retry-after-ms": "5"})
        if op.error:
            return Reply(400, op.error)
        return Reply(204, None)

    def _resource(self, kind: str, name: str, properties: dict[str, Any],
                  suffix: str) -> dict[str, Any]:
        return {
            "id": f"{WORKSPACE_PATH}/{suffix}", "name": name,
            "type": f"Microsoft.MachineLearningServices/workspaces/{kind}",
            "properties": properties,
            "systemData": {"createdAt": now(), "createdBy": "standin", "createdByType": "User",
                           "lastModifiedAt": now()},
        }

    def _add_routes(self) -> None:
        ws = re.escape(WORKSPACE_PATH)
        ops = re.escape(OPERATIONS_PATH)
        n = r"(?P<name>[^/]+)"
        v = r"(?P<version>[^/]+)"
        self.route("GET", f"{ops}/mfeOperationsStatus/(?P<op_id>[^/]+)", self._operation_status)
        self.route("GET", f"{ops}/mfeOperationResults/(?P<op_id>[^/]+)", self._operation_result)
        self.route("GET", ws, self._workspace)
        self.route("GET", f"{ws}/datastores", self._datastores)
        self.route("GET", f"{ws}/datastores/{n}", self._datastore)
        self.route("POST", f"{ws}/datastores/{n}/listSecrets", self._list_secrets)
        for kind, store in (("models", self.models), ("environments", self.environments),
                            ("codes", self.codes), ("data", self.data)):
            self.route("GET", f"{ws}/{kind}/{n}", self._container(kind, store))
            self.route("GET", f"{ws}/{kind}/{n}/versions", self._list_versions(kind, store))
            self.route("GET", f"{ws}/{kind}/{n}/versions/{v}", self._get_version(kind, store))
            self.route("PUT", f"{ws}/{kind}/{n}/versions/{v}", self._put_version(kind, store))
        self.route("POST", f"{ws}/codes/{n}/versions/{v}/startPendingUpload",
                   self._start_pending_upload)
        self._add_registry_routes(n, v)
        self._add_job_routes(ws)
        ep = f"{ws}/onlineEndpoints/(?P<endpoint>[^/]+)"
        self.route("GET", f"{ws}/onlineEndpoints", self._list_endpoints)
        self.route("GET", ep, self._get_endpoint)
        self.route("PUT", ep, self._put_endpoint)
        self.route("POST", f"{ep}/listKeys", self._list_keys)
        self.route("GET", f"{ep}/deployments", self._list_deployments)
        self.route("GET", f"{ep}/deployments/{n}", self._get_deployment)
        self.route("PUT", f"{ep}/deployments/{n}", self._put_deployment)
        self.route("DELETE", f"{ep}/deployments/{n}", self._delete_deployment)
        self.route("POST", f"{ep}/deployments/{n}/getLogs", self._get_logs)
        self._add_monitor_routes()

    def _workspace(self, request: Any) -> Reply:
        return Reply(200, {
            "id": WORKSPACE_PATH, "name": WS, "location": LOCATION, "kind": "Default",
            "type": "Microsoft.MachineLearningServices/workspaces",
            "identity": {"type": "SystemAssigned", "principalId": str(uuid.UUID(int=1)),
                         "tenantId": str(uuid.UUID(int=2))},
            "sku": {"name": "Basic", "tier": "Basic"},
            "properties": {
                "friendlyName": WS, "provisioningState": "Succeeded",
                "workspaceId": str(uuid.UUID(int=3)), "discoveryUrl":
                    f"https://{LOCATION}.api.azureml.ms/discovery",
                "mlFlowTrackingUri": f"azureml://{LOCATION}.api.azureml.ms/mlflow/v1.0"
                                     f"{WORKSPACE_PATH}",
                "storageAccount": f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/"
                                  "Microsoft.Storage/storageAccounts/devstoreaccount1",
                "publicNetworkAccess": "Enabled",
            },
        })
