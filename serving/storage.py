"""Opening storage by URL, with credentials from the environment: local paths or Blob Storage.

This is the one place that knows about storage credentials. It lives in `serving` because the
scoring server loads bundles from the registry and writes inference data, and may not import
`mlops`; `mlops.data.storage` builds on it. Light imports only: adlfs is imported by `open_fs`
when a URL needs it, never at import time.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import fsspec
from fsspec import AbstractFileSystem

logger = logging.getLogger(__name__)

AZURE_PROTOCOLS = frozenset({"abfs", "abfss", "az"})


def protocol_of(url: str) -> str:
    """The URL's scheme ('file' for plain paths), as fsspec understands it."""
    protocol, _ = fsspec.core.split_protocol(str(url))
    return protocol or "file"


def is_azure(url: str) -> bool:
    return protocol_of(url) in AZURE_PROTOCOLS


def storage_options(url: str) -> dict[str, Any]:
    """Credentials for the URL's store, read from the environment when called.

    Azure (abfs://, az://) tries, in order: a connection string, an account name with its key,
    and an account name alone, in which case adlfs falls back to DefaultAzureCredential
    (managed identity, `az login`, workload identity). Local paths need nothing. The values are
    secrets: pass them to the filesystem, never to a log line, a Prefect parameter or a file.
    """
    if not is_azure(url):
        return {}
    env = os.environ
    if env.get("AZURE_STORAGE_CONNECTION_STRING"):
        logger.debug("azure storage: using AZURE_STORAGE_CONNECTION_STRING")
        return {"connection_string": env["AZURE_STORAGE_CONNECTION_STRING"]}
    account = env.get("AZURE_STORAGE_ACCOUNT_NAME")
    if account and env.get("AZURE_STORAGE_ACCOUNT_KEY"):
        logger.debug("azure storage: account %s with an account key", account)
        return {"account_name": account, "account_key": env["AZURE_STORAGE_ACCOUNT_KEY"]}
    logger.debug("azure storage: account %s with DefaultAzureCredential", account)
    options: dict[str, Any] = {"anon": False}
    if account:
        options["account_name"] = account
    return options


def open_fs(url: str, options: dict[str, Any] | None = None) -> tuple[AbstractFileSystem, str]:
    """The filesystem and the path inside it for `url`.

    Blob URLs get `serving.blobfs.BlobFileSystem` (adlfs with a short SDK retry budget) and no
    listing cache: fsspec shares one filesystem object per thread, and a cached listing would
    hide blobs, versions and etags that another process wrote since.

    Args:
        url: A local path, `file://...`, `abfs://container/path`, `az://container/path`...
        options: Storage options; default: `storage_options(url)` from the environment.

    Raises:
        ValueError, ImportError: the scheme is unknown or its driver is not installed.
    """
    options = storage_options(url) if options is None else options
    if not is_azure(url):
        return fsspec.core.url_to_fs(str(url), **options)
    from serving.blobfs import BlobFileSystem  # noqa: PLC0415 - adlfs only for blob URLs

    kwargs = {**BlobFileSystem._get_kwargs_from_urls(url), **options, "use_listings_cache": False}
    fs = BlobFileSystem(**kwargs)
    return fs, fs._strip_protocol(url)
