"""Crafted model files: every one refused by name before skops constructs anything.

Each hostile file is a real skops file of a fitted pipeline with one node replaced (its
`schema.json` edited). The payloads that can run code would write a marker file and set an
environment variable; after each refusal neither exists. `test_the_payloads_are_live` shows
the same files run their code when skops is handed the names it reports, which is what the
old prefix check did for names starting with numpy., scipy. or sklearn..
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from serving.bundle import Feature, load_model
from serving.model_file import (
    SCHEMA_MEMBER,
    BundleLoadError,
    ZipLimits,
    audit_model_file,
    load_model_file,
)

ENV_MARK = "MLOPS_TEST_PAYLOAD_RAN"
FEATURES = (Feature("a", "float64"), Feature("b", "float64"))


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(60, 2)), columns=["a", "b"])
    return sio.dumps(make_pipeline(StandardScaler(), LogisticRegression()).fit(X, X.a > 0))


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    os.environ.pop(ENV_MARK, None)
    yield tmp_path / "payload-ran"
    # a payload a test ran on purpose leaves no mark for a later test (test_bundle_control
    # reads the same variable); monkeypatch.delenv would not undo a variable set meanwhile
    os.environ.pop(ENV_MARK, None)


def _code(marker: Path) -> str:
    return f"import os; open({str(marker)!r}, 'w').write('ran'); os.environ[{ENV_MARK!r}] = '1'"


def _ran(marker: Path) -> bool:
    return marker.exists() or ENV_MARK in os.environ


# --- building nodes -------------------------------------------------------------------------


def _json(value: Any) -> dict[str, Any]:
    return {"__class__": type(value).__name__, "__module__": "builtins",
            "__loader__": "JsonNode", "content": json.dumps(value), "is_json": True}


def _seq(loader: str, cls: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"__class__": cls, "__module__": "builtins", "__loader__": loader, "content": items}


def _tuple(*items: dict[str, Any]) -> dict[str, Any]:
    return _seq("TupleNode", "tuple", list(items))


def _dict(content: dict[str, dict[str, Any]]) -> dict[str, Any]:
    key_type = {"__class__": "str", "__module__": "builtins", "__loader__": "TypeNode"}
    return {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode",
            "content": content, "key_types": _seq("ListNode", "list", [key_type] * len(content))}


def _call(dotted: str, *args: dict[str, Any]) -> dict[str, Any]:
    """A node skops turns into `dotted(*args)` (ConstructorFromReduceNode)."""
    module, name = dotted.rsplit(".", 1)
    return {"__class__": name, "__module__": module, "__loader__": "ConstructorFromReduceNode",
            "content": _tuple(*args)}


def _named(loader: str, dotted: str, **extra: Any) -> dict[str, Any]:
    module, name = dotted.rsplit(".", 1)
    return {"__class__": name, "__module__": module, "__loader__": loader, **extra}


def _edit(data: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    """The same skops file with its schema changed by `change` (every other member kept)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(source.read(SCHEMA_MEMBER))
    change(schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            if info.filename != SCHEMA_MEMBER:
                target.writestr(info, source.read(info))
        target.writestr(SCHEMA_MEMBER, json.dumps(schema))
    return out.getvalue()


def _set_memory(node: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """Put `node` where the Pipeline keeps its `memory` attribute."""
    def change(schema: dict[str, Any]) -> None:
        schema["content"]["content"]["memory"] = node
    return change


def _scaler(schema: dict[str, Any]) -> dict[str, Any]:
    steps = schema["content"]["content"]["steps"]["content"]
    return steps[0]["content"][1]


# --- the corpus -----------------------------------------------------------------------------


def corpus(marker: Path) -> dict[str, tuple[Callable[[dict[str, Any]], None], str]]:
    """name -> (edit, a type the refusal must name)."""
    code = _json(_code(marker))
    runstring = _call("numpy.testing._private.utils.runstring", code, _dict({}))
    sklearn_script = _call("sklearn.utils._testing.assert_run_python_script_without_output", code)
    exec_ = _call("builtins.exec", code)
    system = _call("os.system", _json(f"touch {marker}"))
    popen = _call("subprocess.Popen", _seq("ListNode", "list", [_json("touch"),
                                                                _json(str(marker))]))
    scipy_build = _call("scipy._lib._testutils._test_cython_extension", _json("/"), _json("/"))

    def loss_reduce(schema: dict[str, Any]) -> None:  # a LossNode's constructor is its name
        schema["content"]["content"]["memory"] = {
            **_named("LossNode", "os.system"), "__reduce__": {"args": _tuple(_json("true"))},
            "content": _dict({})}

    def tree_reduce(schema: dict[str, Any]) -> None:
        schema["content"]["content"]["memory"] = {
            **_named("TreeNode", "numpy.testing._private.utils.runstring"),
            "__reduce__": {"args": _tuple(code, _dict({}))}, "content": _dict({})}

    def method(schema: dict[str, Any]) -> None:
        scaler = _scaler(schema)
        schema["content"]["content"]["memory"] = {
            **_named("MethodNode", f"{scaler['__module__']}.{scaler['__class__']}"),
            "content": {"func": "fit", "obj": scaler}}

    def object_array(schema: dict[str, Any]) -> None:
        schema["content"]["content"]["memory"] = {
            **_named("NdArrayNode", "numpy.ndarray"), "type": "json",
            "content": [_json("x"), exec_], "shape": _tuple(_json(2))}

    def nested(schema: dict[str, Any]) -> None:
        schema["content"]["content"]["memory"] = _dict({"a": _seq("ListNode", "list", [
            _tuple(_json(1), _seq("SetNode", "set", [runstring]))])})

    def generator(schema: dict[str, Any]) -> None:
        schema["content"]["content"]["memory"] = {
            **_named("RandomGeneratorNode", "numpy.random._generator.Generator"),
            "content": {"bit_generator": _dict({"bit_generator": _json("seed")}),
                        "seed_seq": _dict({})}}

    def unknown_loader(schema: dict[str, Any]) -> None:
        schema["content"]["content"]["memory"] = _named("QuantileForestNode", "builtins.dict")

    return {
        "numpy runstring (constructor)": (_set_memory(runstring),
                                          "numpy.testing._private.utils.runstring"),
        "sklearn script runner (constructor)": (
            _set_memory(sklearn_script),
            "sklearn.utils._testing.assert_run_python_script_without_output"),
        "scipy build helper (constructor)": (
            _set_memory(scipy_build), "scipy._lib._testutils._test_cython_extension"),
        "builtins.exec (constructor)": (_set_memory(exec_), "builtins.exec"),
        "os.system (constructor)": (_set_memory(system), "os.system"),
        "subprocess.Popen (constructor)": (_set_memory(popen), "subprocess.Popen"),
        "os.system (loss reduce node)": (loss_reduce, "os.system"),
        "runstring (tree reduce node)": (tree_reduce, "numpy.testing._private.utils.runstring"),
        "os.system as a function": (_set_memory(_named("FunctionNode", "os.system")),
                                    "os.system"),
        "posix.system as a function": (_set_memory(_named("FunctionNode", "posix.system")),
                                       "posix.system"),
        "subprocess.Popen as a type": (_set_memory(_named("TypeNode", "subprocess.Popen")),
                                       "subprocess.Popen"),
        "a dict built by os.getcwd": (
            _set_memory({**_dict({}), "__class__": "getcwd", "__module__": "os"}), "os.getcwd"),
        "operator.methodcaller": (_set_memory({
            **_named("OperatorFuncNode", "operator.methodcaller"),
            "attrs": _tuple(_json("system"))}), "operator.methodcaller"),
        "a bound method of an allowed class": (method, "StandardScaler.fit"),
        "exec inside an object array": (object_array, "builtins.exec"),
        "runstring inside nested containers": (nested, "numpy.testing._private.utils.runstring"),
        "a generator whose bit generator is numpy.random.seed": (generator,
                                                                 "numpy.random.seed"),
        "an unknown loader": (unknown_loader, "QuantileForestNode"),
        "a prefix-trusted estimator the project never writes": (
            _set_memory(_named("ObjectNode", "sklearn.dummy.DummyClassifier")),
            "sklearn.dummy.DummyClassifier"),
    }


CASES = sorted(corpus(Path("/unused")))


@pytest.mark.parametrize("case", CASES)
def test_crafted_model_files_are_refused_by_name_and_run_nothing(case, model_bytes, marker):
    change, named = corpus(marker)[case]
    hostile = _edit(model_bytes, change)
    with pytest.raises(BundleLoadError, match="refused") as refused:
        audit_model_file(hostile)
    assert named in str(refused.value)
    with pytest.raises(BundleLoadError, match="refused"):
        load_model(hostile, FEATURES, "classification", "crafted")
    assert not _ran(marker)


@pytest.mark.parametrize("case", ["numpy runstring (constructor)", "builtins.exec (constructor)",
                                  "sklearn script runner (constructor)",
                                  "exec inside an object array"])
def test_the_payloads_are_live(case, model_bytes, marker):
    """Handed to skops with the names it reports as trusted, the payload does run."""
    change, _ = corpus(marker)[case]
    hostile = _edit(model_bytes, change)
    sio.loads(hostile, trusted=sio.get_untrusted_types(data=hostile))
    assert _ran(marker)


def test_the_untouched_file_loads_and_answers(model_bytes):
    assert audit_model_file(model_bytes) >= {"sklearn.pipeline.Pipeline", "numpy.ndarray"}
    model = load_model(model_bytes, FEATURES, "classification", "plain")
    assert model.predict(pd.DataFrame({"a": [0.0, 1.0], "b": [1.0, 0.0]})).shape == (2,)


# --- malformed files and bounds -------------------------------------------------------------


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


@pytest.mark.parametrize(("data", "words"), [
    (b"not a zip at all", "not a skops (zip) file"),
    (_zip({"other.npy": b""}), "no schema.json"),
    (_zip({SCHEMA_MEMBER: b"{nope"}), "schema.json is unreadable"),
    (_zip({SCHEMA_MEMBER: b"[1, 2]"}), "schema.json is not an object"),
    (_zip({SCHEMA_MEMBER: json.dumps({**_json(1), "protocol": 1}).encode()}),
     "skops protocol 1; this code reads 2"),
    (_zip({SCHEMA_MEMBER: json.dumps({**_json(1), "protocol": True}).encode()}),
     "skops protocol True"),
    (_zip({SCHEMA_MEMBER: ("[" * 500 + "]" * 500).encode()}), "schema.json"),
    (_zip({SCHEMA_MEMBER: json.dumps({**_named("NdArrayNode", "numpy.ndarray"), "type": "numpy",
                                      "file": "gone.npy", "protocol": 2}).encode()}),
     "member 'gone.npy', not in the file"),
])
def test_malformed_model_files_are_refused_clearly(data, words):
    with pytest.raises(BundleLoadError, match="model file|schema|protocol") as refused:
        load_model_file(data, "crafted")
    assert words in str(refused.value)


def test_a_nesting_deeper_than_the_bound_is_refused(model_bytes):
    deep: dict[str, Any] = _json(0)
    for _ in range(300):
        deep = _seq("ListNode", "list", [deep])
    with pytest.raises(BundleLoadError, match="nests deeper than 400"):
        audit_model_file(_edit(model_bytes, _set_memory(deep)))


def test_oversized_members_are_refused_before_decompression(model_bytes):
    """The schema is declared at 2 MB but its compressed bytes are garbage: decompressing it
    would fail differently, so the size answer comes from the zip's directory alone."""
    data = bytearray(_zip({SCHEMA_MEMBER: b" " * 2_000_000}, zipfile.ZIP_DEFLATED))
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo(SCHEMA_MEMBER)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start:start + info.compress_size] = b"\xff" * info.compress_size
    with pytest.raises(BundleLoadError, match=r"2000000 bytes uncompressed \(limit 1000000\)"):
        audit_model_file(bytes(data), limits=ZipLimits(max_member_bytes=1_000_000))
    with pytest.raises(BundleLoadError, match=r"schema.json is 2000000 bytes \(limit 1000\)"):
        audit_model_file(bytes(data), limits=ZipLimits(max_schema_bytes=1000))
    members = len(zipfile.ZipFile(io.BytesIO(model_bytes)).infolist())
    with pytest.raises(BundleLoadError, match=f"has {members} members \\(limit 2\\)"):
        audit_model_file(model_bytes, limits=ZipLimits(max_members=2))
    total = sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(model_bytes)).infolist())
    with pytest.raises(BundleLoadError, match=f"is {total} bytes uncompressed \\(limit 100\\)"):
        audit_model_file(model_bytes, limits=ZipLimits(max_total_bytes=100))
    assert audit_model_file(model_bytes, limits=ZipLimits(max_members=members,
                                                          max_total_bytes=total))


def _fresh_python(code: str, stdin: bytes = b"") -> str:
    """What `code` prints in a new interpreter (one that has not imported skops yet)."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", code], input=stdin, capture_output=True,
                          check=True, cwd=Path(__file__).resolve().parents[2]).stdout.decode()


def test_skops_is_imported_without_listing_every_scikit_learn_estimator():
    """skops lists every estimator at import (its default trust, which we never use);
    `skops_io` keeps that listing empty, and puts scikit-learn's function back."""
    code = (
        "import sys, sklearn.utils\n"
        "calls = []\n"
        "def listing(*args, **kwargs):\n"
        "    calls.append(args)\n"
        "    return []\n"
        "sklearn.utils.all_estimators = listing\n"
        "from serving.model_file import skops_io\n"
        "assert skops_io() is sys.modules['skops.io']\n"
        "assert sklearn.utils.all_estimators is listing\n"
        "print(len(calls))\n"
    )
    assert _fresh_python(code).strip() == "0"


def test_skops_is_imported_once_when_several_threads_load_at_once(model_bytes):
    """An endpoint loads several bundles on threads: each thread gets the whole of skops.io (not
    a half-imported module), and scikit-learn's listing is back once they are done."""
    code = (
        "import sys, threading, sklearn.utils\n"
        "original = sklearn.utils.all_estimators\n"
        "from serving.model_file import load_model_file\n"
        "data = sys.stdin.buffer.read()\n"
        "errors, barrier = [], threading.Barrier(6)\n"
        "def load():\n"
        "    barrier.wait()\n"
        "    try:\n"
        "        load_model_file(data)\n"
        "    except Exception as exc:\n"
        "        errors.append(repr(exc))\n"
        "threads = [threading.Thread(target=load) for _ in range(6)]\n"
        "for t in threads: t.start()\n"
        "for t in threads: t.join()\n"
        "assert sklearn.utils.all_estimators is original, sklearn.utils.all_estimators\n"
        "print(errors)\n"
    )
    assert _fresh_python(code, model_bytes).strip() == "[]"
