"""Which model URLs the endpoint may load: only bundles under its configured registry roots.

A deployment's `model_url` comes from whoever holds the admin key. Without a bound, the server
would fetch from any host fsspec can reach (http, ftp, ...) and read any local folder. A URL is
accepted when, after normalising it (``..`` and, for local paths, symlinks resolved), it lies
under one of the roots (`EndpointConfig.allowed_model_roots`): local folders or Blob Storage
prefixes. The check reads nothing, so its answer is the same whether the path exists or not.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from serving.errors import ModelUrlRefused
from serving.storage import AZURE_PROTOCOLS, protocol_of

LOCAL_PROTOCOLS = frozenset({"file", "local"})


@dataclass(frozen=True)
class Root:
    protocol: str  # "file" or an Azure protocol
    path: str  # absolute, resolved local path; or "container/prefix" without slashes around


def _split(url: str) -> tuple[str, str]:
    protocol = protocol_of(url)
    path = url.split("://", 1)[1] if "://" in url else url
    return protocol, path


def _local(path: str) -> str:
    return os.path.realpath(os.path.expanduser(path))


def _blob(path: str) -> str | None:
    """`container/prefix`, or None when the path climbs with `..` (never resolved remotely)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts or not parts:
        return None
    return posixpath.join(*parts)


def parse_root(url: str | Path) -> Root:
    """A configured root; a scheme other than a local path or Blob Storage is a ValueError."""
    protocol, path = _split(str(url))
    if protocol in LOCAL_PROTOCOLS:
        return Root("file", _local(path))
    blob = _blob(path) if protocol in AZURE_PROTOCOLS else None
    if blob is None:
        raise ValueError(f"model root {str(url)!r} must be a local folder or an abfs:// prefix")
    return Root("abfs", blob)


def _under(path: str, root: str, sep: str) -> bool:
    return path == root or path.startswith(root.rstrip(sep) + sep)


def check_model_url(url: str, roots: Iterable[Root]) -> None:
    """Accept `url` only if it lies under one of `roots` once normalised.

    Raises:
        ModelUrlRefused: another scheme (http, ftp, s3, memory...), a blob path with `..`, or a
            location outside every root.
    """
    roots = list(roots)
    protocol, path = _split(str(url))
    if protocol in LOCAL_PROTOCOLS:
        resolved = _local(path)
        ok = any(r.protocol == "file" and _under(resolved, r.path, os.sep) for r in roots)
    elif protocol in AZURE_PROTOCOLS:
        blob = _blob(path)
        ok = blob is not None and any(
            r.protocol == "abfs" and _under(blob, r.path, "/") for r in roots)
    else:
        ok = False
    if not ok:
        raise ModelUrlRefused(
            f"model_url {str(url)[:200]!r} is not under an allowed model location; the endpoint "
            "loads bundles only from its registry roots (MLOPS_ENDPOINT_MODEL_ROOTS)"
        )
