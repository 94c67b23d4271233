"""Turning DataFrame rows into scoring requests in Azure ML's shapes."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd


def frame_to_request(frame: pd.DataFrame) -> dict[str, Any]:
    """The `columns/index/data` split form; missing values become null, times ISO strings."""
    split = json.loads(frame.to_json(orient="split", date_format="iso", index=False))
    split["index"] = list(range(len(frame)))
    return {"input_data": split}
