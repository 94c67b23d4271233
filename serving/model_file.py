"""Reading a model file (skops format) so that nothing in it runs unless we listed it by name.

A skops file is a zip: ``schema.json`` describes the object tree, one node per object, each
naming the class, function or type skops rebuilds from it (``__module__`` + ``__class__``), and
the other members hold array data. skops calls or instantiates what a node names, with values
from the file; its own audit trusts several families of names by default, and any ``trusted=``
list is added to those. So this module decides by itself, before skops sees the file:

1. the zip is bounded: member count, each member's and the total uncompressed size, read from
   the zip's directory before anything is decompressed;
2. every node of ``schema.json`` (containers, object arrays and attributes included, at any
   depth) uses a loader this module knows, and every name the node makes skops resolve is in
   `serving.allowed_types.ALLOWED_TYPES`, compared whole;
3. only then skops loads it, trusting exactly the names found (which skops' own audit checks
   again).

skops' defaults are therefore never needed, and computing them is most of what importing
``skops.io`` costs: it calls scikit-learn's `all_estimators`, which imports every estimator
module scikit-learn has, about 1 s of CPU in every process that loads or writes a model (each
batch worker, the endpoint, the training flow). `skops_io` imports it with that listing
empty; skops then trusts no scikit-learn estimator by default, which only makes its own audit
stricter, and every name a file needs is passed to it explicitly.

Anything else is a `BundleLoadError` that names the refused types.
"""

from __future__ import annotations

import io
import json
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from serving.allowed_types import ALLOWED_TYPES
from serving.errors import BundleLoadError

SCHEMA_MEMBER = "schema.json"
# The skops protocol this code reads; another protocol selects other node classes.
SKOPS_PROTOCOL = 2
# Nesting of the schema's JSON (dicts and lists); the project's pipelines stay below 60.
MAX_DEPTH = 400

# Loaders whose node rebuilds nothing from `__module__`/`__class__`.
_NAMELESS = frozenset({"JsonNode", "CachedNode"})
# Every other loader skops 0.16 registers for files; an unknown loader is refused. Nodes of
# quantile forests and of old protocols are not here: the project writes neither.
_NAMED = frozenset({
    "DictNode", "DefaultDictNode", "ListNode", "SetNode", "TupleNode", "BytesNode",
    "BytearrayNode", "SliceNode", "FunctionNode", "MethodNode", "PartialNode", "TypeNode",
    "ConstructorFromReduceNode", "ObjectNode", "OperatorFuncNode", "NdArrayNode",
    "MaskedArrayNode", "DTypeNode", "RandomStateNode", "RandomGeneratorNode",
    "SparseMatrixNode", "TreeNode", "LossNode",
})


@dataclass(frozen=True)
class ZipLimits:
    """Bounds on a model file, checked against the zip's directory before decompressing.

    The defaults hold a random forest of a few hundred deep trees; a file beyond them is
    refused rather than read into memory.
    """

    max_members: int = 50_000
    max_member_bytes: int = 1 << 30
    max_total_bytes: int = 2 << 30
    max_schema_bytes: int = 256 << 20


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _open_zip(data: bytes, source: str, limits: ZipLimits) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise BundleLoadError(f"{source}: the model file is not a skops (zip) file: {exc}") from exc
    members = archive.infolist()
    if len(members) > limits.max_members:
        raise BundleLoadError(
            f"{source}: the model file has {len(members)} members (limit {limits.max_members})")
    big = [m for m in members if m.file_size > limits.max_member_bytes]
    if big:
        raise BundleLoadError(
            f"{source}: model file member '{big[0].filename}' is {big[0].file_size} bytes "
            f"uncompressed (limit {limits.max_member_bytes})")
    total = sum(m.file_size for m in members)
    if total > limits.max_total_bytes:
        raise BundleLoadError(
            f"{source}: the model file is {total} bytes uncompressed "
            f"(limit {limits.max_total_bytes})")
    return archive


def _read_schema(archive: zipfile.ZipFile, source: str, limits: ZipLimits) -> dict[str, Any]:
    try:
        info = archive.getinfo(SCHEMA_MEMBER)
    except KeyError as exc:
        raise BundleLoadError(f"{source}: the model file has no {SCHEMA_MEMBER}") from exc
    if info.file_size > limits.max_schema_bytes:
        raise BundleLoadError(
            f"{source}: {SCHEMA_MEMBER} is {info.file_size} bytes (limit "
            f"{limits.max_schema_bytes})")
    try:
        schema = json.loads(archive.read(info))
    except (ValueError, RecursionError, zipfile.BadZipFile, OSError) as exc:
        raise BundleLoadError(f"{source}: {SCHEMA_MEMBER} is unreadable: {exc}") from exc
    if not isinstance(schema, dict):
        raise BundleLoadError(f"{source}: {SCHEMA_MEMBER} is not an object: {_short(schema)}")
    protocol = schema.get("protocol")
    if type(protocol) is not int or protocol != SKOPS_PROTOCOL:
        raise BundleLoadError(
            f"{source}: skops protocol {_short(protocol)}; this code reads {SKOPS_PROTOCOL}")
    return schema


def _nodes(schema: dict[str, Any], source: str) -> Iterator[dict[str, Any]]:
    """Every node of the tree: each dict holding a `__loader__`, wherever it sits.

    Walking all dicts and lists (not only the children skops would visit) checks strictly
    more than skops builds, including content it would skip for a repeated `__id__`.
    """
    stack: list[tuple[Any, int]] = [(schema, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BundleLoadError(f"{source}: {SCHEMA_MEMBER} nests deeper than {MAX_DEPTH}")
        if isinstance(value, dict):
            if "__loader__" in value:
                yield value
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def _bit_generator(node: dict[str, Any]) -> str | None:
    """The bit generator a Generator node makes skops call (where skops itself reads it)."""
    try:
        name = json.loads(node["content"]["bit_generator"]["content"]["bit_generator"]["content"])
    except (KeyError, TypeError, ValueError):
        return None
    return name if isinstance(name, str) else None


def _names(node: dict[str, Any]) -> tuple[set[str], list[str]]:
    """The names one node makes skops resolve, and the problems that are not names."""
    loader = node["__loader__"]
    if not isinstance(loader, str):
        return set(), [f"a node loader that is not a name: {_short(loader)}"]
    if loader in _NAMELESS:
        return set(), []
    if loader not in _NAMED:
        return set(), [f"unknown node loader {_short(loader)}"]
    module, name = node.get("__module__"), node.get("__class__")
    if not isinstance(module, str) or not isinstance(name, str):
        return set(), [f"a {loader} without a module and class name"]
    names = {f"{module}.{name}"}
    if loader == "MethodNode":
        content = node.get("content")
        func = content.get("func") if isinstance(content, dict) else None
        names.add(f"{module}.{name}.{func}")
    elif loader == "RandomGeneratorNode":
        names.add(f"numpy.random.{_bit_generator(node)}")
    return names, []


def _member_refs(node: dict[str, Any]) -> list[Any]:
    return [node["file"]] if "file" in node else []


def audit_model_file(
    data: bytes, source: str = "model file", limits: ZipLimits | None = None
) -> frozenset[str]:
    """Check a skops file without constructing anything; the names it holds, all allowed.

    Raises:
        BundleLoadError: not a zip, beyond `limits`, a malformed schema, an unknown loader, a
            missing member, or names outside the allow-list (all of them, sorted).
    """
    limits = limits or ZipLimits()
    with _open_zip(data, source, limits) as archive:
        schema = _read_schema(archive, source, limits)
        present = set(archive.namelist())
    found: set[str] = set()
    problems: list[str] = []
    for node in _nodes(schema, source):
        names, trouble = _names(node)
        found |= names
        problems += trouble
        missing = [ref for ref in _member_refs(node) if ref not in present]
        problems += [f"a node refers to member {_short(ref)}, not in the file" for ref in missing]
    refused = sorted(found - ALLOWED_TYPES)
    if refused:
        problems.insert(0, f"types outside the allow-list: {refused}")
    if problems:
        raise BundleLoadError(f"{source}: model file refused: " + "; ".join(sorted(set(problems))))
    return frozenset(found)


def skops_io() -> ModuleType:
    """``skops.io``, imported without its listing of every scikit-learn estimator (see the
    module's docstring): `sklearn.utils.all_estimators` answers an empty list while skops reads
    it at import, and is put back at once.

    Safe from several threads at once: one thread imports while the others wait on a lock, so
    none reads a half-imported module and none keeps the stand-in listing for good."""
    if "skops.io" not in sys.modules:
        with _SKOPS_IMPORT:
            if "skops.io" not in sys.modules:
                import sklearn.utils  # noqa: PLC0415 - only loaders and writers pay for it

                listing = sklearn.utils.all_estimators
                sklearn.utils.all_estimators = _no_estimators
                try:
                    import skops.io  # noqa: PLC0415
                finally:
                    sklearn.utils.all_estimators = listing
    # An import statement waits for a module another thread is still importing; a look-up in
    # sys.modules would not.
    import skops.io  # noqa: PLC0415

    return skops.io


_SKOPS_IMPORT = threading.Lock()


def _no_estimators(*args: Any, **kwargs: Any) -> list[tuple[str, type]]:
    return []


def load_model_file(
    data: bytes, source: str = "model file", limits: ZipLimits | None = None
) -> Any:
    """The object in a skops file that passed `audit_model_file`.

    Raises:
        BundleLoadError: the audit refused the file, or skops could not rebuild it.
    """
    names = audit_model_file(data, source, limits)
    sio = skops_io()
    from skops.io.exceptions import UntrustedTypesFoundException  # noqa: PLC0415

    try:
        return sio.loads(data, trusted=sorted(names))
    except (UntrustedTypesFoundException, ValueError, TypeError, KeyError, AttributeError,
            IndexError, ImportError, RecursionError, zipfile.BadZipFile, OSError) as exc:
        raise BundleLoadError(f"{source}: skops could not rebuild the model: {exc}") from exc
