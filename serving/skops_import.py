"""Import skops.io without its slow module scan, guarded by the exact skops code it replaces.

At import, skops 0.16.0 names each of scipy.special's 232 ufuncs (they have no ``__module__``)
by scanning ``sys.modules`` in import order for the first module holding the object
(``skops.io._utils.whichmodule``, copied from pickle), a ``getattr`` with a default per
module. In a plain script scipy sits a few hundred modules in, and the import
takes about 0.4 s; in a Prefect process, Prefect's ~1,100 modules come first and the same
import takes 0.7-1.4 s, in every training run that registers a model.

`whichmodule` below gives the same answer for every input: for an ordinary module object
without a module-level ``__getattr__``, ``getattr(module, name)`` is a look-up in the
module's ``__dict__`` (no `ModuleType` attribute has a ufunc's name), which it does
directly; any other entry of ``sys.modules`` goes through ``getattr`` as before. It is put
in place while ``skops.io._utils`` is imported, before the rest of skops.io runs, and only
over the function it was written against (SHA-256 of its source); any other skops keeps its
own, and ``tests/serving/test_skops_import.py`` fails so an upgrade is a deliberate look here.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import inspect
import sys
import threading
import warnings
from types import ModuleType
from typing import Any

# SHA-256 of `inspect.getsource(skops.io._utils.whichmodule)` in skops 0.16.0
REPLACED_SOURCE_SHA256 = "0dc5d8a6316f005374985e055627e777bc14472dc4cdafd27f1eac492684e964"
PATCHED_MODULE = "skops.io._utils"

_MISSING = object()
_MODULE_TYPE_ATTRIBUTES = frozenset(dir(ModuleType))
_lock = threading.Lock()
_original: Any = None  # skops' own, for the inputs `whichmodule` passes on


def whichmodule(obj: Any, name: str) -> str:
    """skops' `whichmodule`, the same result without a `getattr` per loaded module."""
    module_name = getattr(obj, "__module__", None)
    if module_name is not None:
        return module_name
    if "." in name or name in _MODULE_TYPE_ATTRIBUTES:
        return _skops_own()(obj, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for module_name, module in sys.modules.copy().items():
            if module_name in ("__main__", "__mp_main__") or module is None:
                continue
            if type(module) is ModuleType:
                namespace = module.__dict__
                found = namespace.get(name, _MISSING)
                if found is _MISSING:
                    if "__getattr__" not in namespace:
                        continue  # getattr would raise AttributeError: skops skips it
                    found = _getattr(module, name)
            else:
                found = _getattr(module, name)
            if found is obj:
                return module_name
    return "__main__"


def _getattr(module: Any, name: str) -> Any:
    try:
        return getattr(module, name, None)
    except (AttributeError, ImportError):
        return None


def _skops_own() -> Any:
    """skops' `whichmodule`: the one replaced, or the one in place (skops imported directly)."""
    return _original or sys.modules[PATCHED_MODULE].whichmodule


def source_digest(function: Any) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()


def _patch(module: ModuleType) -> None:
    global _original
    if source_digest(module.whichmodule) != REPLACED_SOURCE_SHA256:
        return  # not the code this was written for: keep skops' own
    _original = module.whichmodule
    module.whichmodule = whichmodule


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _patch(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename, ...: the file loader's
        return getattr(self._loader, name)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != PATCHED_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _PatchingLoader(spec.loader)
        return spec


def import_skops_io() -> ModuleType:
    """`import skops.io`, with the fast `whichmodule` in place when skops is the known one."""
    module = sys.modules.get("skops.io")
    if module is not None:
        return module
    with _lock:
        finder = _Finder()
        sys.meta_path.insert(0, finder)
        try:
            import skops.io  # noqa: PLC0415
        finally:
            sys.meta_path.remove(finder)
    return skops.io


def is_patched() -> bool:
    """True if the loaded skops uses the fast `whichmodule`."""
    module = sys.modules.get(PATCHED_MODULE)
    return module is not None and module.whichmodule is whichmodule
