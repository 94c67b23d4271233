"""Baseline 2, the floor: a bare ASGI handler that parses JSON, builds a numpy array, predicts.

No auth, routing, validation, dtype coercion or collection. The model's ColumnTransformer picks
columns by name, so the numpy rows get the column names (one DataFrame over the object
array) before predict: the least the same model accepts. Started by the benchmark with
``uvicorn benchmarks.bare_asgi:app`` and ``BENCH_BUNDLE`` naming the bundle folder.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import orjson
import pandas as pd

from serving.bundle import load_bundle

_model: Any = None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _model
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                from threadpoolctl import threadpool_limits

                _model = load_bundle(os.environ["BENCH_BUNDLE"]).model
                threadpool_limits(1)
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
    split = orjson.loads(body)["input_data"]
    rows = np.array(split["data"], dtype=object)
    predictions = _model.predict(pd.DataFrame(rows, columns=split["columns"]))
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body",
                "body": orjson.dumps({"predictions": predictions.tolist()})})
