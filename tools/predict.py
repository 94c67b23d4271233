"""Send a few rows of the spec's data to the endpoint and show what it answers (``mlops predict``).
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from mlops.core.settings import DEFAULT_SPEC, get_settings
from mlops.core.spec import PipelineSpec, load_spec
from mlops.data.loading import conform_columns, read_table
from mlops.data.storage import list_data_files
from mlops.endpoint.backend import endpoint_session, local_endpoint_url
from mlops.endpoint.payloads import frame_to_request
from mlops.registry.backend import registry_for

if TYPE_CHECKING:
    import pandas as pd


def first_rows(spec: PipelineSpec, rows: int) -> pd.DataFrame:
    """The feature columns of the first `rows` rows of the spec's data (its first file)."""
    files = list_data_files(spec.data.url, spec.data.format)[:1]
    frame = conform_columns(read_table(files, spec.data.format), spec).head(rows)
    return frame[[c.name for c in spec.feature_columns]]


def predict(spec_path: str = DEFAULT_SPEC, rows: int = 3) -> None:
    """Score the first rows of the spec's data on the endpoint and show rows and answer.

    Args:
        spec_path: The model's pipeline spec (YAML).
        rows: How many rows to send.

    Raises:
        SystemExit: the model has no champion yet, so the endpoint has nothing to serve.
    """
    spec, settings = load_spec(spec_path), get_settings()
    if registry_for(spec, settings).alias(spec.name) is None:
        raise SystemExit(
            f"No model of '{spec.name}' has been promoted yet: the registry has no champion, "
            f"so the endpoint has nothing to serve. Train one with `mlops train "
            f"--spec {spec_path}` (or `make run`), then run this again."
        )
    features = first_rows(spec, rows)
    with endpoint_session(spec, settings) as client:
        answer = client.score(frame_to_request(features))
    # the command's output is its answer, for a person to read: stdout, not the log
    where = (f"{local_endpoint_url(spec, settings)}/score" if spec.endpoint.backend == "local"
             else f"Azure ML endpoint {spec.endpoint_name}")
    sys.stdout.write(f"Rows sent to {where}:\n")
    sys.stdout.write(features.to_string(max_cols=8) + "\n")
    sys.stdout.write("Endpoint answered:\n" + json.dumps(answer, indent=2) + "\n")
