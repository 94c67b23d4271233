"""Send a few rows of the spec's data to the endpoint and show what it answers.

``python -m mlops.predict --spec configs/churn.yaml --rows 3``
"""

from __future__ import annotations

import argparse
import json
import sys

from mlops.core.settings import get_settings
from mlops.core.spec import load_spec
from mlops.data.loading import conform_columns, read_table
from mlops.data.storage import list_data_files
from mlops.endpoint.backend import endpoint_for
from mlops.endpoint.payloads import frame_to_request
from mlops.registry.backend import registry_for


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="configs/churn.yaml")
    parser.add_argument("--rows", type=int, default=3)
    args = parser.parse_args(argv)
    spec, settings = load_spec(args.spec), get_settings()
    if registry_for(spec, settings).alias(spec.name) is None:
        raise SystemExit(
            f"No model of '{spec.name}' has been promoted yet: the registry has no champion, "
            f"so the endpoint has nothing to serve. Train one with `python -m flows.training "
            f"--spec {args.spec}` (or `make run`), then run this again."
        )
    files = list_data_files(spec.data.url, spec.data.format)[:1]
    frame = conform_columns(read_table(files, spec.data.format), spec).head(args.rows)
    features = frame[[c.name for c in spec.feature_columns]]
    answer = endpoint_for(spec, settings).score(frame_to_request(features))
    sys.stdout.write(f"Rows sent to {settings.endpoint_url}/score:\n")
    sys.stdout.write(features.to_string(max_cols=8) + "\n")
    sys.stdout.write("Endpoint answered:\n" + json.dumps(answer, indent=2) + "\n")


if __name__ == "__main__":
    main()
