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
