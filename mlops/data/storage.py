"""Storage by URL: local paths, `file://` and `abfs://` through one fsspec entry point.

Every read and write of data goes through `url_to_fs`, so switching from a local folder to Azure
Blob Storage is a change of URL, never of code. Credentials come from the environment at call
time (never at import time) through `storage_options`, the one place that knows about them; it
lives in `serving.storage` because the scoring server needs it too and may not import `mlops`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import posixpath
from dataclasses import dataclass
from typing import Any

from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from mlops.core.errors import DataLoadError
from serving.storage import (  # noqa: F401 - protocol helpers re-exported for mlops callers
    AZURE_PROTOCOLS,
    open_fs,
    protocol_of,
    storage_options,
)

logger = logging.getLogger(__name__)

# CSV may be compressed: the reader tells the compression from the file's first bytes.
FORMAT_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "parquet": (".parquet", ".pq"),
    "csv": (".csv", ".csv.gz", ".csv.gzip", ".csv.bz2", ".csv.zip", ".csv.xz", ".csv.zst"),
}
# Names writers use while a file is incomplete (Spark, Hadoop, our own writers, browsers).
TEMP_PATTERNS = ("*.tmp", "*.part", "*.crc", "*.inprogress", "*~")
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class FileInfo:
    """One data file as the storage reports it: enough to fingerprint it without reading it.

    Attributes:
        url: Full URL of the file (a plain absolute path for local files).
        size: Size in bytes.
        version: The store's etag when it has one, else the modification time; it changes
            whenever the content is rewritten.
    """

    url: str
    size: int
    version: str


def url_to_fs(url: str, **options: Any) -> tuple[AbstractFileSystem, str]:
    """The filesystem and the path inside it for a URL, with credentials filled in.

    Args:
        url: A local path (relative or absolute), `file://...`, `abfs://container/path`...
        **options: Storage options that override the ones from the environment.

    Raises:
        DataLoadError: the scheme is unknown or its driver is not installed.
    """
    if str(url).startswith("azureml:"):
        raise DataLoadError(
            f"{url} is an Azure ML data asset, not a storage URL: give it as the spec's data.url "
            "or the drift check's data_url, where it is resolved to its datastore's abfs:// URL"
        )
    try:
        return open_fs(str(url), {**storage_options(url), **options})
    except (ValueError, ImportError) as exc:
        raise DataLoadError(f"cannot open storage for {url}: {exc}") from exc


def access_refused(url: str, exc: Exception) -> DataLoadError | None:
    """A DataLoadError when Blob Storage refused the request in a way retrying cannot change.

    Missing or wrong credentials and 4xx answers (403 without the Storage Blob Data Reader role,
    400 for a malformed name) are the user's to fix; connection failures, timeouts, 408, 429 and
    5xx are transient and stay as they are, for the I/O task's retries.
    """
    if protocol_of(url) not in AZURE_PROTOCOLS:
        return None
    from azure.core.exceptions import ClientAuthenticationError  # noqa: PLC0415 - loaded by adlfs

    status = getattr(exc, "status_code", None)
    if isinstance(exc, ClientAuthenticationError) or (
        isinstance(status, int) and 400 <= status < 500 and status not in (408, 429)
    ):
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return DataLoadError(
            f"Blob Storage refused access to {url} (HTTP {status or 'n/a'}): {reason}. Check "
            "AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME with an account key "
            "or a signed-in identity that has the Storage Blob Data Reader role"
        )
    return None


def path_to_url(fs: AbstractFileSystem, path: str) -> str:
    """The URL that names `path` in `fs` again (local files stay plain absolute paths)."""
    if isinstance(fs, LocalFileSystem):
        return path
    return fs.unstrip_protocol(path)


def is_hidden_or_temp(relative_path: str) -> bool:
    """Whether a file below a data folder is bookkeeping rather than data.

    Any part of the path starting with '_' or '.' (Spark's `_SUCCESS`, `_temporary/`, `.crc`
    files) or a name that a writer uses while the file is incomplete.
    """
    parts = [p for p in relative_path.replace("\\", "/").split("/") if p]
    if any(p.startswith(("_", ".")) for p in parts):
        return True
    name = parts[-1] if parts else ""
    return any(fnmatch.fnmatch(name.lower(), pattern) for pattern in TEMP_PATTERNS)


def format_of(url: str) -> str | None:
    """'parquet' or 'csv' from the file's extension, None when the extension is neither."""
    name = url.lower()
    for fmt, extensions in FORMAT_EXTENSIONS.items():
        if name.endswith(extensions):
            return fmt
    return None


def known_extensions() -> str:
    """The extensions `format_of` knows, for messages: '.parquet, .pq, .csv, .csv.gz, ...'."""
    return ", ".join(e for extensions in FORMAT_EXTENSIONS.values() for e in extensions)


def _wanted(path: str, fmt: str) -> bool:
    found = format_of(path)
    return found is not None and (fmt == "auto" or found == fmt)


def _check_format(fmt: str) -> None:
    if fmt != "auto" and fmt not in FORMAT_EXTENSIONS:
        raise DataLoadError(f"unknown data format '{fmt}'; use auto, parquet or csv")


def _version(info: dict[str, Any]) -> str:
    for key in ("etag", "ETag", "e_tag"):
        if info.get(key):
            return str(info[key]).strip('"')
    for key in ("mtime", "last_modified", "LastModified", "modified", "created"):
        if info.get(key) is not None:
            return str(info[key])
    return ""


def _file_info(fs: AbstractFileSystem, path: str, info: dict[str, Any]) -> FileInfo:
    return FileInfo(
        url=path_to_url(fs, path), size=int(info.get("size") or 0), version=_version(info)
    )


def _under(fs: AbstractFileSystem, root: str) -> dict[str, dict[str, Any]]:
    """Data-looking files below a folder, recursively, keyed by path."""
    root = root.rstrip("/")
    found = fs.find(root, detail=True)
    return {
        path: info
        for path, info in found.items()
        if info.get("type", "file") == "file"
        and not is_hidden_or_temp(posixpath.relpath(path, root) if root else path)
    }


def _matching_glob(fs: AbstractFileSystem, pattern: str) -> dict[str, dict[str, Any]]:
    """Files a glob names; a folder it names contributes the files below it."""
    static = _static_prefix(pattern)
    files: dict[str, dict[str, Any]] = {}
    for path, info in fs.glob(pattern, detail=True).items():
        if is_hidden_or_temp(posixpath.relpath(path, static) if static else path):
            continue
        if info.get("type") == "directory":
            files.update(_under(fs, path))
        else:
            files[path] = info
    return files


def _static_prefix(pattern: str) -> str:
    """The folder part of a glob before its first wildcard: hidden names are judged below it."""
    parts = pattern.split("/")
    fixed = next(i for i, part in enumerate(parts) if _GLOB_CHARS.intersection(part))
    return "/".join(parts[:fixed])


def _single_file(url: str, path: str, info: dict[str, Any], fmt: str) -> dict[str, Any]:
    if fmt == "auto" and format_of(path) is None:
        raise DataLoadError(
            f"cannot tell the format of {url}: expected {known_extensions()}, or set data.format"
        )
    return {path: info}


def _candidates(fs: AbstractFileSystem, url: str, path: str, fmt: str) -> dict[str, Any]:
    if _GLOB_CHARS.intersection(path):
        return {p: i for p, i in _matching_glob(fs, path).items() if _wanted(p, fmt)}
    try:
        info = fs.info(path)
    except FileNotFoundError as exc:
        raise DataLoadError(f"no data at {url}: the path does not exist") from exc
    if info.get("type") == "directory":
        return {p: i for p, i in _under(fs, path).items() if _wanted(p, fmt)}
    return _single_file(url, path, info, fmt)


def list_data_files(url: str, fmt: str = "auto") -> list[FileInfo]:
    """The data files a URL names: one file, a folder of partitions, or a glob.

    Folders are searched recursively; bookkeeping and half-written files are skipped (see
    `is_hidden_or_temp`), and only files of the wanted format count.

    Args:
        url: The data location.
        fmt: 'parquet', 'csv' or 'auto' (both, told apart by extension).

    Returns:
        The files, sorted by URL so that partitions concatenate in a stable order.

    Raises:
        DataLoadError: nothing matches, the path does not exist, or the store refuses access
            (bad credentials, no role on the container); the message names the URL.
    """
    _check_format(fmt)
    fs, path = url_to_fs(url)
    try:
        found = _candidates(fs, url, path, fmt)
    except OSError as exc:
        raise DataLoadError(f"cannot list {url}: {exc}") from exc
    except Exception as exc:
        refused = access_refused(url, exc)
        if refused is not None:
            raise refused from exc
        raise  # an outage or a timeout: the I/O task's retries may still get through
    if not found:
        wanted = "parquet or csv" if fmt == "auto" else fmt
        raise DataLoadError(f"no {wanted} data files at {url}")
    files = sorted((_file_info(fs, p, i) for p, i in found.items()), key=lambda f: f.url)
    logger.debug("%s: %d data files", url, len(files))
    return files


def fingerprint(files: list[FileInfo]) -> str:
    """A digest that changes when any file is added, removed or rewritten.

    Built from each file's URL, size and version (etag or mtime), never from its bytes, so
    fingerprinting a 10 GB folder costs one listing.
    """
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.url):
        digest.update(f"{f.url}\x1f{f.size}\x1f{f.version}\x1e".encode())
    return digest.hexdigest()


def write_file(fs: AbstractFileSystem, path: str, data: bytes) -> None:
    """Write `data` so that readers see the old file or the new one, never a part.

    On a local disk: a temporary name then an atomic rename. On object stores one PUT is
    already all-or-nothing.
    """
    if "file" in fs.protocol or "local" in fs.protocol:
        tmp = f"{path}.tmp"
        fs.pipe_file(tmp, data)
        fs.mv(tmp, path)
    else:
        fs.pipe_file(path, data)
