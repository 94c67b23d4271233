"""deployments/azureml/score.py in process: it honours MLOPS_ENDPOINT_FAST_PATH as the local
endpoint does, and answers as the pipeline either way. (Under Azure ML's own inference server:
test_azmlinfsrv.py.)"""

from __future__ import annotations

import importlib.util
import sys

import orjson
import pytest

from mlops.endpoint.payloads import frame_to_request
from tests.conftest import ROOT
from tests.serving._models import FEATURES

SCORE_PY = ROOT / "deployments" / "azureml" / "score.py"


@pytest.mark.parametrize(("setting", "path"), [
    ("false", "plain pipeline (off by setting MLOPS_ENDPOINT_FAST_PATH)"),
    ("true", "fast path"),
    (None, "fast path"),
])
def test_entry_script_follows_the_fast_path_setting(toys, monkeypatch, setting, path):
    monkeypatch.setenv("AZUREML_MODEL_DIR", toys.v1.url)
    if setting is None:
        monkeypatch.delenv("MLOPS_ENDPOINT_FAST_PATH", raising=False)
    else:
        monkeypatch.setenv("MLOPS_ENDPOINT_FAST_PATH", setting)
    monkeypatch.setattr(sys, "path", list(sys.path))  # init() may add the code root
    spec = importlib.util.spec_from_file_location("score_under_test", SCORE_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.init()
    rows = toys.frame[FEATURES].head(30)
    body = module.run(orjson.dumps(frame_to_request(rows)).decode())
    assert module._scorer.path == path
    assert body["predictions"] == toys.bundle(toys.v1).model.predict(rows).tolist()
