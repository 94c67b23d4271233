"""What every part of the fast path shares: the kinds of data, the step and reader types,
and the two ways of saying no (`Unsupported` at load, `Declined` per request)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

FLOAT, TEXT = "float", "text"

Reader = Callable[[Any], np.ndarray]
Step = Callable[[np.ndarray], np.ndarray]
Output = tuple[np.ndarray, "np.ndarray | None"]


class Unsupported(Exception):
    """The fitted pipeline holds something this module does not reproduce exactly."""


class Declined(Exception):
    """This request must go through the plain pipeline (which may raise its own error)."""


def class_name(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def default_output(step: Any) -> None:
    config = getattr(step, "_sklearn_output_config", {}).get("transform", "default")
    if config != "default":
        raise Unsupported(f"{type(step).__name__} is set to {config} output")


class FlatTrees:
    """Fitted tree predictors' nodes in one array: each tree's node indexes shifted by its
    start, and a leaf its own left and right child (so walking past a leaf stays on it)."""

    def __init__(self, predictors: list[Any]) -> None:
        self.nodes = np.concatenate([p.nodes for p in predictors])
        sizes = [len(p.nodes) for p in predictors]
        self.starts = np.cumsum([0, *sizes[:-1]])
        shift = np.repeat(self.starts, sizes)
        self.leaf = self.nodes["is_leaf"].astype(bool)
        own = np.arange(len(self.nodes))
        self.left = np.where(self.leaf, own, self.nodes["left"] + shift)
        self.right = np.where(self.leaf, own, self.nodes["right"] + shift)
