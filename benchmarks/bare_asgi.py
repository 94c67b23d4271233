"""Baseline 2, the floor: a bare ASGI handler that parses JSON, builds a numpy array, predicts.

No auth, routing, validation, dtype coercion or collection. As issue 3 describes it, the rows
become one numpy array that goes to ``predict``: a float array when the model takes the columns
by position (a scaler or the estimator first). A model whose ColumnTransformer picks columns by
name cannot take an array, so there the rows get the column names (one DataFrame over the
object array): the least that model accepts. Started by the benchmark with
``uvicorn benchmarks.bare_asgi:app`` and ``BENCH_BUNDLE`` naming the bundle folder.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import orjson
import pandas as pd

from serving.bundle import load_bundle

_model: Any = None
_by_name = False


def _takes_columns_by_name(model: Any) -> bool:
    from sklearn.compose import ColumnTransformer  # noqa: PLC0415

    first = model.steps[0][1] if hasattr(model, "steps") else model
    return isinstance(first, ColumnTransformer)


def _startup() -> None:
    global _model, _by_name
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    _model = load_bundle(os.environ["BENCH_BUNDLE"]).model
    _by_name = _takes_columns_by_name(_model)
    # An array has no column names; scikit-learn says so on every call (it still checks).
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    threadpool_limits(1)


def _predict(split: dict[str, Any]) -> Any:
    if _by_name:
        rows = np.array(split["data"], dtype=object)
        return _model.predict(pd.DataFrame(rows, columns=split["columns"]))
    return _model.predict(np.array(split["data"], dtype=np.float64))


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] != "/score":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    predictions = _predict(orjson.loads(body)["input_data"])
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body",
                "body": orjson.dumps({"predictions": predictions.tolist()})})
