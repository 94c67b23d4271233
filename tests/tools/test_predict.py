"""`mlops predict` before any model exists: it says so and how to train one."""

from __future__ import annotations

import pytest

from tests.conftest import write_spec
from tools.cli import main


def test_predict_before_any_model_says_how_to_train_one(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("MLOPS_REGISTRY_URL", raising=False)
    spec = write_spec(tmp_path, "churn", {"data.url": str(tmp_path / "no-data-yet")})
    with pytest.raises(SystemExit) as caught:
        main(["predict", "--spec", spec])
    message = str(caught.value)
    assert "No model of 'churn' has been promoted yet" in message
    assert f"mlops train --spec {spec}" in message
    assert "/admin/traffic" not in message
