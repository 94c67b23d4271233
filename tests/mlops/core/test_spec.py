"""The estimator's import path, checked without importing it (mlops/core/spec/__init__.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mlops.core.errors import SpecError
from mlops.core.spec.estimator import ModelSpec
from tests.conftest import ROOT


@pytest.mark.parametrize("path", [
    "sklearn.ensemble.HistGradientBoostingClassifier",  # re-exported by the package
    "sklearn.linear_model.Ridge",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "collections.OrderedDict",  # exists; that it cannot fit is for the full import to say
    "os.path.join",  # a module that is already imported
])
def test_paths_that_can_exist_pass(path):
    ModelSpec(estimator=path).check_estimator_path()


@pytest.mark.parametrize(("path", "problem"), [
    ("sklearn.nope.Nothing", "No module named 'sklearn.nope'"),
    ("no_such_package.Model", "No module named 'no_such_package'"),
    ("sklearn.ensemble.NoSuchModel", "module 'sklearn.ensemble' has no attribute 'NoSuchModel'"),
    ("HistGradientBoostingClassifier", "no module path"),
])
def test_paths_that_cannot_exist_fail_with_the_import_error(path, problem):
    with pytest.raises(SpecError) as info:
        ModelSpec(estimator=path).check_estimator_path()
    assert str(info.value) == f"model.estimator: cannot import '{path}': {problem}"


def test_what_the_source_cannot_tell_is_left_to_the_full_import(tmp_path, monkeypatch):
    (tmp_path / "lazy_models.py").write_text(
        "def __getattr__(name):\n    raise AttributeError(name)\n"
    )
    (tmp_path / "star_models.py").write_text("from collections import *\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ModelSpec(estimator="lazy_models.Anything").check_estimator_path()
    ModelSpec(estimator="star_models.Anything").check_estimator_path()
    with pytest.raises(SpecError, match="cannot import 'lazy_models.Anything'"):
        ModelSpec(estimator="lazy_models.Anything").estimator_class()


def test_names_bound_under_if_and_try_count(tmp_path, monkeypatch):
    (tmp_path / "guarded_models.py").write_text(
        "import sys\n"
        "if sys.version_info >= (3,):\n"
        "    class Fast:\n        pass\n"
        "try:\n    from json import JSONDecoder as Slow\n"
        "except ImportError:\n    Slow = None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("Fast", "Slow"):
        ModelSpec(estimator=f"guarded_models.{name}").check_estimator_path()
    with pytest.raises(SpecError, match="has no attribute 'Other'"):
        ModelSpec(estimator="guarded_models.Other").check_estimator_path()


def test_the_check_imports_nothing_it_checks():
    probe = (
        "import json, sys\n"
        "from mlops.core.spec.estimator import ModelSpec\n"
        "ModelSpec(estimator='sklearn.ensemble.HistGradientBoostingClassifier')"
        ".check_estimator_path()\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sklearn', 'scipy'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert json.loads(done.stdout) == []


def test_the_data_options_default_to_the_strict_choice():
    from mlops.core.spec import load_spec

    spec = load_spec(ROOT / "configs" / "churn.yaml")
    data = spec.data
    assert (data.separator, data.allow_nonfinite, data.missing_target) == (",", False, "error")
    assert all(c.rules.allow_nonfinite is None for c in spec.columns)  # inherit data's


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("data.separator", "", "data.separator"),
    ("data.separator", ";;", "data.separator"),
    ("data.missing_target", "impute", "data.missing_target"),
    ("data.allow_nonfinite", "sometimes", "data.allow_nonfinite"),
])
def test_bad_data_options_are_named(field, value, problem):
    from mlops.core.spec import load_spec

    with pytest.raises(SpecError, match=problem):
        load_spec(ROOT / "configs" / "churn.yaml", {field: value})


# "<name>-endpoint" is 32 characters for a 23-character name, 33 for a 24-character one.
@pytest.mark.parametrize(("changes", "valid"), [
    ({"name": "a" * 23}, True),
    ({"name": "a" * 24}, False),
    ({"name": "9lives"}, False),
    ({"name": "9lives", "endpoint.name": "nine-lives"}, True),
    ({"name": "9lives", "endpoint.url": "http://127.0.0.1:9000"}, True),
    ({"name": "churn", "endpoint.name": "9-lives"}, True),  # the default endpoint: no name used
])
def test_a_model_served_at_its_own_local_endpoint_needs_a_valid_endpoint_name(changes, valid):
    from mlops.core.spec import load_spec

    if valid:
        load_spec(ROOT / "configs" / "churn.yaml", changes)
        return
    with pytest.raises(SpecError, match=r"is not valid for the local server: 3-32 letters.*"
                                        r"set endpoint.name \(or endpoint.url\)"):
        load_spec(ROOT / "configs" / "churn.yaml", changes)


def test_a_shadow_phase_reads_its_share_and_hold():
    from mlops.core.spec import load_spec

    spec = load_spec(ROOT / "configs" / "churn.yaml",
                     {"endpoint.shadow": {"share": 50, "hold": "5m"}})
    assert (spec.endpoint.shadow.share, spec.endpoint.shadow.hold) == (50, 300.0)
    assert load_spec(ROOT / "configs" / "churn.yaml").endpoint.shadow is None


@pytest.mark.parametrize("shadow", [
    {"share": 51, "hold": "5m"},  # Azure ML mirrors at most 50%
    {"share": 0, "hold": "5m"},
    {"share": 20, "hold": 0},  # a phase nobody watches
    {"share": 20},
])
def test_a_shadow_phase_outside_the_limits_is_refused(shadow):
    from mlops.core.spec import load_spec

    with pytest.raises(SpecError, match="endpoint.shadow"):
        load_spec(ROOT / "configs" / "churn.yaml", {"endpoint.shadow": shadow})
