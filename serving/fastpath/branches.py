"""Branches: some feature columns read into one matrix and sent through a chain of steps, one
per ``ColumnTransformer`` entry (or one for a pipeline without it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from serving.fastpath.common import (
    FLOAT,
    TEXT,
    Reader,
    Step,
    Unsupported,
    class_name,
    default_output,
)
from serving.fastpath.readers import PLAIN_NUMERIC, PLAIN_TEXT, float_reader, text_reader
from serving.fastpath.steps import compile_steps, flat_steps
from serving.transforms import to_category_array, to_float_array


@dataclass(frozen=True)
class Branch:
    """Some feature columns read into one matrix and sent through a chain of steps."""

    positions: tuple[int, ...]
    dtypes: tuple[str, ...]  # the manifest's dtype of each column read
    cast: bool  # the branch starts with one of our casts (`serving.transforms`)
    kind: str
    steps: tuple[Step, ...]
    categories: dict[int, tuple[str, ...]]  # feature position -> what its encoder knows
    readers: tuple[Reader, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        reader = float_reader if self.kind == FLOAT else text_reader
        object.__setattr__(self, "readers", tuple(reader(d, self.cast) for d in self.dtypes))

    def run(self, columns: Sequence[Any], n_rows: int) -> np.ndarray:
        X = np.empty((n_rows, len(self.positions)), dtype=np.float64 if self.kind == FLOAT
                     else object)
        for j, (position, read) in enumerate(zip(self.positions, self.readers, strict=True)):
            X[:, j] = read(columns[position])
        for step in self.steps:
            X = step(X)
        return X


def _cast_kind(step: Any) -> str | None:
    """FLOAT or TEXT for our own casts (`serving.transforms`), None for any other step."""
    if class_name(step) != "sklearn.preprocessing._function_transformer.FunctionTransformer":
        return None
    if step.validate or step.kw_args or step.func not in (to_float_array, to_category_array):
        raise Unsupported(f"FunctionTransformer({getattr(step.func, '__name__', step.func)})")
    return FLOAT if step.func is to_float_array else TEXT


def _plain_kind(dtypes: Sequence[str]) -> str:
    """What scikit-learn's check_array makes of these columns without a cast."""
    if all(d in PLAIN_NUMERIC for d in dtypes):
        return FLOAT
    if all(d in PLAIN_TEXT for d in dtypes):
        return TEXT
    raise Unsupported(f"columns of dtypes {sorted(set(dtypes))} without a cast")


def compile_branch(steps: Sequence[Any], positions: Sequence[int],
                   dtypes: Sequence[str]) -> Branch:
    """A chain of fitted steps over the features at `positions` (of manifest `dtypes`).

    Raises:
        Unsupported: see `compile_steps`, `float_reader` and `text_reader`.
    """
    cast = _cast_kind(steps[0]) if steps else None
    rest = list(steps[1:] if cast else steps)
    if any(_cast_kind(step) for step in rest):
        raise Unsupported("a cast after the first step of a branch")
    kind = cast or _plain_kind([dtypes[p] for p in positions])
    compiled, out_kind = compile_steps(rest, kind)
    if out_kind != FLOAT:
        raise Unsupported("a branch whose output is text")
    encoders = [step for step in rest if hasattr(step, "categories_")]
    categories = (
        {p: tuple(c) for p, c in zip(positions, encoders[0].categories_, strict=True)}
        if kind == TEXT else {}
    )
    return Branch(tuple(positions), tuple(dtypes[p] for p in positions), cast is not None,
                  kind, tuple(compiled), categories)


def compile_column_transformer(ct: Any, names: Sequence[str],
                               dtypes: Sequence[str]) -> list[Branch]:
    """One branch per fitted transformer that selects columns, in output order.

    Raises:
        Unsupported: weights, sparse output, passthrough columns, a single-column (1-D)
            selection, or a transformer another branch type.
    """
    default_output(ct)
    if ct.transformer_weights or ct.sparse_output_:
        raise Unsupported("ColumnTransformer with weights or sparse output")
    if list(getattr(ct, "feature_names_in_", names)) != list(names):
        raise Unsupported("ColumnTransformer fitted on other columns than the manifest's")
    branches = []
    for name, transformer, columns in ct.transformers_:
        positions = [int(p) for p in ct._transformer_to_input_indices[name]]
        if isinstance(transformer, str) and transformer == "drop" or not positions:
            continue
        if isinstance(transformer, str) or np.isscalar(columns):
            raise Unsupported(f"ColumnTransformer branch {name!r}: {transformer!r} / {columns!r}")
        branches.append(compile_branch(flat_steps(transformer), positions, dtypes))
    return branches
