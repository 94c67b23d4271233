"""Azure ML entry script: the same scoring core as the local endpoint, behind ``init``/``run``.

Azure ML's inference server (``azmlinfsrv``, also what managed online endpoints run) calls
``init()`` once per worker and ``run(raw_data)`` per request with the request body as a string.
The model is a bundle (``manifest.json`` + ``model.skops``) registered as a folder, found under
``AZUREML_MODEL_DIR``. Request shapes, column matching, dtype coercion and error statuses come
from ``serving.scoring``, so Azure answers exactly as the local endpoint does; the deployment's
``MLOPS_ENDPOINT_*`` environment variables are read as the local endpoint reads them
(``serving.config``), so ``MLOPS_ENDPOINT_FAST_PATH=false`` sends every request through the
plain pipeline here too. With ``MLOPS_ENDPOINT_AZUREML_COLLECT=true`` (deployment.yml) each
request's converted inputs and predictions are queued for Azure ML's data collector
(``serving.mdc``: a background thread builds the DataFrames). The code folder
shipped with the deployment must hold ``serving/`` next to this script or above it (see
README.md beside this file).
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# The collected rows' deployment column; Azure ML's own path already names the deployment.
DEPLOYMENT = "azureml"

_scorer: Any = None
_parse_json: Any = None
_serving_error: Any = None
_collector: Any = None
_record: Any = None


def _put_code_root_on_path() -> None:
    """Make ``import serving`` work wherever the server loaded this file from.

    The inference server imports this script by file path, which does not put its folder on
    ``sys.path``; the nearest folder (this one or a parent) that holds ``serving/`` is added.
    """
    here = Path(__file__).resolve().parent
    for folder in (here, *here.parents[:2]):
        if (folder / "serving" / "__init__.py").exists():
            if str(folder) not in sys.path:
                sys.path.insert(0, str(folder))
            return


def init() -> None:
    """Load the bundle once per worker (digest and type allow-list are checked)."""
    global _scorer, _parse_json, _serving_error, _collector, _record
    _put_code_root_on_path()
    # importable only once the path is set
    from serving.bundle import load_bundle  # noqa: PLC0415
    from serving.collect import Record  # noqa: PLC0415
    from serving.config import EndpointConfig  # noqa: PLC0415
    from serving.entry import find_bundle  # noqa: PLC0415
    from serving.errors import ServingError  # noqa: PLC0415
    from serving.request_shapes import parse_json  # noqa: PLC0415
    from serving.scoring import Scorer  # noqa: PLC0415

    bundle_dir = find_bundle(os.environ["AZUREML_MODEL_DIR"])
    _parse_json, _serving_error = parse_json, ServingError
    config = EndpointConfig()
    _scorer, _record = Scorer(load_bundle(str(bundle_dir)), fast=config.fast_path), Record
    if config.azureml_collect:
        from serving.mdc import start_collection  # noqa: PLC0415

        _collector = start_collection(
            flush_rows=config.collect_flush_rows, flush_s=config.collect_flush_s,
            max_rows=config.collect_queue_rows,
        )
    logger.info(
        "Loaded %s version %s from %s; scoring through the %s", _scorer.bundle.model_name,
        _scorer.bundle.version, bundle_dir, _scorer.path,
    )


def _error(status: int, message: str) -> Any:
    from azureml_inference_server_http.api.aml_response import AMLResponse  # noqa: PLC0415

    return AMLResponse({"error": message, "status": status}, status, json_str=True)


def run(raw_data: str) -> Any:
    """Score one request body; bad input is a 4xx with the same message as locally."""
    try:
        payload = _parse_json(raw_data)
        scored = _scorer.score(payload)
    except _serving_error as exc:
        return _error(exc.status, exc.message)
    if _collector is not None:
        _collector.add(_record(
            scored.columns, scored.predictions, DEPLOYMENT, _scorer.bundle.model_name,
            _scorer.bundle.version, "", datetime.now(UTC),
        ))
    body = scored.body()
    body["model_name"] = _scorer.bundle.model_name
    body["model_version"] = _scorer.bundle.version
    return body
