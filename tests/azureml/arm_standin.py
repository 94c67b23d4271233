"""A stand-in for the Azure ML REST API, under the real azure-ai-ml SDK, at the HTTP level.

``MLClient(..., transport=standin.transport())`` gives the SDK azure-core's own
``RequestsTransport`` on a ``requests`` session whose adapter answers here instead of opening
sockets to management.azure.com: every line of the SDK and of azure-core (serialization,
policies, retries, long-running-operation polling, error mapping) runs as it does against
Azure. Only the bytes come from this module.

- Resources are kept as the REST JSON the SDK sent (checked against the SDK's generated models),
  answered with the server-side fields Azure adds (``id``, ``systemData``, provisioning states,
  ``modelUri``, ``scoringUri``).
- PUT and DELETE of endpoints and deployments are long-running: 201/202 with
  ``Azure-AsyncOperation`` and ``Location`` headers, an operation that reports ``InProgress``
  ``polls`` times before it ends (``Succeeded`` or ``Failed`` with an error body).
- Errors are the service's ``{"error": {"code", "message"}}`` bodies; ``fail(...)`` queues one
  for the next matching request (404, 409, 429 with ``Retry-After``, 5xx...).
- Blob traffic (``*.blob.core.windows.net``, which the SDK's storage clients build from the
  datastore's account name) is forwarded to Azurite: the datastore is Azurite's development
  account, and ``listSecrets`` hands out a SAS for it, as the service does.
- The service's rules: model versions never change; traffic names deployments that exist and
  have succeeded, sums to 100; a deployment with traffic cannot be deleted; an endpoint name
  taken in the region by another workspace is refused.
- Scoring: ``scoringUri`` is a local HTTP server that runs each deployment's uploaded
  ``score.py`` (downloaded from Azurite) on its model, checks the endpoint key and routes by
  traffic or by the ``azureml-model-deployment`` header.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import RequestsTransport
from requests.adapters import BaseAdapter, HTTPAdapter
from urllib3.response import HTTPResponse

from tests.azureml.arm_jobs import JobRoutes

SUB, RG, WS, LOCATION = "00000000-0000-0000-0000-000000000000", "rg-mlops", "ws-mlops", "westeurope"
ARM_HOST = "management.azure.com"
PROVIDER = "providers/Microsoft.MachineLearningServices"
BLOB_SUFFIX = ".blob.core.windows.net"
DISCOVERY_HOST = "eastus.api.azureml.ms"  # where the SDK asks where a registry lives
MFE_HOST = f"{LOCATION}.api.azureml.ms"  # the registry's region: its data-plane API
REGISTRY = "shared-models"
DATASTORE = "workspaceblobstore"
CONTAINER = "azureml-blobstore-ws"


class FakeCredential:
    """A TokenCredential that hands out a token without asking anyone."""

    def get_token(self, *scopes: str, **_: Any) -> AccessToken:
        assert scopes, "a token is always asked for a scope"
        return AccessToken("standin-token", int(time.time()) + 3600)


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": [], "additionalInfo": []}}


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class ServiceError(Exception):
    """Raised inside a handler: the service refuses the request with this status and code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.reply = Reply(status, error_body(code, message))


@dataclass
class Planned:
    method: str
    path: re.Pattern[str]
    reply: Reply
    times: int


@dataclass
class Operation:
    """A long-running operation: `polls` InProgress answers, then its end."""

    polls: int
    finish: Callable[[], dict[str, Any] | None]  # returns an error body to fail the operation
    done: bool = False
    error: dict[str, Any] | None = None


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _failed(error: dict[str, Any],
            undo: Callable[[], None] | None) -> Callable[[], dict[str, Any]]:
    def finish() -> dict[str, Any]:
        if undo is not None:
            undo()
        return error
    return finish


class ArmAdapter(BaseAdapter):
    """A requests adapter: ARM requests to `handler`, blob requests to Azurite."""

    def __init__(self, handler: Callable[[requests.PreparedRequest], Reply],
                 blob_endpoint: str | None) -> None:
        super().__init__()
        self.handler = handler
        self.blob_endpoint = blob_endpoint
        self.forward = HTTPAdapter()
        self.connection_failures = 0  # the next N ARM requests find the connection reset

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = urlsplit(request.url)
        if url.hostname and url.hostname.endswith(BLOB_SUFFIX):
            if self.blob_endpoint is None:
                raise AssertionError(f"blob request without Azurite: {request.method} {url.path}")
            account = url.hostname.removesuffix(BLOB_SUFFIX)
            assert self.blob_endpoint.endswith("/" + account), (account, self.blob_endpoint)
            request.url = f"{self.blob_endpoint}{url.path}" + (f"?{url.query}" if url.query else "")
            request.headers.pop("Host", None)
            return self.forward.send(request, **kwargs)
        if url.hostname == "127.0.0.1":  # the scoring stand-in (a scoringUri it handed out)
            return self.forward.send(request, **kwargs)
        assert url.hostname in {ARM_HOST, DISCOVERY_HOST, MFE_HOST}, (
            f"request outside Azure ML: {request.url}")
        if self.connection_failures > 0:
            self.connection_failures -= 1
            raise requests.ConnectionError(f"connection reset talking to {url.hostname}")
        reply = self.handler(request)
        body = b"" if reply.body is None else json.dumps(reply.body).encode()
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "Content-Length": str(len(body)), "x-ms-request-id": str(uuid.uuid4()),
                   **reply.headers}
        raw = HTTPResponse(body=io.BytesIO(body), headers=headers, status=reply.status,
                           preload_content=False, decode_content=False)
        return self.forward.build_response(request, raw)

    def close(self) -> None:
        self.forward.close()


class Session(requests.Session):
    """A requests session whose every URL goes through one ArmAdapter."""

    def __init__(self, adapter: ArmAdapter) -> None:
        super().__init__()
        self.trust_env = False
        self.mount("https://", adapter)
        self.mount("http://", adapter)


def query(request: requests.PreparedRequest) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}


def body_of(request: requests.PreparedRequest) -> Any:
    if not request.body:
        return None
    raw = request.body.decode() if isinstance(request.body, bytes) else request.body
    return json.loads(raw)


WORKSPACE_PATH = f"/subscriptions/{SUB}/resourceGroups/{RG}/{PROVIDER}/workspaces/{WS}"
REGISTRY_PATH = f"/subscriptions/{SUB}/resourceGroups/{RG}/{PROVIDER}/registries/{REGISTRY}"
MFE_PREFIX = "mferp/managementfrontend"
OPERATIONS_PATH = f"/subscriptions/{SUB}/{PROVIDER}/locations/{LOCATION}"
TERMINAL = {"Succeeded", "Failed", "Canceled"}
# Fields the service fills in on a new version when the request leaves them out.
SERVER_DEFAULTS: dict[str, dict[str, Any]] = {
    "models": {"flavors": {}, "isArchived": False, "isAnonymous": False},
    "codes": {"isArchived": False, "isAnonymous": False},
    "environments": {"isArchived": False, "isAnonymous": False, "osType": "Linux"},
}


class Workspace(JobRoutes):
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
                and not p.endswith(("/listSecrets", "/listKeys", "/getLogs"))]

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
                finish = _failed(planned[1], undo)
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
        return Reply(200 if op.error is None else 400, None)

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

    # datastores ----------------------------------------------------------------------------

    def _datastore_body(self) -> dict[str, Any]:
        account = (self.blob_endpoint or "/devstoreaccount1").rsplit("/", 1)[1]
        return self._resource("datastores", DATASTORE, {
            "datastoreType": "AzureBlob", "accountName": account, "containerName": self.container,
            "endpoint": "core.windows.net", "protocol": "https", "isDefault": True,
            "credentials": {"credentialsType": "AccountKey"},
        }, f"datastores/{DATASTORE}")

    def _datastores(self, request: Any) -> Reply:
        return Reply(200, {"value": [self._datastore_body()]})

    def _datastore(self, request: Any, name: str) -> Reply:
        if name != DATASTORE:
            raise ServiceError(404, "UserError", f"datastore {name} not found")
        return Reply(200, self._datastore_body())

    def _list_secrets(self, request: Any, name: str) -> Reply:
        if self.sas_token is None:
            raise ServiceError(403, "AuthorizationFailed", "no secrets for this caller")
        return Reply(200, {"secretsType": "Sas", "sasToken": self.sas_token})

    def _start_pending_upload(self, request: Any, name: str, version: str) -> Reply:
        sent = body_of(request) or {}
        if sent.get("pendingUploadType") != "TemporaryBlobReference":
            raise ServiceError(400, "UserError",
                               f"pendingUploadType {sent.get('pendingUploadType')!r}")
        account = (self.blob_endpoint or "/devstoreaccount1").rsplit("/", 1)[1]
        blob_uri = f"https://{account}{BLOB_SUFFIX}/{self.container}"
        return Reply(200, {
            "pendingUploadId": uuid.uuid4().hex, "pendingUploadType": "TemporaryBlobReference",
            "blobReferenceForConsumption": {
                "blobUri": blob_uri,
                "storageAccountArmId": f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/"
                                       f"Microsoft.Storage/storageAccounts/{account}",
                "credential": {"credentialType": "SAS", "sasUri": f"{blob_uri}?{self.sas_token}"},
            },
        })

    # versioned assets ----------------------------------------------------------------------

    def _container(self, kind: str, store: dict[tuple[str, str], dict[str, Any]]) -> Callable:
        def get(request: Any, name: str) -> Reply:
            versions = [k[1] for k in store if k[0] == name]
            if not versions:
                raise ServiceError(404, "UserError", f"{kind} container {name} not found")
            latest = max(versions, key=lambda x: int(x) if x.isdigit() else 0)
            return Reply(200, self._resource(kind, name, {"latestVersion": latest,
                                                          "nextVersion": str(int(latest) + 1)
                                                          if latest.isdigit() else None},
                                             f"{kind}/{name}"))
        return get

    def _list_versions(self, kind: str, store: dict[tuple[str, str], dict[str, Any]]) -> Callable:
        def list_(request: Any, name: str) -> Reply:
            return Reply(200, {"value": [b for k, b in store.items() if k[0] == name]})
        return list_

    def _get_version(self, kind: str, store: dict[tuple[str, str], dict[str, Any]]) -> Callable:
        def get(request: Any, name: str, version: str) -> Reply:
            if (name, version) not in store:
                raise ServiceError(404, "UserError", "Could not find asset with ID: "
                                   f"{kind}/{name}/versions/{version}")
            return Reply(200, store[(name, version)])
        return get

    def _put_version(self, kind: str, store: dict[tuple[str, str], dict[str, Any]]) -> Callable:
        uri_field = {"models": "modelUri", "codes": "codeUri", "data": "dataUri"}.get(kind)

        def put(request: Any, name: str, version: str) -> Reply:
            sent = body_of(request)
            properties = sent.get("properties") if isinstance(sent, dict) else None
            if not isinstance(properties, dict):
                raise ServiceError(400, "UserError", "the request body has no properties")
            if uri_field and not properties.get(uri_field):
                raise ServiceError(400, "UserError", f"{uri_field} is required")
            existing = store.get((name, version))
            if existing is not None:
                old = existing["properties"]
                immutable = [k for k in (uri_field, "properties", "image", "condaFile")
                             if k and k in properties and properties.get(k) != old.get(k)]
                if immutable:
                    raise ServiceError(409, "UserError",
                                       f"Conflict: {kind} {name}:{version} exists and its "
                                       f"{', '.join(immutable)} cannot change")
                old["tags"] = properties.get("tags") or {}
                old["description"] = properties.get("description")
                return Reply(200, existing)
            store[(name, version)] = self._resource(
                f"{kind}/versions", version,
                {**SERVER_DEFAULTS.get(kind, {}), **properties, "provisioningState": "Succeeded"},
                f"{kind}/{name}/versions/{version}")
            return Reply(201, store[(name, version)])
        return put

    # an Azure ML registry (its own data-plane API, found through discovery) ----------------

    def _add_registry_routes(self, n: str, v: str) -> None:
        reg = re.escape(f"/{MFE_PREFIX}{REGISTRY_PATH}")
        store = self.registry_models
        self.route("GET", f"/registrymanagement/v1.0/registries/{REGISTRY}/discovery",
                   self._discovery)
        self.route("GET", f"{reg}/models/{n}", self._container("models", store))
        self.route("GET", f"{reg}/models/{n}/versions", self._list_versions("models", store))
        self.route("GET", f"{reg}/models/{n}/versions/{v}", self._get_version("models", store))
        self.route("PUT", f"{reg}/models/{n}/versions/{v}", self._put_registry_version)
        self.route("PUT", f"{reg}/tempdatarefs/{n}/versions/{v}", self._temp_data_reference)
        self.route("POST", f"{reg}/datarefs/{n}/versions/{v}", self._data_reference)

    def _discovery(self, request: Any) -> Reply:
        return Reply(200, {
            "registryName": REGISTRY, "primaryRegion": LOCATION,
            "primaryRegionResourceProviderUri": f"https://{MFE_HOST}/",
            "subscriptionId": SUB, "resourceGroup": RG,
            "registryFqdns": {LOCATION: {"api": f"https://{MFE_HOST}"}},
        })

    def _temp_data_reference(self, request: Any, name: str, version: str) -> Reply:
        """Where a new registry asset version is uploaded; 409 once the version exists."""
        if (name, version) in self.registry_models:
            raise ServiceError(409, "UserError",
                               f"Asset {name}:{version} already exists in registry {REGISTRY}")
        assert self.new_container is not None, "a registry needs new_container"
        container, sas = self.new_container()  # each upload gets a container of its own
        self.container_sas[container] = sas
        return self._temp_blob_reference(container)

    def _data_reference(self, request: Any, name: str, version: str) -> Reply:
        """A read SAS for a registry asset's storage."""
        if (name, version) not in self.registry_models:
            raise ServiceError(404, "UserError", f"model {name}:{version} not in {REGISTRY}")
        uri = self.registry_models[(name, version)]["properties"]["modelUri"]
        return self._temp_blob_reference(urlsplit(uri).path.strip("/").split("/")[0])

    def _temp_blob_reference(self, container: str) -> Reply:
        account = (self.blob_endpoint or "/devstoreaccount1").rsplit("/", 1)[1]
        blob_uri = f"https://{account}{BLOB_SUFFIX}/{container}"
        sas = self.container_sas[container]
        return Reply(200, {
            "blobReferenceForConsumption": {
                "blobUri": blob_uri,
                "credential": {"credentialType": "SAS", "sasUri": f"{blob_uri}?{sas}"},
            },
        })

    def _put_registry_version(self, request: Any, name: str, version: str) -> Reply:
        sent = body_of(request)
        properties = (sent or {}).get("properties")
        if not isinstance(properties, dict) or not properties.get("modelUri"):
            raise ServiceError(400, "UserError", "modelUri is required")
        uri = properties["modelUri"]
        if not uri.startswith(f"https://{(self.blob_endpoint or '/x').rsplit('/', 1)[1]}"):
            raise ServiceError(400, "UserError",
                               f"modelUri {uri} is not in the registry's storage")
        existing = self.registry_models.get((name, version))
        if existing is not None and existing["properties"]["modelUri"] != uri:
            raise ServiceError(409, "UserError",
                               f"Conflict: model {name}:{version} exists in {REGISTRY}")
        body = {"id": f"azureml://registries/{REGISTRY}/models/{name}/versions/{version}",
                "name": version, "type": "Microsoft.MachineLearningServices/registries/models/"
                "versions", "properties": {**SERVER_DEFAULTS["models"], **properties},
                "systemData": {"createdAt": now(), "createdBy": "standin"}}
        self.registry_models[(name, version)] = body

        def finish() -> None:
            return None

        return self._lro(finish, 202, None)

    # online endpoints ----------------------------------------------------------------------

    scoring_base: str | None = None  # set by the scoring server when one runs

    def _endpoint(self, name: str) -> dict[str, Any]:
        if name not in self.endpoints:
            raise ServiceError(404, "NotFound", f"Endpoint {name} not found")
        return self.endpoints[name]

    def _list_endpoints(self, request: Any) -> Reply:
        return Reply(200, {"value": list(self.endpoints.values())})

    def _get_endpoint(self, request: Any, endpoint: str) -> Reply:
        return Reply(200, self._endpoint(endpoint))

    def _check_traffic(self, endpoint: str, live: dict[str, int], mirror: dict[str, int]) -> None:
        for table in (live, mirror):
            for name in table:
                state = self.deployments.get((endpoint, name), {}).get("properties", {}).get(
                    "provisioningState")
                if state is None:
                    raise ServiceError(400, "BadArgument",
                                       f"Deployment {name} does not exist in endpoint {endpoint}")
                if state != "Succeeded" and table[name]:
                    raise ServiceError(400, "BadArgument",
                                       f"Deployment {name} is in state {state}; traffic can "
                                       "only go to a deployment that succeeded")
        total = sum(live.values())
        if live and total not in (0, 100):
            raise ServiceError(400, "BadArgument", f"Traffic must sum to 100, got {total}")
        both = [n for n in mirror if mirror[n] and live.get(n)]
        if both:
            raise ServiceError(400, "BadArgument",
                               f"Deployment(s) {both} cannot receive both live and mirror traffic")
        if any(share > 50 for share in mirror.values()):
            raise ServiceError(400, "BadArgument", "Mirror traffic cannot exceed 50%")

    def _put_endpoint(self, request: Any, endpoint: str) -> Reply:
        sent = body_of(request)
        props = sent.get("properties") or {}
        if props.get("authMode") not in {"Key", "AMLToken", "AADToken"}:
            raise ServiceError(400, "BadArgument", f"authMode {props.get('authMode')!r}")
        if endpoint in self.taken_in_region and endpoint not in self.endpoints:
            raise ServiceError(400, "BadArgument",
                               "There is already an endpoint with this name, Endpoint name "
                               "needs to be unique within a region. Try some other name.")
        live = {k: int(v) for k, v in (props.get("traffic") or {}).items()}
        mirror = {k: int(v) for k, v in (props.get("mirrorTraffic") or {}).items()}
        self._check_traffic(endpoint, live, mirror)
        existing = self.endpoints.get(endpoint)
        scoring = (f"{self.scoring_base}/{endpoint}/score" if self.scoring_base
                   else f"https://{endpoint}.{LOCATION}.inference.ml.azure.com/score")
        body = self._resource("onlineEndpoints", endpoint, {
            **props, "traffic": live, "mirrorTraffic": mirror, "scoringUri": scoring,
            "swaggerUri": scoring.replace("/score", "/swagger.json"),
            "provisioningState": "Updating" if existing else "Creating",
        }, f"onlineEndpoints/{endpoint}")
        body.update(location=sent.get("location", LOCATION), identity=sent.get("identity"),
                    kind=sent.get("kind"), tags=sent.get("tags") or {})
        if existing is not None:
            body["properties"]["keys"] = existing["properties"].get("keys")
        else:
            body["properties"]["keys"] = {"primaryKey": uuid.uuid4().hex,
                                          "secondaryKey": uuid.uuid4().hex}
        self.endpoints[endpoint] = body

        def finish() -> None:
            body["properties"]["provisioningState"] = "Succeeded"

        def undo() -> None:  # a failed update leaves the endpoint as it was
            if existing is not None:
                self.endpoints[endpoint] = existing

        return self._lro(finish, 200 if existing else 201, self._public(body), undo)

    @staticmethod
    def _public(endpoint: dict[str, Any]) -> dict[str, Any]:
        shown = json.loads(json.dumps(endpoint))
        shown["properties"].pop("keys", None)
        return shown

    def _list_keys(self, request: Any, endpoint: str) -> Reply:
        return Reply(200, self._endpoint(endpoint)["properties"]["keys"])

    def key_of(self, endpoint: str) -> str:
        return self.endpoints[endpoint]["properties"]["keys"]["primaryKey"]

    def traffic(self, endpoint: str) -> dict[str, int]:
        return {k: v for k, v in self.endpoints[endpoint]["properties"]["traffic"].items() if v}

    def mirror(self, endpoint: str) -> dict[str, int]:
        return {k: v for k, v in
                self.endpoints[endpoint]["properties"]["mirrorTraffic"].items() if v}

    # online deployments --------------------------------------------------------------------

    def _deployment(self, endpoint: str, name: str) -> dict[str, Any]:
        self._endpoint(endpoint)
        if (endpoint, name) not in self.deployments:
            raise ServiceError(404, "NotFound",
                               f"Deployment {name} not found in endpoint {endpoint}")
        return self.deployments[(endpoint, name)]

    def _list_deployments(self, request: Any, endpoint: str) -> Reply:
        self._endpoint(endpoint)
        return Reply(200, {"value": [d for (e, _), d in self.deployments.items()
                                     if e == endpoint]})

    def _get_deployment(self, request: Any, endpoint: str, name: str) -> Reply:
        deployment = self._deployment(endpoint, name)
        op = self.operations.get(deployment.get("_operation", ""))
        if op is not None and not op.done:
            self._operation(deployment["_operation"])  # time passes while a client watches
        return Reply(200, {k: v for k, v in deployment.items() if not k.startswith("_")})

    def _asset_exists(self, arm_id: str, kind: str, store: dict) -> None:
        found = re.search(rf"/{kind}/([^/]+)/versions/([^/]+)$", arm_id or "")
        if found is None:
            raise ServiceError(400, "BadArgument", f"{kind} reference {arm_id!r} is not an ARM id")
        if "/registries/" in arm_id:
            return  # another service's asset; a registry stand-in would check it
        if (found[1], found[2]) not in store:
            raise ServiceError(404, "UserError", f"{kind} {found[1]}:{found[2]} not found")

    def fail_provisioning(self, endpoint: str, name: str, code: str, message: str,
                          logs: dict[str, str]) -> None:
        """The next creation of deployment `name` ends Failed; `logs` per container type."""
        self.deployment_outcome[(endpoint, name)] = {"error": error_body(code, message),
                                                     "logs": logs}

    def _put_deployment(self, request: Any, endpoint: str, name: str) -> Reply:
        self._endpoint(endpoint)
        sent = body_of(request)
        props = sent.get("properties") or {}
        existing = self.deployments.get((endpoint, name))
        if existing is not None and existing["properties"]["provisioningState"] not in TERMINAL:
            raise ServiceError(409, "Conflict",
                               f"Deployment {name} has an operation in progress "
                               f"({existing['properties']['provisioningState']})")
        if props.get("endpointComputeType") != "Managed":
            raise ServiceError(400, "BadArgument", "endpointComputeType must be Managed")
        self._asset_exists(props.get("model"), "models", self.models)
        self._asset_exists(props.get("environmentId"), "environments", self.environments)
        code = props.get("codeConfiguration") or {}
        self._asset_exists(code.get("codeId"), "codes", self.codes)
        if not code.get("scoringScript"):
            raise ServiceError(400, "BadArgument", "codeConfiguration.scoringScript is required")
        body = self._resource("onlineEndpoints/deployments", name, {
            "scaleSettings": {"scaleType": "Default"}, "appInsightsEnabled": False,
            "egressPublicNetworkAccess": "Enabled",
            **props, "provisioningState": "Updating" if existing else "Creating",
        }, f"onlineEndpoints/{endpoint}/deployments/{name}")
        body.update(location=sent.get("location", LOCATION), sku=sent.get("sku"),
                    tags=sent.get("tags") or {})
        outcome = self.deployment_outcome.pop((endpoint, name), None)
        self.deployments[(endpoint, name)] = body
        self.logs[(endpoint, name)] = (outcome or {}).get("logs", {
            "StorageInitializer": "Model and code downloaded.",
            "InferenceServer": "Azure ML Inferencing HTTP server started.",
        })

        def finish() -> dict[str, Any] | None:
            failed = outcome is not None
            body["properties"]["provisioningState"] = "Failed" if failed else "Succeeded"
            return outcome["error"] if failed else None

        reply = self._lro(finish, 200 if existing else 201,
                          {k: v for k, v in body.items() if not k.startswith("_")})
        body["_operation"] = reply.headers["Azure-AsyncOperation"].split("/")[-1].split("?")[0]
        return reply

    def _delete_deployment(self, request: Any, endpoint: str, name: str) -> Reply:
        deployment = self._deployment(endpoint, name)
        props = self.endpoints[endpoint]["properties"]
        share = props["traffic"].get(name) or props["mirrorTraffic"].get(name)
        if share:
            raise ServiceError(400, "BadArgument",
                               f"Deployment {name} has {share}% traffic; set it to 0 first")
        deployment["properties"]["provisioningState"] = "Deleting"

        def finish() -> None:
            self.deployments.pop((endpoint, name), None)

        return self._lro(finish, 202, None)

    def _get_logs(self, request: Any, endpoint: str, name: str) -> Reply:
        self._deployment(endpoint, name)
        sent = body_of(request) or {}
        container = sent.get("containerType") or "InferenceServer"
        if container not in {"InferenceServer", "StorageInitializer"}:
            raise ServiceError(400, "BadArgument", f"containerType {container!r}")
        lines = self.logs[(endpoint, name)].get(container, "").splitlines()
        tail = int(sent.get("tail") or len(lines) or 1)
        return Reply(200, {"content": "\n".join(lines[-tail:])})


def storage_transport(workspace: Workspace) -> Callable[..., RequestsTransport]:
    """What azure-storage-blob builds its transport with, so blob traffic reaches Azurite."""

    def build(**_: Any) -> RequestsTransport:
        return RequestsTransport(session=Session(workspace.adapter), session_owner=False)

    return build
