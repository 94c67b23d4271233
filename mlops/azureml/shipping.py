"""What the Azure ML backends upload: staged code folders and the environment's pinned files.

No Azure imports here: the lock check, the tests that run the entry script under Azure ML's
inference server and ``make lock`` use this module too.

- The scoring code folder holds ``score.py`` and the ``serving`` package side by side (the
  layout ``deployments/azureml/README.md`` describes), nothing else.
- The training code folder holds ``train.py``, ``mlops`` and ``serving``.
- ``conda.yml`` pins every package of ``requirements-azmlinfsrv.lock``: the environment Azure ML
  builds is the one the tests run ``score.py`` in, with the model libraries at exactly the
  versions of ``requirements.lock``. ``python -m mlops.azureml.shipping conda`` rewrites it
  (``make lock`` does).
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = PROJECT_ROOT / "deployments" / "azureml"
ENDPOINT_YML = DEPLOY_DIR / "endpoint.yml"
DEPLOYMENT_YML = DEPLOY_DIR / "deployment.yml"
ENVIRONMENT_YML = DEPLOY_DIR / "environment.yml"
CONDA_YML = DEPLOY_DIR / "conda.yml"
SCORE_PY = DEPLOY_DIR / "score.py"
TRAIN_PY = DEPLOY_DIR / "train.py"
SERVING_LOCK = PROJECT_ROOT / "requirements-azmlinfsrv.lock"
# What train.py writes into the job's output folder.
TRAINED_MODEL_FILE = "model.skops"
TRAINED_INFO_FILE = "training.json"
PYTHON_VERSION = "3.11"

_PIN = re.compile(r"^([A-Za-z0-9_.\-]+==[^\s\\;]+)", re.MULTILINE)


def _copy_package(name: str, dest: Path) -> None:
    shutil.copytree(
        PROJECT_ROOT / name, dest / name,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )


def stage_scoring_code(dest: Path) -> Path:
    """Write the deployment's code folder (``score.py`` + ``serving/``) into `dest`."""
    dest.mkdir(parents=True, exist_ok=False)
    shutil.copy2(SCORE_PY, dest / SCORE_PY.name)
    _copy_package("serving", dest)
    return dest


def stage_training_code(dest: Path) -> Path:
    """Write the training job's code folder (``train.py``, ``mlops/``, ``serving/``)."""
    dest.mkdir(parents=True, exist_ok=False)
    shutil.copy2(TRAIN_PY, dest / TRAIN_PY.name)
    _copy_package("mlops", dest)
    _copy_package("serving", dest)
    return dest


def lock_pins(lock: Path = SERVING_LOCK) -> list[str]:
    """``name==version`` of every package in a hash-pinned lock file, in its order."""
    return _PIN.findall(lock.read_text())


def conda_text(lock: Path = SERVING_LOCK) -> str:
    """The conda file of the Azure ML environment: Python and every pin of `lock`."""
    pins = "\n".join(f"      - {pin}" for pin in lock_pins(lock))
    return (
        f"# Generated from {lock.name} by `python -m mlops.azureml.shipping conda` (make lock).\n"
        "# Every package at the version the azmlinfsrv tests run; do not edit by hand.\n"
        "name: mlops-sklearn\n"
        "channels:\n"
        "  - conda-forge\n"
        "dependencies:\n"
        f"  - python={PYTHON_VERSION}\n"
        "  - pip\n"
        "  - pip:\n"
        f"{pins}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the Azure ML environment's conda file.")
    parser.add_argument("what", choices=["conda"])
    parser.parse_args()
    CONDA_YML.write_text(conda_text())


if __name__ == "__main__":
    main()
