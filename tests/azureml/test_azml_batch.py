"""The Azure ML batch endpoint and deployment, checked by the SDK; the driver script run here.

The entities go through the SDK's schema loaders (what ``az ml batch-deployment create -f``
applies), its own validation and its REST serialization. The driver script's ``init``/``run``
score a folder of files in this process, as Azure ML's batch runner would call them, and must
give the local batch scoring's rows. No call reaches Azure.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from azure.ai.ml import load_batch_endpoint
from azure.ai.ml.entities._load_functions import load_model_batch_deployment

from mlops.batch.azureml import (
    BATCH_SCORE_PY,
    batch_deployment_entity,
    batch_endpoint_entity,
    stage_batch_code,
)
from mlops.batch.driver import PLAN_VARIABLE, plan_settings
from mlops.batch.partitions import plan_partitions
from mlops.batch.run import score_partition
from mlops.core.errors import SpecError
from serving.fastpath.trees import COMPILED_MIN_ROWS
from tests.azureml.conftest import azure_spec
from tests.mlops.batch._batch import make_champion, plan_for, write_partitions

BATCH = {"compute": "cpu-cluster", "mini_batch_size": 4, "instance_count": 2,
         "output_action": "append_row", "max_retries": 2, "timeout": 120, "error_threshold": 5}


def _reload(entity, loader):
    plain = json.loads(json.dumps(entity._to_dict(), default=str))
    return loader(io.StringIO(yaml.safe_dump(plain)))


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    return make_champion(tmp_path_factory.mktemp("champion"))


def _deployment(champion, tmp_path, **batch):
    spec = azure_spec(**{"batch.azureml": {**BATCH, **batch}})
    return batch_deployment_entity(
        spec, plan_for(champion, ""), name="nightly", endpoint_name="churn-batch",
        model="azureml:churn:3", environment="azureml:mlops-sklearn:1",
        code_dir=stage_batch_code(tmp_path / "code"))


def test_batch_deployment_carries_the_spec_and_passes_the_sdks_checks(champion, tmp_path):
    deployment = _deployment(champion, tmp_path)
    body = deployment._to_rest_object(location="westeurope").as_dict()["properties"]
    assert body["compute"] == "cpu-cluster" and body["miniBatchSize"] == 4
    assert body["resources"]["instanceCount"] == 2
    assert body["outputAction"] == "AppendRow" and body["errorThreshold"] == 5
    assert body["retrySettings"] == {"maxRetries": 2, "timeout": "PT2M"}
    assert body["codeConfiguration"]["scoringScript"] == "batch_score.py"
    plan = json.loads(body["environmentVariables"][PLAN_VARIABLE])
    assert plan["ids"] == ["customer_id"] and plan["passthrough"] == ["region"]
    assert "model" not in plan and "fast" not in plan
    again = _reload(deployment, load_model_batch_deployment)
    assert again.settings.mini_batch_size == 4 and again.compute == "cpu-cluster"
    assert again.code_configuration.scoring_script == BATCH_SCORE_PY.name
    summary = _deployment(champion, tmp_path / "s", output_action="summary_only")
    assert summary._to_rest_object(location="westeurope").as_dict()["properties"][
        "outputAction"] == "SummaryOnly"
    endpoint = batch_endpoint_entity("churn-batch")
    assert _reload(endpoint, load_batch_endpoint).name == "churn-batch"
    assert endpoint._to_rest_batch_endpoint("westeurope").as_dict()["properties"][
        "authMode"] == "aadToken"


def test_the_staged_code_folder_holds_the_driver_and_the_scoring_core(tmp_path):
    code = stage_batch_code(tmp_path / "code")
    assert sorted(p.name for p in code.iterdir()) == ["batch_score.py", "mlops", "serving"]
    assert (code / "mlops" / "batch" / "driver.py").exists()


@pytest.mark.parametrize(("batch", "problem"), [
    ({"mini_batch_size": 0}, "batch.azureml.mini_batch_size"),
    ({"output_action": "append_rows"}, "batch.azureml.output_action"),
    ({"compute": None}, "batch.azureml.compute"),
])
def test_bad_batch_deployment_settings_are_named(batch, problem):
    with pytest.raises(SpecError, match=problem):
        azure_spec(**{"batch.azureml": {**BATCH, **batch}})


def test_a_spec_without_a_batch_deployment_is_refused(champion, tmp_path):
    with pytest.raises(SpecError, match="no batch.azureml section"):
        batch_deployment_entity(
            azure_spec(), plan_for(champion, ""), name="n", endpoint_name="e",
            model="azureml:churn:3", environment="azureml:env:1", code_dir=tmp_path)


def test_the_driver_scores_files_as_the_local_batch_run(champion, tmp_path, monkeypatch):
    folder = tmp_path / "in"
    write_partitions(folder, parts=3, rows=1500)
    plan = plan_for(champion, str(tmp_path / "local"))
    for partition in plan_partitions(str(folder)):
        score_partition(partition, plan)
    local = pq.read_table(tmp_path / "local").to_pandas().drop(columns="scored_at")

    code = stage_batch_code(tmp_path / "code")
    model_dir = tmp_path / "azureml-models" / "churn" / "1"
    shutil.copytree(champion.model.url, model_dir / "bundle")  # as Azure ML mounts a folder
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir))
    monkeypatch.setenv(PLAN_VARIABLE, plan_settings(plan))
    monkeypatch.setattr(sys, "path", list(sys.path))
    spec = importlib.util.spec_from_file_location("batch_score", code / "batch_score.py")
    driver = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(driver)
    driver.init()
    files = sorted(str(p) for p in folder.glob("*.parquet"))
    scored = pd.concat([driver.run(files[:2]), driver.run(files[2:])], ignore_index=True)
    assert len(scored) == 4500 and scored["error"].isna().all()
    assert set(scored["model_version"]) == {champion.model.version}
    pd.testing.assert_frame_equal(
        scored.drop(columns="scored_at").sort_values("customer_id", ignore_index=True),
        local.sort_values("customer_id", ignore_index=True))


_DRIVE = """
import importlib.util, json, sys
args = json.loads(sys.argv[1])
spec = importlib.util.spec_from_file_location("batch_score", args["script"])
driver = importlib.util.module_from_spec(spec)
spec.loader.exec_module(driver)
driver.init()
driver.run(args["files"]).to_parquet(args["out"], index=False)
print(json.dumps({name: name in sys.modules for name in args["modules"]}))
"""


def test_the_shipped_environment_walks_a_batch_with_the_compiled_kernel(champion, tmp_path,
                                                                       shipped_python):
    """The driver in the environment Azure ML builds from conda.yml (.venv-azmlinfsrv, from
    the same lock): it scores from the bundle's snapshot, without scikit-learn, and a row batch
    of `COMPILED_MIN_ROWS` rows or more walks the trees with numba's kernel, as here."""
    rows = COMPILED_MIN_ROWS + 1000
    folder = tmp_path / "in"
    write_partitions(folder, parts=1, rows=rows)
    plan = plan_for(champion, str(tmp_path / "local"), rows_per_batch=rows)
    for partition in plan_partitions(str(folder)):
        score_partition(partition, plan)
    local = pq.read_table(tmp_path / "local").to_pandas().drop(columns="scored_at")

    code = stage_batch_code(tmp_path / "code")
    model_dir = tmp_path / "azureml-models" / "churn" / "1"
    shutil.copytree(champion.model.url, model_dir / "bundle")
    args = {"script": str(code / "batch_score.py"), "out": str(tmp_path / "azure.parquet"),
            "files": [str(p) for p in folder.glob("*.parquet")],
            "modules": ["sklearn", "serving.fastpath.compiled"]}
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "OMP_NUM_THREADS": "1",
           "AZUREML_MODEL_DIR": str(model_dir), PLAN_VARIABLE: plan_settings(plan),
           "MLOPS_FASTPATH_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([shipped_python, "-c", _DRIVE, json.dumps(args)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    imported = json.loads(done.stdout.strip().splitlines()[-1])
    assert imported == {"sklearn": False, "serving.fastpath.compiled": True}
    scored = pd.read_parquet(tmp_path / "azure.parquet").drop(columns="scored_at")
    assert len(scored) == rows and scored["error"].isna().all()
    pd.testing.assert_frame_equal(scored.sort_values("customer_id", ignore_index=True),
                                  local.sort_values("customer_id", ignore_index=True))
