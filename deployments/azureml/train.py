"""Azure ML command job: the training stage on a compute cluster.

The training flow's train step, run remotely: it reads the spec (JSON) and the training rows
(the Arrow checkpoint the features stage wrote), fits the same scikit-learn pipeline
``mlops.model.features.fit_pipeline`` fits locally, and writes to the job's output folder:

- ``model.skops``: the fitted pipeline (skops; types outside the allow-list are refused);
- ``training.json``: the model file's sha256, feature names and dtypes (the read-back probes the
  model with them), rows and fit seconds, library versions.

The flow downloads that folder, checks the digest and the types, and goes on as if it had fitted
the model itself. The code folder holds this script next to ``mlops/`` and ``serving/``
(``mlops.azureml.shipping.stage_training_code``); the job runs ``python train.py`` in it.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

logger = logging.getLogger("train")


def train(spec_path: Path, train_path: Path, out_dir: Path) -> dict:
    """Fit the spec's pipeline on the rows in `train_path` and write it into `out_dir`."""
    import sklearn  # noqa: PLC0415

    from mlops.azureml.shipping import TRAINED_INFO_FILE, TRAINED_MODEL_FILE  # noqa: PLC0415
    from mlops.core.spec import PipelineSpec  # noqa: PLC0415
    from mlops.data.frames import FrameRef, load_frame  # noqa: PLC0415
    from mlops.model.bundle import dump_model, feature_dtypes  # noqa: PLC0415 - code folder on path
    from mlops.model.features import fit_pipeline  # noqa: PLC0415
    from serving.bundle import sha256_bytes  # noqa: PLC0415

    spec = PipelineSpec.model_validate_json(spec_path.read_text())
    columns = [*(c.name for c in spec.feature_columns), spec.target]
    frame = load_frame(FrameRef(str(train_path), rows=0, columns=len(columns)), columns)
    started = time.perf_counter()
    pipeline = fit_pipeline(spec, frame)
    seconds = time.perf_counter() - started
    data = dump_model(pipeline)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / TRAINED_MODEL_FILE).write_bytes(data)
    info = {
        "model_sha256": sha256_bytes(data),
        "features": feature_dtypes(frame, [c.name for c in spec.feature_columns]),
        "train_rows": len(frame),
        "fit_seconds": seconds,
        "sklearn_version": sklearn.__version__,
        "python_version": platform.python_version(),
    }
    (out_dir / TRAINED_INFO_FILE).write_text(json.dumps(info, indent=2))
    logger.info("Fitted %s on %d rows in %.1f s", spec.model.estimator, len(frame), seconds)
    return info


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, required=True, help="the pipeline spec as JSON")
    parser.add_argument("--train", type=Path, required=True, help="training rows (Arrow file)")
    parser.add_argument("--out", type=Path, required=True, help="the job's output folder")
    args = parser.parse_args(argv)
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    train(args.spec, args.train, args.out)


if __name__ == "__main__":
    main()
