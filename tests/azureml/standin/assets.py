"""Datastores, versioned assets (models, environments, code, data) and an Azure ML registry's
data-plane routes, as the service answers them."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from tests.azureml.standin.http import (
    BLOB_SUFFIX,
    DATASTORE,
    LOCATION,
    MFE_HOST,
    MFE_PREFIX,
    REGISTRY,
    REGISTRY_PATH,
    RG,
    SERVER_DEFAULTS,
    SUB,
    Reply,
    ServiceError,
    body_of,
    now,
)


class AssetRoutes:
    """Mixed into Workspace: the asset and registry handlers."""

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
            if kind == "environments" and not (properties.get("image") or properties.get("build")):
                raise ServiceError(400, "UserError", "an environment needs an image or a build")
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
