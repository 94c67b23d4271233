"""Lock files must be generated from their current .in files (`make lock`), with hashes."""

import hashlib
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PAIRS = ["requirements", "requirements-azmlinfsrv", "requirements-mlflow"]
# Libraries that compute predictions: both environments must pin them identically.
MODEL_LIBRARIES = ["scikit-learn", "scipy", "numpy", "pandas", "pyarrow", "skops", "joblib"]


def _direct_requirements(name: str) -> list[Requirement]:
    lines = (ROOT / f"{name}.in").read_text().splitlines()
    return [Requirement(line) for line in (ln.split("#")[0].strip() for ln in lines) if line]


def _pins(name: str) -> dict[str, str]:
    text = (ROOT / f"{name}.lock").read_text()
    return {
        canonicalize_name(m[1]): m[2]
        for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)", text, re.MULTILINE)
    }


@pytest.mark.parametrize("name", PAIRS)
def test_lock_records_the_digest_of_its_in_file(name):
    digest = hashlib.sha256((ROOT / f"{name}.in").read_bytes()).hexdigest()
    header = re.search(rf"# {name}.in sha256: (\w+)", (ROOT / f"{name}.lock").read_text())
    assert header, f"{name}.lock has no digest of {name}.in: run `make lock`"
    assert header[1] == digest, f"{name}.in changed since its lock was made: run `make lock`"


@pytest.mark.parametrize("name", PAIRS)
def test_every_direct_requirement_is_pinned_within_its_range(name):
    pins = _pins(name)
    for req in _direct_requirements(name):
        key = canonicalize_name(req.name)
        assert key in pins, f"{req.name} is not in {name}.lock: run `make lock`"
        assert req.specifier.contains(pins[key], prereleases=True), (
            f"{req.name}=={pins[key]} is outside '{req.specifier}': run `make lock`"
        )


@pytest.mark.parametrize("name", PAIRS)
def test_every_pin_carries_a_hash(name):
    text = (ROOT / f"{name}.lock").read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9_.\-]+==)", text)
    unhashed = [b.split()[0] for b in blocks if "==" in b.split()[0] and "--hash=" not in b]
    assert not unhashed, f"pins without hashes in {name}.lock: {unhashed}"


def test_both_environments_pin_the_model_libraries_alike():
    main, azure = _pins("requirements"), _pins("requirements-azmlinfsrv")
    differ = {lib: (main.get(lib), azure.get(lib)) for lib in MODEL_LIBRARIES
              if main.get(lib) != azure.get(lib)}
    assert not differ, f"model libraries pinned differently (main, azmlinfsrv): {differ}"


def test_the_azure_ml_environment_pins_what_the_tests_run():
    """deployments/azureml/conda.yml: every pin of requirements-azmlinfsrv.lock (the environment
    score.py and train.py are tested in), so the model libraries are requirements.lock's."""
    import yaml

    from mlops.azureml.shipping import CONDA_YML, conda_text

    conda = yaml.safe_load(CONDA_YML.read_text())
    assert "python=3.11" in conda["dependencies"]
    pip = dict(pin.split("==") for pin in conda["dependencies"][-1]["pip"])
    pinned = {canonicalize_name(name): version for name, version in pip.items()}
    assert pinned == _pins("requirements-azmlinfsrv"), "conda.yml is stale: run `make lock`"
    main = _pins("requirements")
    differ = {lib: (main.get(lib), pinned.get(lib)) for lib in MODEL_LIBRARIES
              if main.get(lib) != pinned.get(lib)}
    assert not differ, f"model libraries pinned differently (main, Azure ML): {differ}"
    assert CONDA_YML.read_text() == conda_text(), "conda.yml is stale: run `make lock`"


def test_the_azure_ml_lock_is_resolved_for_linux_x86_64_on_any_machine():
    """Azure ML builds conda.yml (from requirements-azmlinfsrv.lock) on linux x86_64: the lock
    is compiled for that platform whatever machine runs `make lock`; the local one is not."""
    from tools.lock import compile_command

    azure = compile_command("requirements-azmlinfsrv")
    assert azure[azure.index("--python-platform") + 1] == "x86_64-unknown-linux-gnu"
    assert azure[azure.index("--python-version") + 1] == "3.11"
    assert "--python-platform" not in compile_command("requirements")
    assert "python -m tools.lock" in (ROOT / "Makefile").read_text()  # what `make lock` runs


def test_the_mlflow_ui_is_the_version_of_the_tracking_client():
    """An older MLflow server refuses a database a newer client has migrated."""
    client, ui = _pins("requirements")["mlflow-skinny"], _pins("requirements-mlflow")
    assert (ui["mlflow"], ui["mlflow-skinny"]) == (client, client)
