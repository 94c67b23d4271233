"""The code version covers exactly the code that can change a model or a prediction."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlops.core.lineage import CODE_PACKAGES, UNHASHED_MODULES, code_digest, code_files, source_root

ROOT = Path(__file__).resolve().parents[3]
# What a training run's stages and the endpoint import: every project file among them can
# change a model or a prediction, unless UNHASHED_MODULES says why not.
MODEL_PATHS = ("tasks.data", "tasks.features", "tasks.training", "tasks.evaluation",
               "tasks.registry", "tasks.deploy", "serving.server", "serving.__main__")
# The modules that compute a model or a prediction: none of them may ever be left out.
MODEL_CORE = ("mlops.data.loading", "mlops.data.storage", "mlops.data.validation",
              "mlops.model.features", "mlops.core.spec", "mlops.model.bundle",
              "mlops.evaluation.scoring", "mlops.evaluation.gate", "mlops.evaluation.decision",
              "serving.transforms", "serving.scoring", "serving.bundle", "serving.model_file",
              "tasks.data", "tasks.features", "tasks.training", "tasks.evaluation")
OUTSIDE = ("tools", "flows", "tests", "benchmarks", "deployments")


def test_the_hashed_files_are_the_code_packages_minus_the_listed_modules():
    hashed = {p.as_posix() for p in code_files()}
    every = {p.relative_to(ROOT).as_posix() for package in CODE_PACKAGES
             for p in (ROOT / package).rglob("*.py")}
    left_out = {f"{m.replace('.', '/')}.py" for m in UNHASHED_MODULES}
    assert hashed == every - left_out
    assert "serving/transforms.py" in hashed  # model files refer to its functions


@pytest.mark.parametrize("module", MODEL_CORE)
def test_the_modules_that_compute_a_model_or_a_prediction_are_hashed(module):
    path = Path(importlib.util.find_spec(module).origin).resolve().relative_to(source_root())
    assert path in code_files()


def test_no_tooling_file_is_hashed():
    hashed = [p.as_posix() for p in code_files()]
    assert not [p for p in hashed if p.split("/")[0] in OUTSIDE]
    assert set(CODE_PACKAGES) == {"mlops", "serving", "tasks"}


def test_every_module_a_training_run_or_the_endpoint_imports_is_hashed():
    script = (
        "import importlib, json, sys\n"
        f"for name in {MODEL_PATHS!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps({n: getattr(m, '__file__', None) for n, m in sys.modules.items()}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=True)
    imported = {
        Path(path).resolve().relative_to(ROOT).as_posix()
        for path in json.loads(result.stdout.splitlines()[-1]).values()
        if path and Path(path).resolve().is_relative_to(ROOT)
    }
    # a virtualenv inside the checkout (make setup's .venv) holds third-party code, not ours
    imported = {p for p in imported if "site-packages" not in p.split("/")}
    hashed = {p.as_posix() for p in code_files()}
    unhashed = {f"{m.replace('.', '/')}.py" for m in UNHASHED_MODULES}
    assert imported - hashed - unhashed == set()
    assert "tasks/training.py" in imported and "serving/scoring.py" in imported | {
        p for p in imported if p.startswith("serving/scoring/")}


@pytest.mark.parametrize("module", sorted(UNHASHED_MODULES))
def test_each_module_left_out_exists_and_says_why(module):
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, f"{module} in UNHASHED_MODULES does not exist"
    assert not spec.origin.endswith("__init__.py"), f"{module} is a package now: name its module"
    assert Path(spec.origin).resolve().relative_to(source_root()).parts[0] in CODE_PACKAGES
    assert len(UNHASHED_MODULES[module]) > 40


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for package in (*CODE_PACKAGES, "tools", "flows"):
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


@pytest.mark.parametrize(("edited", "changes"), [
    ("tools.stack", False),
    ("tools.cli", False),
    ("flows.training", False),
    ("mlops.endpoint.local", False),
    ("serving.transforms", True),
    ("tasks.training", True),
    ("mlops.core.lineage", True),
])
def test_an_edit_changes_the_version_only_in_model_code(tree, edited, changes):
    before = code_digest(tree)
    path = Path(importlib.util.find_spec(edited).origin).resolve().relative_to(ROOT)
    with open(tree / path, "a") as handle:
        handle.write("\n# edited\n")
    assert (code_digest(tree) != before) is changes
