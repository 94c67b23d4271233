"""The wire: a requests adapter in place of the socket, the service's reply and error shapes,
and the names (subscription, workspace, hosts, paths) the stand-in answers for."""

from __future__ import annotations

import io
import json
import re
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

SUB, RG, WS, LOCATION = "00000000-0000-0000-0000-000000000000", "rg-mlops", "ws-mlops", "westeurope"
ARM_HOST = "management.azure.com"
PROVIDER = "providers/Microsoft.MachineLearningServices"
BLOB_SUFFIX = ".blob.core.windows.net"
DISCOVERY_HOST = "eastus.api.azureml.ms"  # where the SDK asks where a registry lives
MFE_HOST = f"{LOCATION}.api.azureml.ms"  # the registry's region: its data-plane API
METRICS_HOST = f"{LOCATION}.metrics.monitor.azure.com"  # Azure Monitor's metrics data plane
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


def failed_with(error: dict[str, Any],
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
        assert url.hostname in {ARM_HOST, DISCOVERY_HOST, MFE_HOST, METRICS_HOST}, (
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


def storage_transport(workspace: Any) -> Callable[..., RequestsTransport]:
    """What azure-storage-blob builds its transport with, so blob traffic reaches Azurite."""

    def build(**_: Any) -> RequestsTransport:
        return RequestsTransport(session=Session(workspace.adapter), session_owner=False)

    return build
