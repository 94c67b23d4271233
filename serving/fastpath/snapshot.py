"""A compiled fast path as plain data, read back without scikit-learn or skops.

`dump` writes a `FastPipeline` whose estimator is HistGradientBoosting (`BoostedTrees` with a
`link` this package computes itself) as one ``.npz`` file: every numeric array as a member,
and the structure (branches, steps, their scalars, text categories, the forest's sizes) as
JSON in one text member. `load` reads it with ``allow_pickle=False`` and builds only the
classes named in `_CLASSES`, so reading a snapshot runs nothing from the file; a file that
does not fit is `Unsupported`, never half read.

A snapshot holds what the fitted pipeline's transformers and trees hold, nothing more: the
scoring core checks the read-back pipeline against the plain pipeline on its probe rows before
a snapshot is kept (`serving.scoring.Scorer.snapshot`). Batch processes keep one per model in
a local cache (`mlops.batch.fast_cache`), and a registered bundle may carry one
(`serving.bundle.FAST_PATH_FILE`, written at registration by `mlops.model.bundle`). Either is
read only by code whose `code_key` is the one it was written with.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from serving.fastpath.branches import Branch
from serving.fastpath.common import Unsupported
from serving.fastpath.pipeline import FastPipeline
from serving.fastpath.steps import Column, Impute, OneHot, Ordinal, Rescale, ShiftAndScale
from serving.fastpath.trees import BoostedTrees, Forest

FORMAT = 1
_STRUCTURE = "structure"
_CLASSES: dict[str, type] = {cls.__name__: cls for cls in (
    FastPipeline, Branch, Impute, ShiftAndScale, Rescale, OneHot, Ordinal, Column)}
_SCALARS = (str, int, float, bool, type(None))


class _Writer:
    """Turns the pipeline into JSON-able values, setting its numeric arrays aside."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, value: np.ndarray) -> dict[str, Any]:
        if value.dtype == object:
            if not all(isinstance(v, _SCALARS) for v in value.ravel().tolist()):
                raise Unsupported("an object array of values other than text and numbers")
            return {"$objects": value.ravel().tolist(), "shape": list(value.shape)}
        if value.dtype.kind not in "biuf":
            raise Unsupported(f"an array of dtype {value.dtype}")
        key = f"a{len(self.arrays)}"
        self.arrays[key] = value
        return {"$array": key}

    def value(self, value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return self.array(value)
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, _SCALARS):
            return value
        if isinstance(value, tuple):
            return {"$tuple": [self.value(v) for v in value]}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {"$dict": [[self.value(k), self.value(v)] for k, v in value.items()]}
        if isinstance(value, BoostedTrees):
            return self.trees(value)
        name = type(value).__name__
        if dataclasses.is_dataclass(value) and _CLASSES.get(name) is type(value):
            return {"$": name, **{f.name: self.value(getattr(value, f.name))
                                  for f in dataclasses.fields(value) if f.init}}
        raise Unsupported(f"a {name} cannot be stored in a snapshot")

    def trees(self, trees: BoostedTrees) -> dict[str, Any]:
        forest = trees.forest
        if trees.link is None:
            raise Unsupported("a HistGradientBoosting loss whose output this package does not "
                              "compute")
        return {"$": "BoostedTrees", "link": trees.link,
                "classes": None if trees.classes is None else self.array(trees.classes),
                "per_iteration": forest.per_iteration, "n_features": forest.n_features,
                "forest": {name: self.array(getattr(forest, name)) for name in Forest.ARRAYS}}


@cache
def code_key() -> str:
    """The snapshot format, the fast path's code and scikit-learn's version, as one digest: a
    snapshot is read only by code with the key it was written with."""
    digest = hashlib.sha256(f"format {FORMAT}\n".encode())
    digest.update(f"scikit-learn {metadata.version('scikit-learn')}\n".encode())
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + b"\n" + source.read_bytes())
    return digest.hexdigest()[:16]


def dump(pipeline: FastPipeline, classes: list[Any] | None) -> bytes:
    """The pipeline and the scorer's class list as one ``.npz`` file's bytes.

    Raises:
        Unsupported: the estimator is not HistGradientBoosting with a loss `BoostedTrees`
            computes when restored, or a value of a kind this module does not store.
    """
    if not isinstance(pipeline.estimator, BoostedTrees):
        raise Unsupported(f"a {type(pipeline.estimator).__name__} cannot be stored in a "
                          "snapshot, only HistGradientBoosting")
    writer = _Writer()
    structure = {"format": FORMAT, "pipeline": writer.value(pipeline),
                 "classes": writer.value(classes)}
    out = io.BytesIO()
    np.savez(out, **writer.arrays, **{_STRUCTURE: np.array(json.dumps(structure))})
    return out.getvalue()


class _Reader:
    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays

    def value(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "$array" in value:
            return self.arrays[value["$array"]]
        if "$objects" in value:
            objects = np.empty(len(value["$objects"]), dtype=object)
            objects[:] = value["$objects"]
            return objects.reshape(value["shape"])
        if "$tuple" in value:
            return tuple(self.value(v) for v in value["$tuple"])
        if "$dict" in value:
            return {self.value(k): self.value(v) for k, v in value["$dict"]}
        name = value.get("$")
        if name == "BoostedTrees":
            forest = Forest.restored(value["per_iteration"], value["n_features"],
                                     {k: self.value(v) for k, v in value["forest"].items()})
            return BoostedTrees.restored(forest, value["link"], self.value(value["classes"]))
        if name not in _CLASSES:
            raise Unsupported(f"a snapshot names the unknown type {name!r}")
        return _CLASSES[name](**{k: self.value(v) for k, v in value.items() if k != "$"})


def load(data: bytes) -> tuple[FastPipeline, list[Any] | None]:
    """The pipeline and class list `dump` wrote.

    Raises:
        Unsupported: the bytes are not a snapshot of this `FORMAT`, hold a compressed member
            (`dump` stores them as they are, so reading takes no more memory than the file), or
            do not fit together.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if any(m.compress_type != zipfile.ZIP_STORED for m in archive.infolist()):
                raise Unsupported("a snapshot with a compressed member")
        with np.load(io.BytesIO(data), allow_pickle=False) as members:
            arrays = {name: members[name] for name in members.files}
        structure = json.loads(str(arrays.pop(_STRUCTURE)))
        if structure.get("format") != FORMAT:
            raise Unsupported(f"a snapshot of format {structure.get('format')!r}; this code "
                              f"reads {FORMAT}")
        reader = _Reader(arrays)
        pipeline = reader.value(structure["pipeline"])
        classes = reader.value(structure["classes"])
    except Unsupported:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            zipfile.BadZipFile) as exc:
        raise Unsupported(f"the snapshot cannot be read: {exc!r}") from exc
    if not isinstance(pipeline, FastPipeline) or not isinstance(pipeline.estimator,
                                                                BoostedTrees):
        raise Unsupported("the snapshot does not hold a HistGradientBoosting pipeline")
    return pipeline, classes
