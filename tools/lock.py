"""``make lock``: compile the hash-pinned lock files from their ``.in`` files.

``requirements-mlflow.lock`` is the MLflow UI's own environment. ``requirements-azmlinfsrv.lock``
is what Azure ML builds (its pins become
``deployments/azureml/conda.yml``), so it is resolved for Azure ML's machines, linux x86_64 with
Python 3.11, whatever machine runs ``make lock``: a lock made on a Mac must not pin macOS-only
wheels or drop packages whose markers select Linux. ``requirements.lock`` is the local
environment's and resolves for the machine at hand.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from mlops.azureml.shipping import PROJECT_ROOT, PYTHON_VERSION

AZURE_ML_PLATFORM = "x86_64-unknown-linux-gnu"
# lock name -> the platform it is resolved for (None: the machine running `make lock`)
LOCKS = {"requirements": None, "requirements-azmlinfsrv": AZURE_ML_PLATFORM,
         "requirements-mlflow": None}


def compile_command(name: str, uv: str = "uv") -> list[str]:
    """The ``uv pip compile`` argv that writes ``<name>.lock``."""
    argv = [uv, "pip", "compile", f"{name}.in", "--generate-hashes",
            "--python-version", PYTHON_VERSION, "--custom-compile-command", "make lock",
            "-o", f"{name}.lock"]
    if LOCKS[name]:
        argv += ["--python-platform", LOCKS[name]]
    if (PROJECT_ROOT / f"{name}.override").exists():  # requirements the index cannot serve
        argv += ["--override", f"{name}.override"]
    return argv


def main() -> None:
    uv = str(Path(sys.executable).with_name("uv"))
    for name in LOCKS:
        subprocess.run(compile_command(name, uv), cwd=PROJECT_ROOT, check=True)
        digest = hashlib.sha256((PROJECT_ROOT / f"{name}.in").read_bytes()).hexdigest()
        with open(PROJECT_ROOT / f"{name}.lock", "a") as lock:
            lock.write(f"# {name}.in sha256: {digest}\n")


if __name__ == "__main__":
    main()
