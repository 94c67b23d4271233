"""Client of the local scoring endpoint (``serving``).

The deploy task, the smoke test and the ``mlops predict`` command talk to the endpoint only
through `LocalEndpointClient`; every failure, an error answer or no answer at all, becomes an
`EndpointError` whose message is the server's own.

One server hosts several endpoints (``serving.endpoints``): the default one at its plain URL,
each other at ``<server URL>/endpoints/<name>``. The client takes either URL. The default
endpoint's keys come from ``MLOPS_ENDPOINT_KEY`` / ``MLOPS_ENDPOINT_ADMIN_KEY``, else from the
keys file the server wrote; a named endpoint's from its own keys file, else from the server:
with the server's admin key (the default's), the client's first call that needs a key creates
the endpoint if it does not exist and takes its keys from the answer
(``PUT /endpoints/<name>``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from mlops.core.errors import EndpointError, EndpointUnreachableError
from mlops.core.settings import Settings
from mlops.endpoint.metrics import DeploymentStats, parse_metrics
from serving.config import named_endpoint_dir

logger = logging.getLogger(__name__)

KEYS_FILE = "keys.json"
NAMED = "/endpoints/"


def _read_keys(endpoint_dir: Path) -> dict[str, str]:
    try:
        return json.loads((endpoint_dir / KEYS_FILE).read_text())
    except FileNotFoundError:
        return {}


def endpoint_name_in(url: str) -> str | None:
    """The endpoint a URL names (``.../endpoints/<name>``), or None for a server's plain URL (its
    default endpoint)."""
    path = urlsplit(url).path.rstrip("/")
    _, sep, name = path.rpartition(NAMED)
    return name if sep and name and "/" not in name else None


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    return str(body.get("error", body)) if isinstance(body, dict) else str(body)


class LocalEndpointClient:
    """Scoring and control calls to one endpoint.

    Args:
        base_url: e.g. ``http://127.0.0.1:8765`` (the default endpoint) or
            ``http://127.0.0.1:8765/endpoints/diabetes-endpoint``.
        key: the scoring key (``Authorization: Bearer``) for ``/score``.
        admin_key: the control-API key; only needed for deployments and traffic.
        timeout: seconds per call; loading a model counts against it.
        server_admin_key: for a named endpoint without keys: the server's admin key, with
            which the first call that needs a key creates the endpoint (or gets its keys).
    """

    metrics_delay_s = 0.0  # /metrics reads the live counters

    def __init__(
        self, base_url: str, key: str | None, admin_key: str | None = None, timeout: float = 30.0,
        server_admin_key: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.endpoint = endpoint_name_in(self.base_url)
        self._key = key
        self._admin_key = admin_key
        self._server_admin_key = server_admin_key
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    @classmethod
    def from_settings(cls, settings: Settings, url: str | None = None) -> LocalEndpointClient:
        """A client of the endpoint at `url` (default ``MLOPS_ENDPOINT_URL``), its keys as the
        module says: the settings' keys and the default's keys file are the server's."""
        url = url or settings.endpoint_url
        saved = _read_keys(settings.endpoint_state_dir)
        key = settings.endpoint_key.get_secret_value() if settings.endpoint_key else None
        admin = (
            settings.endpoint_admin_key.get_secret_value() if settings.endpoint_admin_key
            else None
        )
        key, admin = key or saved.get("key"), admin or saved.get("admin_key")
        name = endpoint_name_in(url)
        if name is None:
            return cls(url, key, admin, settings.http_timeout_s)
        own = _read_keys(named_endpoint_dir(settings.state_dir, name))
        return cls(url, own.get("key"), own.get("admin_key"), settings.http_timeout_s,
                   server_admin_key=admin)

    def ensure_endpoint(self) -> dict[str, Any]:
        """Create this named endpoint on its server unless it exists, and take its keys.

        Raises:
            EndpointError: this is a server's default endpoint, the server's admin key is
                not known, or the server refused.
        """
        if self.endpoint is None or not self._server_admin_key:
            raise EndpointError(
                f"cannot create the endpoint at {self.base_url}: "
                + ("it is a server's default endpoint" if self.endpoint is None else
                   "no server admin key (MLOPS_ENDPOINT_ADMIN_KEY, or the server's keys file "
                   "in the state folder)")
            )
        answer = self._call("PUT", f"{self._server_url}{NAMED}{self.endpoint}",
                            key=self._server_admin_key).json()
        self._key, self._admin_key = answer["key"], answer["admin_key"]
        if answer["created"]:
            logger.info("Created endpoint %s on %s", self.endpoint, self._server_url)
        return answer

    @property
    def _server_url(self) -> str:
        return self.base_url[: -len(f"{NAMED}{self.endpoint}")] if self.endpoint else self.base_url

    def endpoints(self) -> dict[str, Any]:
        """Every endpoint of this client's server, with its deployments and traffic, by name
        (the server's admin key)."""
        key = self._server_admin_key if self.endpoint else self._admin_key
        return self._call("GET", f"{self._server_url}/endpoints", key=key).json()["endpoints"]

    def _keys_for(self, admin: bool) -> str | None:
        """The key a call needs, the endpoint created first when it is named and keyless."""
        wanted = self._admin_key if admin else self._key
        if not wanted and self.endpoint is not None and self._server_admin_key:
            self.ensure_endpoint()
            wanted = self._admin_key if admin else self._key
        return wanted

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LocalEndpointClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(
        self, method: str, path: str, *, key: str | None, json_body: Any = None,
        headers: dict[str, str] | None = None, ok: tuple[int, ...] = (),
    ) -> httpx.Response:
        sent = dict(headers or {})
        if key:
            sent["Authorization"] = f"Bearer {key}"
        try:
            response = self._http.request(method, path, json=json_body, headers=sent)
        except httpx.HTTPError as exc:
            raise EndpointUnreachableError(
                f"endpoint at {self.base_url} is not reachable: {exc}") from exc
        if response.is_success or response.status_code in ok:
            return response
        raise EndpointError(
            f"endpoint {method} {path} answered {response.status_code}: {_message(response)}"
        )

    def _admin(self, method: str, path: str, json_body: Any = None) -> dict[str, Any]:
        admin_key = self._keys_for(admin=True)
        if not admin_key:
            raise EndpointError(
                f"no admin key for {self.base_url}: set MLOPS_ENDPOINT_ADMIN_KEY or start the "
                "endpoint once so it writes its keys into the state folder"
            )
        return self._call(method, path, key=admin_key, json_body=json_body).json()

    def health(self) -> bool:
        """Whether the process answers (liveness)."""
        return self._call("GET", "/health", key=None).is_success

    def ready(self) -> bool:
        """Whether every deployment with traffic has its model loaded."""
        return self._call("GET", "/ready", key=None, ok=(503,)).status_code == 200

    def state(self) -> dict[str, Any]:
        """Deployments (model URL, name, version, status), traffic, mirror traffic, collection
        counters."""
        return self._admin("GET", "/admin/state")

    def put_deployment(self, name: str, model_url: str) -> dict[str, Any]:
        """Create or replace deployment `name`; returns once the model is loaded and the old
        one drained."""
        return self._admin("PUT", f"/admin/deployments/{name}", {"model_url": model_url})

    def delete_deployment(self, name: str) -> dict[str, Any]:
        return self._admin("DELETE", f"/admin/deployments/{name}")

    def set_traffic(self, traffic: dict[str, int]) -> dict[str, int]:
        """Replace the traffic table (percentages summing to 100; others get 0)."""
        return self._admin("PUT", "/admin/traffic", traffic)["traffic"]

    def set_mirror_traffic(self, mirror: dict[str, int]) -> dict[str, int]:
        """Replace the mirror traffic table (``{"green": 10}``; ``{}`` turns mirroring off)."""
        return self._admin("PUT", "/admin/mirror_traffic", mirror)["mirror_traffic"]

    def metrics(self) -> dict[str, DeploymentStats]:
        """Each deployment's counters since the endpoint process started (``GET /metrics``)."""
        key = self._keys_for(admin=True) or self._key
        return parse_metrics(self._call("GET", "/metrics", key=key).text)

    def score(self, payload: Any, deployment: str | None = None) -> dict[str, Any]:
        """Score a request in one of Azure ML's shapes; `deployment` bypasses the traffic."""
        headers = {"azureml-model-deployment": deployment} if deployment else None
        return self._call("POST", "/score", key=self._keys_for(admin=False), json_body=payload,
                          headers=headers).json()

    def wait_until_healthy(self, timeout: float = 30.0) -> None:
        """Poll /health until it answers.

        Raises:
            EndpointError: it did not within `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.health():
                    return
            except EndpointError as exc:
                if time.monotonic() > deadline:
                    raise EndpointError(
                        f"endpoint at {self.base_url} not healthy after {timeout:.0f} s: {exc}"
                    ) from exc
            time.sleep(0.1)

