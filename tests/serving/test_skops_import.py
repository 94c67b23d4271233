"""skops.io imported with the fast `whichmodule`: same answers as skops' own, in place only
over the skops code it was written against."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import numpy as np
import pytest
import scipy.special

import serving.skops_import as fast
from serving.skops_import import REPLACED_SOURCE_SHA256, import_skops_io, source_digest


def _skops_whichmodule():
    import_skops_io()
    return fast._skops_own()


def test_replaced_function_is_the_installed_skops_one():
    """Fails on a skops whose `whichmodule` changed: look at serving/skops_import.py again."""
    assert source_digest(_skops_whichmodule()) == REPLACED_SOURCE_SHA256


class _NoModule:
    """Instances have no module, like scipy's ufuncs: found by scanning sys.modules."""

    __module__ = None  # type: ignore[assignment]


class _ModuleSubclass(types.ModuleType):
    """A module whose attribute is not in its __dict__ (lazy-loading packages do this)."""

    @property
    def sub_thing(self):
        return self._thing


@pytest.fixture
def odd_modules():
    """sys.modules entries of every kind `whichmodule` meets, each holding its own object."""
    lazy, lazy_obj = types.ModuleType("t_lazy"), _NoModule()
    lazy.__getattr__ = lambda name: lazy_obj if name == "lazy_thing" else (_ for _ in ()).throw(
        AttributeError(name))
    failing = types.ModuleType("t_failing")

    def fail(name):
        raise ImportError(f"t_failing has no {name}")

    failing.__getattr__ = fail
    sub, sub_obj = _ModuleSubclass("t_sub"), _NoModule()
    sub._thing = sub_obj
    namespace, ns_obj = types.SimpleNamespace(), _NoModule()
    namespace.ns_thing = ns_obj
    plain, plain_obj = types.ModuleType("t_plain"), _NoModule()
    plain.plain_thing = plain_obj
    plain.lazy_thing = lazy_obj  # later in sys.modules than t_lazy: t_lazy must win
    entries = {"t_failing": failing, "t_lazy": lazy, "t_sub": sub, "t_ns": namespace,
               "t_none": None, "t_plain": plain}
    sys.modules.update(entries)
    try:
        yield [(lazy_obj, "lazy_thing"), (sub_obj, "sub_thing"), (ns_obj, "ns_thing"),
               (plain_obj, "plain_thing"), (_NoModule(), "nowhere"), (plain_obj, "__doc__"),
               (plain_obj, "t_plain.plain_thing")]
    finally:
        for name in entries:
            sys.modules.pop(name, None)


def test_same_module_as_skops_for_every_kind_of_lookup(odd_modules):
    original = _skops_whichmodule()
    ufuncs = [(getattr(scipy.special, n), n) for n in dir(scipy.special)
              if isinstance(getattr(scipy.special, n), np.ufunc)]
    ufuncs += [(np.add, "add"), (np.log1p, "log1p")]
    cases = ufuncs + odd_modules
    answers = [(name, fast.whichmodule(obj, name), original(obj, name)) for obj, name in cases]
    assert [a for a in answers if a[1] != a[2]] == []
    found = {name: module for name, module, _ in answers}
    assert found["lazy_thing"] == "t_lazy" and found["sub_thing"] == "t_sub"
    assert found["ns_thing"] == "t_ns" and found["nowhere"] == "__main__"
    assert found["erf"].startswith("scipy.special")


_TRUSTED_NAMES = """
import json, sys
import prefect  # a Prefect process: its modules come before scipy's
{import_line}
from skops.io import _trusted_types as t
from serving.skops_import import is_patched
names = {{k: v for k, v in vars(t).items() if k.endswith("_NAMES")}}
print(json.dumps({{"patched": is_patched(), "names": names}}))
"""


def _trusted_names(import_line: str) -> dict:
    code = _TRUSTED_NAMES.format(import_line=import_line)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_skops_trusts_the_same_types_with_the_fast_lookup():
    """The lists skops builds at import (where the lookup is used) come out identical."""
    patched = _trusted_names("from serving.skops_import import import_skops_io; "
                             "import_skops_io()")
    plain = _trusted_names("import skops.io")
    assert patched["patched"] is True and plain["patched"] is False
    assert len(patched["names"]["SCIPY_UFUNC_TYPE_NAMES"]) > 100
    assert patched["names"] == plain["names"]
