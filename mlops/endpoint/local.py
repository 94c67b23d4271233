"""Client of the local scoring endpoint (``serving``).

The deploy task, the smoke test and the ``mlops predict`` command talk to the endpoint only
through `LocalEndpointClient`; every failure, an error answer or no answer at all, becomes an
`EndpointError` whose message is the server's own.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx

from mlops.core.errors import EndpointError
from mlops.core.settings import Settings
from mlops.endpoint.metrics import DeploymentStats, parse_metrics

logger = logging.getLogger(__name__)

KEYS_FILE = "keys.json"


def _read_keys(endpoint_dir: Path) -> dict[str, str]:
    try:
        return json.loads((endpoint_dir / KEYS_FILE).read_text())
    except FileNotFoundError:
        return {}


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    return str(body.get("error", body)) if isinstance(body, dict) else str(body)


class LocalEndpointClient:
    """Scoring and control calls to one endpoint.

    Args:
        base_url: e.g. ``http://127.0.0.1:8765``.
        key: the scoring key (``Authorization: Bearer``) for ``/score``.
        admin_key: the control-API key; only needed for deployments and traffic.
        timeout: seconds per call; loading a model counts against it.
    """

    metrics_delay_s = 0.0  # /metrics reads the live counters

    def __init__(
        self, base_url: str, key: str | None, admin_key: str | None = None, timeout: float = 30.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = key
        self._admin_key = admin_key
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalEndpointClient:
        """Keys from the settings, else from the keys the endpoint generated in its state."""
        saved = _read_keys(settings.endpoint_state_dir)
        key = settings.endpoint_key.get_secret_value() if settings.endpoint_key else None
        admin = (
            settings.endpoint_admin_key.get_secret_value() if settings.endpoint_admin_key
            else None
        )
        return cls(
            settings.endpoint_url, key or saved.get("key"), admin or saved.get("admin_key"),
            settings.http_timeout_s,
        )

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
            raise EndpointError(f"endpoint at {self.base_url} is not reachable: {exc}") from exc
        if response.is_success or response.status_code in ok:
            return response
        raise EndpointError(
            f"endpoint {method} {path} answered {response.status_code}: {_message(response)}"
        )

    def _admin(self, method: str, path: str, json_body: Any = None) -> dict[str, Any]:
        if not self._admin_key:
            raise EndpointError(
                f"no admin key for {self.base_url}: set MLOPS_ENDPOINT_ADMIN_KEY or start the "
                "endpoint once so it writes its keys into the state folder"
            )
        return self._call(method, path, key=self._admin_key, json_body=json_body).json()

    def health(self) -> bool:
        """Whether the process answers (liveness)."""
        return self._call("GET", "/health", key=None).is_success

    def ready(self) -> bool:
        """Whether every deployment with traffic has its model loaded."""
        return self._call("GET", "/ready", key=None, ok=(503,)).status_code == 200

    def state(self) -> dict[str, Any]:
        """Deployments (model URL, name, version, status), traffic, collection counters."""
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

    def metrics(self) -> dict[str, DeploymentStats]:
        """Each deployment's counters since the endpoint process started (``GET /metrics``)."""
        return parse_metrics(self._call("GET", "/metrics", key=self._admin_key or self._key).text)

    def score(self, payload: Any, deployment: str | None = None) -> dict[str, Any]:
        """Score a request in one of Azure ML's shapes; `deployment` bypasses the traffic."""
        headers = {"azureml-model-deployment": deployment} if deployment else None
        return self._call("POST", "/score", key=self._key, json_body=payload,
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

