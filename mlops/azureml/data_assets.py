"""Azure ML data assets as data URLs: ``azureml:name:version`` (or ``azureml:name@latest``) and
the long form ``azureml://.../workspaces/<ws>/data/<name>/versions/<version>``.

A data asset pins an exact version of data in a workspace. The asset is read through the SDK
(``ml_client.data.get``), its path is mapped to the ``abfs://container/path`` URL of its
datastore, and everything downstream reads that URL with adlfs like any other: no
``azureml-fsspec`` (which cannot be locked alongside evidently's fsspec). The storage account's
credentials come from the environment, as for every ``abfs://`` URL (``docs/azure.md``).

Only ``is_data_asset`` is free of Azure imports; the rest imports ``azure.ai.ml`` when called.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

PREFIX = "azureml:"
_SHORT = re.compile(r"^azureml:(?P<name>[A-Za-z0-9_.\-]+)(?::(?P<version>[A-Za-z0-9_.\-]+)"
                    r"|@(?P<label>[A-Za-z0-9_.\-]+))?$")
_LONG = re.compile(r"^azureml://(?:subscriptions/[^/]+/resource[gG]roups/[^/]+/"
                   r"(?:providers/Microsoft\.MachineLearningServices/)?|locations/[^/]+/)"
                   r"workspaces/[^/]+/data/(?P<name>[^/]+)/versions/(?P<version>[^/]+)/?$")
_DATASTORE_PATH = re.compile(r"^azureml://(?:subscriptions/[^/]+/resource[gG]roups/[^/]+/"
                             r"workspaces/[^/]+/)?datastores/(?P<datastore>[^/]+)/paths/"
                             r"(?P<path>.*)$")
_STORAGE_URL = re.compile(r"^(?:https://[^/.]+\.(?:blob|dfs)\.core\.windows\.net/"
                          r"(?P<container>[^/]+)|abfss?://(?P<fs>[^/@]+)@[^/]+)/?(?P<path>.*)$")


@dataclass(frozen=True)
class ResolvedData:
    """Where an asset's data is (an ``abfs://`` URL) and which asset version it is."""

    url: str
    asset: str  # "name:version", what the lineage records


def is_data_asset(url: str | None) -> bool:
    return bool(url) and str(url).startswith(PREFIX)


def parse_asset(url: str) -> tuple[str, str | None, str | None]:
    """(name, version, label) of an asset URL; no version and no label means latest."""
    from mlops.core.errors import DataLoadError  # noqa: PLC0415

    found = _SHORT.match(url) or _LONG.match(url)
    if found is None:
        raise DataLoadError(
            f"data URL {url!r} is not an Azure ML data asset: give 'azureml:name:version', "
            "'azureml:name@latest' or 'azureml://.../workspaces/WS/data/NAME/versions/V'"
        )
    groups = found.groupdict()
    return groups["name"], groups.get("version"), groups.get("label")


def _abfs_url(ml_client: Any, path: str, what: str) -> str:
    """The abfs:// URL of an asset's path (a datastore path or a storage URL)."""
    from mlops.core.errors import DataLoadError  # noqa: PLC0415

    in_store = _DATASTORE_PATH.match(path)
    if in_store is not None:
        datastore = ml_client.datastores.get(in_store["datastore"])
        container = getattr(datastore, "container_name", None) or getattr(
            datastore, "filesystem", None)
        if not container:
            raise DataLoadError(
                f"{what} is in datastore '{in_store['datastore']}' of type {datastore.type}; "
                "only blob and ADLS Gen2 datastores can be read as abfs:// URLs"
            )
        return f"abfs://{container}/{in_store['path']}"
    on_storage = _STORAGE_URL.match(path)
    if on_storage is not None:
        return f"abfs://{on_storage['container'] or on_storage['fs']}/{on_storage['path']}"
    raise DataLoadError(f"{what} has path {urlsplit(path).scheme}://..., not in Azure storage")


def resolve_data_asset(ml_client: Any, url: str) -> ResolvedData:
    """The abfs:// URL behind data asset `url`, and the asset version it names."""
    from mlops.azureml.client import azure_errors  # noqa: PLC0415 - azure.ai.ml
    from mlops.core.errors import DataLoadError  # noqa: PLC0415

    name, version, label = parse_asset(url)
    what = f"data asset {name}" + (f":{version}" if version else f"@{label or 'latest'}")
    with azure_errors(DataLoadError, f"reading {what}"):
        asset = ml_client.data.get(name=name, version=version,
                                   label=None if version else (label or "latest"))
        resolved = _abfs_url(ml_client, str(asset.path), what)
    return ResolvedData(resolved, f"{name}:{asset.version}")


def resolve_for_spec(spec: Any, url: str) -> ResolvedData:
    """Resolve `url` in the workspace of the spec's ``azureml`` section."""
    from mlops.azureml.client import workspace_client  # noqa: PLC0415 - azure.ai.ml
    from mlops.core.errors import DataLoadError  # noqa: PLC0415

    if spec.azureml is None:
        raise DataLoadError(
            f"data URL {url} is an Azure ML data asset: the spec needs an 'azureml' section "
            "(subscription_id, resource_group, workspace) to find it"
        )
    return resolve_data_asset(workspace_client(spec.azureml), url)
