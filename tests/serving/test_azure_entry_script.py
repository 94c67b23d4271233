"""deployments/azureml/score.py in process: it honours MLOPS_ENDPOINT_FAST_PATH as the local
endpoint does, and answers as the pipeline either way. (Under Azure ML's own inference server:
test_azmlinfsrv.py.)"""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import Any, ClassVar

import orjson
import pandas as pd
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


class RecordingCollector:
    """Stands in for ``azureml.ai.monitoring.Collector`` (not installed here; on Azure it is in
    the environment): keeps each collected DataFrame and the context it was given."""

    collected: ClassVar[dict[str, list[tuple[pd.DataFrame, Any]]]] = {}

    def __init__(self, *, name: str) -> None:
        self.name = name
        self.collected.setdefault(name, [])

    def collect(self, data: pd.DataFrame, correlation_context: Any = None) -> Any:
        assert isinstance(data, pd.DataFrame)  # the only type Azure's collector logs
        self.collected[self.name].append((data.copy(), correlation_context))
        return correlation_context or f"context-{len(self.collected[self.name])}"


def _load_entry_script(monkeypatch, model_dir: str, collect: str | None):
    monkeypatch.setenv("AZUREML_MODEL_DIR", model_dir)
    if collect is None:
        monkeypatch.delenv("MLOPS_ENDPOINT_AZUREML_COLLECT", raising=False)
    else:
        monkeypatch.setenv("MLOPS_ENDPOINT_AZUREML_COLLECT", collect)
    monkeypatch.setenv("MLOPS_ENDPOINT_COLLECT_FLUSH_S", "60")  # flushed by the test
    monkeypatch.setattr(sys, "path", list(sys.path))
    spec = importlib.util.spec_from_file_location("score_collecting", SCORE_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_monitoring_package(monkeypatch) -> None:
    RecordingCollector.collected.clear()
    package = types.ModuleType("azureml.ai.monitoring")
    package.Collector = RecordingCollector
    for name in ("azureml", "azureml.ai"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "azureml.ai.monitoring", package)


def test_entry_script_hands_inputs_and_outputs_to_azure_ml_data_collector(toys, monkeypatch):
    _fake_monitoring_package(monkeypatch)
    module = _load_entry_script(monkeypatch, toys.v1.url, "true")
    module.init()
    rows = toys.frame[FEATURES].head(7)
    first = module.run(orjson.dumps(frame_to_request(rows.head(3))).decode())
    second = module.run(orjson.dumps({"input_data": orjson.loads(
        rows.tail(4).to_json(orient="records"))}).decode())
    assert RecordingCollector.collected["model_inputs"] == []  # nothing on the request path
    module._collector.close()

    [(inputs, _)] = RecordingCollector.collected["model_inputs"]
    [(outputs, context)] = RecordingCollector.collected["model_outputs"]
    assert list(inputs.columns) == FEATURES
    pd.testing.assert_frame_equal(
        inputs.reset_index(drop=True), rows.reset_index(drop=True), check_dtype=False
    )
    assert outputs.columns.tolist() == ["prediction"]
    assert outputs["prediction"].tolist() == first["predictions"] + second["predictions"]
    assert context == "context-1"  # the outputs are correlated with their inputs


def test_entry_script_collects_nothing_unless_asked(toys, monkeypatch):
    _fake_monitoring_package(monkeypatch)
    module = _load_entry_script(monkeypatch, toys.v1.url, None)
    module.init()
    module.run(orjson.dumps(frame_to_request(toys.frame[FEATURES].head(2))).decode())
    assert module._collector is None and RecordingCollector.collected == {}


def test_collection_without_azureml_ai_monitoring_stops_init_with_the_fix(toys, monkeypatch):
    monkeypatch.setitem(sys.modules, "azureml.ai.monitoring", None)  # import fails
    module = _load_entry_script(monkeypatch, toys.v1.url, "true")
    with pytest.raises(ModuleNotFoundError, match="azureml-ai-monitoring is not installed"):
        module.init()
