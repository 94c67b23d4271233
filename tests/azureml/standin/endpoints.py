"""Managed online endpoints and their deployments, as the service answers them."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from tests.azureml.standin.http import (
    LOCATION,
    TERMINAL,
    Reply,
    ServiceError,
    body_of,
    error_body,
)

# Azure ML's rule for endpoint and deployment names.
NAME_RULE = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]$")


class EndpointRoutes:
    """Mixed into Workspace: the endpoint and deployment handlers."""

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
        mirrored = [n for n, share in mirror.items() if share]
        if len(mirrored) > 1:
            raise ServiceError(400, "BadArgument",
                               f"Mirror traffic can go to one deployment only, got {mirrored}")

    def _put_endpoint(self, request: Any, endpoint: str) -> Reply:
        sent = body_of(request)
        props = sent.get("properties") or {}
        if not NAME_RULE.match(endpoint):
            raise ServiceError(400, "BadArgument", f"Endpoint name {endpoint!r} is invalid: "
                               "3-32 letters, digits or '-', starting with a letter")
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
            self._traffic_set(endpoint, live)

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
        if not NAME_RULE.match(name):
            raise ServiceError(400, "BadArgument", f"Deployment name {name!r} is invalid")
        if not props.get("instanceType"):
            raise ServiceError(400, "BadArgument", "instanceType is required")
        if int((sent.get("sku") or {}).get("capacity") or 0) < 1:
            raise ServiceError(400, "BadArgument", "sku.capacity must be at least 1")
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
