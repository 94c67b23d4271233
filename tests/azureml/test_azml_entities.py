"""Every entity the Azure ML backends send, built with the SDK and checked by the SDK: its schema
loaders (the same validation ``az ml ... create -f`` applies), its own validation, and its REST
serialization (the body the service receives)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from azure.ai.ml import (
    load_environment,
    load_job,
    load_model,
    load_online_deployment,
    load_online_endpoint,
)
from azure.ai.ml._utils._endpoint_utils import validate_scoring_script
from azure.ai.ml.exceptions import ValidationException
from marshmallow.exceptions import ValidationError as SchemaError

from mlops.azureml.client import ensure_environment
from mlops.azureml.entities import (
    TRAIN_COMMAND,
    deployment_entity,
    endpoint_entity,
    environment_entity,
    model_entity,
    model_ref,
    training_job,
)
from mlops.azureml.shipping import (
    CONDA_YML,
    DEPLOYMENT_YML,
    ENDPOINT_YML,
    ENVIRONMENT_YML,
    lock_pins,
    stage_scoring_code,
    stage_training_code,
)
from mlops.core.errors import DeploymentError, SpecError
from mlops.model.bundle import build_manifest, write_bundle
from tests.azureml.conftest import azure_spec
from tests.conftest import ROOT


def _reload(entity, loader):
    """The entity dumped through its schema and loaded back by the SDK's YAML loader."""
    plain = json.loads(json.dumps(entity._to_dict(), default=str))
    return loader(io.StringIO(yaml.safe_dump(plain)))


def test_the_yaml_files_a_person_applies_load_and_point_at_the_real_script():
    endpoint = load_online_endpoint(ENDPOINT_YML)
    assert endpoint.auth_mode == "key"
    deployment = load_online_deployment(DEPLOYMENT_YML)
    validate_scoring_script(deployment)  # code ../.. + deployments/azureml/score.py exists
    code = Path(deployment.base_path, deployment.code_configuration.code).resolve()
    assert code == ROOT
    assert (code / deployment.scoring_script).resolve() == ROOT / "deployments/azureml/score.py"
    environment = load_environment(ENVIRONMENT_YML)
    pins = environment.conda_file["dependencies"][-1]["pip"]
    assert pins == lock_pins()


def test_environment_version_follows_its_content(tmp_path):
    spec = azure_spec()
    env = environment_entity(spec.azureml)
    assert env.version == environment_entity(spec.azureml).version
    body = env._to_rest_object().as_dict()["properties"]
    assert body["image"].startswith("mcr.microsoft.com/azureml/")
    assert "scikit-learn==" in body["condaFile"]

    changed = tmp_path / "environment.yml"
    changed.write_text(ENVIRONMENT_YML.read_text())
    conda = yaml.safe_load(CONDA_YML.read_text())
    conda["dependencies"][-1]["pip"].append("rich==14.0.0")
    (tmp_path / "conda.yml").write_text(yaml.safe_dump(conda))
    other = environment_entity(spec.azureml.model_copy(update={"environment": str(changed)}))
    assert other.version != env.version

    build = tmp_path / "build.yml"
    build.write_text("name: custom\nbuild:\n  path: .\n")
    with pytest.raises(SpecError, match="register it yourself"):
        environment_entity(spec.azureml.model_copy(update={"environment": str(build)}))


@pytest.mark.azurite
def test_an_existing_environment_reference_is_used_as_given(ml_client, workspace):
    target = azure_spec(**{"azureml.environment": "azureml:team-env:7"}).azureml
    assert ensure_environment(ml_client, target, DeploymentError) == "azureml:team-env:7"
    assert workspace.requests == []


def test_endpoint_entity():
    endpoint = endpoint_entity("churn-prod")
    assert endpoint.name == "churn-prod" and endpoint.auth_mode == "key"
    body = endpoint._to_rest_online_endpoint(location="westeurope").as_dict()
    assert body["properties"]["authMode"] == "Key"
    assert _reload(endpoint, load_online_endpoint).auth_mode == "key"
    with pytest.raises(SchemaError, match="name"):
        endpoint_entity("9-not-a-name")


def test_deployment_entity_for_a_release(tmp_path):
    code = stage_scoring_code(tmp_path / "code")
    spec = azure_spec(**{"endpoint.instance_type": "Standard_F4s_v2", "endpoint.instance_count": 2})
    deployment = deployment_entity(
        slot="green", endpoint_name="churn-endpoint", model="azureml:churn:4",
        environment="azureml:mlops-sklearn:0123abcd", code_dir=code, endpoint=spec.endpoint,
        tags={"mlops.model": "azureml:churn:4"},
    )
    validate_scoring_script(deployment)
    body = deployment._to_rest_object(location="westeurope").as_dict()
    assert body["sku"] == {"name": "Default", "capacity": 2}
    props = body["properties"]
    assert props["instanceType"] == "Standard_F4s_v2"
    assert props["endpointComputeType"] == "Managed"
    assert props["codeConfiguration"] == {"codeId": str(code), "scoringScript": "score.py"}
    assert props["model"] == "churn:4" and props["environmentId"] == "mlops-sklearn:0123abcd"
    assert body["tags"] == {"mlops.model": "azureml:churn:4"}
    again = _reload(deployment, load_online_deployment)
    assert (again.name, again.instance_count, again.model) == ("green", 2, "churn:4")
    with pytest.raises(ValidationException, match="at least 3"):
        deployment_entity(slot="b", endpoint_name="churn-endpoint", model="azureml:churn:4",
                          environment="azureml:e:1", code_dir=code, endpoint=spec.endpoint)


def test_staged_code_folders_hold_what_the_scripts_import(tmp_path):
    scoring = stage_scoring_code(tmp_path / "score")
    assert sorted(p.name for p in scoring.iterdir()) == ["score.py", "serving"]
    training = stage_training_code(tmp_path / "train")
    assert sorted(p.name for p in training.iterdir()) == ["mlops", "serving", "train.py"]
    assert (training / "mlops" / "model" / "features.py").exists()
    assert not list(tmp_path.rglob("__pycache__"))


@pytest.fixture
def bundle(tmp_path, toy):
    import fsspec

    manifest = build_manifest(
        model_name="churn", version=4, model_bytes=toy.model_bytes, features=toy.features,
        lineage={"task": "classification", "target": "churned", "metrics": {"roc_auc": 0.87},
                 "data_url": "https://acct.blob.core.windows.net/d/x.parquet?sv=1&sig=KEY",
                 "spec_hash": "5f3a", "flow_run_id": None, "previous_champion": 3},
    )
    folder = tmp_path / "bundle"
    write_bundle(fsspec.filesystem("file"), str(folder), toy.model_bytes, manifest,
                 toy.frame.head(10))
    return folder, manifest


def test_model_entity(bundle):
    folder, manifest = bundle
    model = model_entity("churn", 4, folder, manifest)
    body = model._to_rest_object().as_dict()["properties"]
    assert body["modelType"] == "custom_model"
    assert body["tags"]["metric.roc_auc"] == "0.87"
    assert body["tags"]["previous_champion"] == "3" and "flow_run_id" not in body["tags"]
    assert "sig=" not in json.dumps(body)
    assert body["properties"]["mlops.model_sha256"] == manifest["model_sha256"]
    assert body["properties"]["mlops.spec_hash"] == "5f3a"
    assert len(body["properties"]["mlops.manifest_sha256"]) == 64
    assert all(isinstance(v, str) for v in (*body["tags"].values(),
                                            *body["properties"].values()))
    again = _reload(model, load_model)
    assert (again.name, again.version, again.type) == ("churn", "4", "custom_model")


def test_model_references():
    assert model_ref("churn", 4) == "azureml:churn:4"
    assert model_ref("churn", 4, "shared") == "azureml://registries/shared/models/churn/versions/4"


def test_training_job(tmp_path):
    spec = azure_spec(**{"training.backend": "azureml", "training.compute": "cpu-cluster"})
    code = stage_training_code(tmp_path / "code")
    spec_json = tmp_path / "spec.json"
    spec_json.write_text(spec.model_dump_json())
    train = tmp_path / "train.arrow"
    train.write_bytes(b"arrow")
    job = training_job(spec, code_dir=code, spec_json=spec_json, train_file=train,
                       environment="azureml:mlops-sklearn:0123abcd", tags={"mlops.spec_hash": "x"})
    assert job._validate().passed
    assert job.component._validate().passed  # every ${{...}} the command uses is declared
    command_job = job._to_job()
    command_job._validate()
    body = command_job._to_rest_object().as_dict()["properties"]
    assert body["jobType"] == "Command" and body["computeId"] == "cpu-cluster"
    assert body["environmentId"] == "azureml:mlops-sklearn:0123abcd"
    assert body["command"] == TRAIN_COMMAND
    assert {k: v["jobInputType"] for k, v in body["inputs"].items()} == {
        "spec": "uri_file", "train": "uri_file"}
    assert body["outputs"] == {"model": {"jobOutputType": "uri_folder"}}
    assert body["codeId"] == str(code) and (code / "train.py").exists()
    again = _reload(command_job, load_job)
    assert (again.compute, again.command) == ("cpu-cluster", TRAIN_COMMAND)


def test_a_command_naming_an_input_it_lacks_fails_the_sdk_validation(tmp_path):
    from azure.ai.ml import command

    job = command(command="python train.py --spec ${{inputs.missing}}",
                  environment="azureml:e:1", compute="cpu-cluster", code=str(tmp_path))
    result = job.component._validate()
    assert not result.passed and "inputs.missing" in str(result)


@pytest.mark.azurite
def test_an_environment_file_the_schema_refuses_is_our_error(ml_client, workspace, tmp_path):
    broken = tmp_path / "environment.yml"
    broken.write_text("name: e\nimage: mcr.microsoft.com/azureml/x:1\nos_type: solaris\n")
    target = azure_spec(**{"azureml.environment": str(broken)}).azureml
    with pytest.raises(DeploymentError, match="schema refused it.*os_type"):
        ensure_environment(ml_client, target, DeploymentError)
    assert workspace.requests == []
