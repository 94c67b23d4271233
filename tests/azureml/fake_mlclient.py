"""A recording stand-in for MLClient's operations, for the Azure ML backends' offline tests.

There is no local Azure ML control plane, so this plays the service, and only that part:

- everything the backends send goes through the SDK's own REST serialization
  (``_to_rest_object``) and the SDK's own checks (scoring script, job validation); what comes
  back is built by the SDK from a REST body (``_from_rest_object``), as from the service;
- uploads are real copies (a model folder, a deployment's code folder, a job's code and inputs),
  taken at the moment the SDK would upload them;
- ``invoke`` runs the deployment's own ``score.py`` from its uploaded code folder on its model,
  laid out as Azure mounts it (``AZUREML_MODEL_DIR/<folder>/manifest.json``);
- a job runs its command for real, in a subprocess, in its uploaded code folder;
- the service's rules the protocol relies on: versions never change (a second asset with the same
  version is refused), traffic only to deployments that exist and sum to 100, no deleting a
  deployment that has traffic.

Every call is recorded in order in ``calls`` as ``(operation, details)``; ``fail(...)`` makes the
next matching call fail, at the call or (for long-running operations) at ``result()``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azure.ai.ml._restclient.arm_ml_service.models import _models as rest
from azure.ai.ml._utils._endpoint_utils import validate_scoring_script
from azure.ai.ml.entities import (
    Command,
    Environment,
    Job,
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
    Model,
    OnlineDeployment,
    OnlineEndpoint,
    Workspace,
)
from azure.ai.ml.exceptions import AssetPathException, ErrorCategory, ErrorTarget
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

SUB, RG, WS, LOCATION = "00000000-0000-0000-0000-000000000000", "rg-mlops", "ws-mlops", "westeurope"
ARM = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.MachineLearningServices"
WORKSPACE_ID = f"{ARM}/workspaces/{WS}"
TERMINAL = {"Completed", "Failed", "Canceled"}
MLFLOW_URI = f"azureml://{LOCATION}.api.azureml.ms/mlflow/v1.0{WORKSPACE_ID}"


def http_error(status: int, message: str) -> HttpResponseError:
    error = HttpResponseError(message=message)
    error.status_code = status
    return error


def not_found(what: str) -> ResourceNotFoundError:
    error = ResourceNotFoundError(message=f"{what} not found")
    error.status_code = 404
    return error


class Poller:
    """LROPoller's surface. The operation has been accepted when the poller is returned; a
    failure of the operation itself (a deployment that does not provision) shows at result()."""

    def __init__(self, result: Any = None, error: Exception | None = None) -> None:
        self._result, self._error = result, error

    def result(self, timeout: float | None = None) -> Any:
        if self._error is not None:
            raise self._error
        return self._result

    def done(self) -> bool:
        return True

    def wait(self, timeout: float | None = None) -> None:
        self.result(timeout)


@dataclass
class _Failure:
    operation: str
    error: Exception
    at_result: bool
    match: Callable[[dict[str, Any]], bool]


@dataclass
class Service:
    """What the service holds, shared by the operation groups."""

    root: Path
    python: str
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    failures: list[_Failure] = field(default_factory=list)
    models: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    environments: dict[tuple[str, str], Environment] = field(default_factory=dict)
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    deployments: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    scorers: dict[tuple[str, str], Any] = field(default_factory=dict)

    def record(self, operation: str, **details: Any) -> _Failure | None:
        """Record a call; the failure planned for it, if any (at_result ones are returned)."""
        self.calls.append((operation, details))
        for failure in self.failures:
            if failure.operation == operation and failure.match(details):
                self.failures.remove(failure)
                if not failure.at_result:
                    raise failure.error
                return failure
        return None

    def upload(self, source: Path, kind: str) -> Path:
        """Copy a local folder or file as the SDK's upload would, and return the copy."""
        target = self.root / kind / uuid.uuid4().hex[:12] / Path(source).name
        target.parent.mkdir(parents=True)
        if Path(source).is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
        return target


class Models:
    def __init__(self, service: Service) -> None:
        self.s = service
        self.before_create: Callable[[Model], None] | None = None

    def _entity(self, key: tuple[str, str]) -> Model:
        body = json.loads(json.dumps(self.s.models[key]["rest"]))
        return Model._from_rest_object(rest.ModelVersion(body))

    def create_or_update(self, model: Model) -> Model:
        key = (model.name, str(model.version))
        self.s.record("models.create_or_update", name=model.name, version=str(model.version),
                      tags=dict(model.tags or {}), new=key not in self.s.models)
        if self.before_create is not None:
            self.before_create(model)
        body = model._to_rest_object().as_dict()
        existing = self.s.models.get(key)
        if existing is not None:
            if str(model.path) != existing["rest"]["properties"]["modelUri"]:
                raise AssetPathException(
                    message="asset path changed", no_personal_data_message="asset path changed",
                    target=ErrorTarget.MODEL, error_category=ErrorCategory.USER_ERROR,
                )
            if body["properties"].get("properties") != existing["rest"]["properties"]["properties"]:
                raise http_error(400, "properties of an existing model version cannot change")
            existing["rest"]["properties"]["tags"] = body["properties"].get("tags") or {}
            existing["rest"]["properties"]["description"] = body["properties"].get("description")
            return self._entity(key)
        assert model.type == "custom_model", model.type
        folder = Path(model.path)
        assert folder.is_dir(), f"model path {folder} is not a local folder"
        stored = self.s.upload(folder, "models")
        upload_id = stored.parent.name
        body["properties"]["modelUri"] = (
            f"azureml://subscriptions/{SUB}/resourcegroups/{RG}/workspaces/{WS}/datastores/"
            f"workspaceblobstore/paths/LocalUpload/{upload_id}/{folder.name}"
        )
        body["properties"]["flavors"] = {}
        body["id"] = f"{WORKSPACE_ID}/models/{model.name}/versions/{model.version}"
        body["name"] = str(model.version)
        self.s.models[key] = {"rest": body, "folder": stored}
        return self._entity(key)

    def get(self, name: str, version: str | None = None, label: str | None = None) -> Model:
        self.s.record("models.get", name=name, version=version)
        if (name, str(version)) not in self.s.models:
            raise not_found(f"model {name}:{version}")
        return self._entity((name, str(version)))

    def list(self, name: str | None = None, **_: Any) -> list[Model]:
        self.s.record("models.list", name=name)
        return [self._entity(k) for k in self.s.models if k[0] == name]

    def download(self, name: str, version: str, download_path: str = ".") -> None:
        self.s.record("models.download", name=name, version=version)
        if (name, str(version)) not in self.s.models:
            raise not_found(f"model {name}:{version}")
        folder = self.s.models[(name, str(version))]["folder"]
        shutil.copytree(folder, Path(download_path) / name / folder.name)  # the SDK's layout

    def add_foreign(self, name: str, version: str, folder: Path) -> None:
        """Another writer's version (no properties of ours), as if registered meanwhile."""
        self.create_or_update(Model(name=name, version=version, path=str(folder),
                                    type="custom_model"))


class Environments:
    def __init__(self, service: Service) -> None:
        self.s = service

    def get(self, name: str, version: str | None = None, label: str | None = None) -> Environment:
        self.s.record("environments.get", name=name, version=version)
        if (name, str(version)) not in self.s.environments:
            raise not_found(f"environment {name}:{version}")
        return self.s.environments[(name, str(version))]

    def create_or_update(self, environment: Environment) -> Environment:
        self.s.record("environments.create_or_update", name=environment.name,
                      version=environment.version)
        body = environment._to_rest_object().as_dict()["properties"]
        assert body["image"] and body["condaFile"], body
        self.s.environments[(environment.name, str(environment.version))] = environment
        return environment


def _model_key(reference: str) -> tuple[str, str]:
    """(name, version) of a deployment's model: the SDK's loader keeps a workspace model as
    'name:version' (it resolves that to an ARM id when it sends it), a registry's as a URI."""
    found = re.fullmatch(r"(?:azureml:)?([^:/]+):(\d+)", reference) or re.fullmatch(
        r"azureml://registries/[^/]+/models/([^/]+)/versions/(\d+)", reference)
    assert found, f"not a model reference: {reference}"
    return found[1], found[2]


@contextlib.contextmanager
def _scoring_process_env(model_dir: Path) -> Iterator[None]:
    saved_path, saved_env = list(sys.path), os.environ.get("AZUREML_MODEL_DIR")
    os.environ["AZUREML_MODEL_DIR"] = str(model_dir)
    try:
        yield
    finally:
        sys.path[:] = saved_path
        if saved_env is None:
            os.environ.pop("AZUREML_MODEL_DIR", None)
        else:
            os.environ["AZUREML_MODEL_DIR"] = saved_env


class OnlineEndpoints:
    def __init__(self, service: Service) -> None:
        self.s = service

    def get(self, name: str, **_: Any) -> OnlineEndpoint:
        self.s.record("online_endpoints.get", name=name)
        if name not in self.s.endpoints:
            raise not_found(f"endpoint {name}")
        endpoint = OnlineEndpoint._from_rest_object(
            rest.OnlineEndpoint(json.loads(json.dumps(self.s.endpoints[name]["rest"])))
        )
        for (ep, dep) in self.s.deployments:  # as the SDK does: 0 for deployments without traffic
            if ep == name and not endpoint.traffic.get(dep):
                endpoint.traffic[dep] = 0
        return endpoint

    def traffic(self, name: str) -> dict[str, int]:
        return dict(self.s.endpoints[name]["rest"]["properties"].get("traffic") or {})

    def begin_create_or_update(self, endpoint: ManagedOnlineEndpoint, **_: Any) -> Poller:
        traffic = {k: int(v) for k, v in (endpoint.traffic or {}).items() if v}  # SDK strips 0s
        failure = self.s.record("online_endpoints.begin_create_or_update", name=endpoint.name,
                                traffic=traffic)
        body = endpoint._to_rest_online_endpoint(location=LOCATION).as_dict()
        assert body["properties"]["authMode"] == "Key", body
        if traffic:
            unknown = [d for d in traffic if (endpoint.name, d) not in self.s.deployments]
            failed = [d for d in traffic if (endpoint.name, d) in self.s.deployments
                      and self.s.deployments[(endpoint.name, d)]["state"] != "Succeeded"]
            if unknown or failed or sum(traffic.values()) != 100:
                raise http_error(400, f"invalid traffic {traffic}: unknown {unknown}, "
                                      f"failed {failed}")
        if failure is not None:
            return Poller(error=failure.error)
        body["properties"]["traffic"] = traffic
        body["properties"]["scoringUri"] = (
            f"https://{endpoint.name}.{LOCATION}.inference.ml.azure.com/score"
        )
        body["properties"]["provisioningState"] = "Succeeded"
        body["id"] = f"{WORKSPACE_ID}/onlineEndpoints/{endpoint.name}"
        body["name"] = endpoint.name
        self.s.endpoints[endpoint.name] = {"rest": body}
        return Poller(result=OnlineEndpoint._from_rest_object(rest.OnlineEndpoint(body)))

    def invoke(self, endpoint_name: str, *, request_file: str | None = None,
               deployment_name: str | None = None, **_: Any) -> str:
        failure = self.s.record("online_endpoints.invoke", name=endpoint_name,
                                deployment=deployment_name)
        if failure is not None:
            raise failure.error
        if endpoint_name not in self.s.endpoints:
            raise not_found(f"endpoint {endpoint_name}")
        if deployment_name is None:
            traffic = self.traffic(endpoint_name)
            if not traffic:
                raise http_error(424, "no deployment has traffic")
            deployment_name = max(traffic, key=traffic.get)
        key = (endpoint_name, deployment_name)
        if key not in self.s.deployments:
            raise http_error(400, f"deployment {deployment_name} does not exist")
        payload = Path(request_file).read_text()
        return json.dumps(self._scorer(key).run(payload))

    def _scorer(self, key: tuple[str, str]) -> Any:
        """The deployment's score.py, loaded from its uploaded code folder, init() run once."""
        if key not in self.s.scorers:
            deployment = self.s.deployments[key]
            name, version = _model_key(deployment["model"])
            model_dir = self.s.models[(name, version)]["folder"].parent  # AZUREML_MODEL_DIR
            script = deployment["code"] / deployment["scoring_script"]
            spec = importlib.util.spec_from_file_location(f"score_{uuid.uuid4().hex}", script)
            module = importlib.util.module_from_spec(spec)
            with _scoring_process_env(model_dir):
                spec.loader.exec_module(module)
                module.init()
            self.s.scorers[key] = module
        return self.s.scorers[key]


class OnlineDeployments:
    def __init__(self, service: Service) -> None:
        self.s = service

    def _entity(self, key: tuple[str, str]) -> OnlineDeployment:
        entity = OnlineDeployment._from_rest_object(
            rest.OnlineDeployment(json.loads(json.dumps(self.s.deployments[key]["rest"])))
        )
        entity.endpoint_name = key[0]
        return entity

    def begin_create_or_update(self, deployment: ManagedOnlineDeployment, **_: Any) -> Poller:
        key = (deployment.endpoint_name, deployment.name)
        failure = self.s.record(
            "online_deployments.begin_create_or_update", name=deployment.name,
            endpoint=deployment.endpoint_name, model=deployment.model,
            environment=deployment.environment, instance_type=deployment.instance_type,
            instance_count=deployment.instance_count,
        )
        validate_scoring_script(deployment)  # what the SDK checks before it uploads
        if deployment.endpoint_name not in self.s.endpoints:
            raise not_found(f"endpoint {deployment.endpoint_name}")
        assert _model_key(deployment.model) in self.s.models, deployment.model
        env_name, _, env_version = deployment.environment.removeprefix("azureml:").partition(":")
        assert (env_name, env_version) in self.s.environments, deployment.environment
        assert key not in self.s.deployments, "the backend deletes a slot before reusing it"
        code = self.s.upload(Path(deployment.code_configuration.code), "code")
        body = deployment._to_rest_object(location=LOCATION).as_dict()
        body["id"] = f"{WORKSPACE_ID}/onlineEndpoints/{key[0]}/deployments/{key[1]}"
        body["name"] = deployment.name
        body["properties"]["scaleSettings"] = {"scaleType": "Default"}
        state = "Failed" if failure is not None else "Succeeded"
        body["properties"]["provisioningState"] = state
        self.s.deployments[key] = {
            "rest": body, "state": state, "code": code, "model": deployment.model,
            "scoring_script": deployment.code_configuration.scoring_script,
        }
        if failure is not None:
            return Poller(error=failure.error)
        return Poller(result=self._entity(key))

    def get(self, name: str, endpoint_name: str, **_: Any) -> OnlineDeployment:
        self.s.record("online_deployments.get", name=name, endpoint=endpoint_name)
        if (endpoint_name, name) not in self.s.deployments:
            raise not_found(f"deployment {name}")
        return self._entity((endpoint_name, name))

    def list(self, endpoint_name: str, **_: Any) -> list[OnlineDeployment]:
        self.s.record("online_deployments.list", endpoint=endpoint_name)
        return [self._entity(k) for k in self.s.deployments if k[0] == endpoint_name]

    def begin_delete(self, name: str, endpoint_name: str, **_: Any) -> Poller:
        failure = self.s.record("online_deployments.begin_delete", name=name,
                                endpoint=endpoint_name)
        key = (endpoint_name, name)
        if key not in self.s.deployments:
            raise not_found(f"deployment {name}")
        share = (self.s.endpoints[endpoint_name]["rest"]["properties"].get("traffic") or {})
        if share.get(name):
            raise http_error(400, f"deployment {name} has {share[name]}% traffic")
        if failure is not None:
            return Poller(error=failure.error)
        del self.s.deployments[key]
        self.s.scorers.pop(key, None)
        return Poller()


class Jobs:
    """Command jobs: validated and serialized by the SDK, then run here in a subprocess."""

    def __init__(self, service: Service) -> None:
        self.s = service
        self.statuses: list[str] = []  # what successive get() calls report before the end

    def _entity(self, name: str) -> Job:
        job = self.s.jobs[name]
        body = json.loads(json.dumps(job["rest"]))
        body["properties"]["status"] = self.statuses.pop(0) if self.statuses else job["status"]
        return Job._from_rest_object(rest.JobBase(body))

    def create_or_update(self, job: Any, **_: Any) -> Job:
        if isinstance(job, Command):  # as the SDK does with a builder
            job = job._to_job()
        name = f"job-{len(self.s.jobs) + 1}"
        failure = self.s.record("jobs.create_or_update", name=name, compute=job.compute,
                                environment=job.environment, command=job.command)
        job._validate()
        body = job._to_rest_object().as_dict()
        code = self.s.upload(Path(job.code), "code")
        inputs = {k: self.s.upload(Path(v.path), "inputs") for k, v in job.inputs.items()}
        outputs = {k: self.s.root / "outputs" / name / k for k in job.outputs}
        body["id"] = f"{WORKSPACE_ID}/jobs/{name}"
        body["name"] = name
        self.s.jobs[name] = {"rest": body, "status": "Running", "outputs": outputs}
        if failure is None:
            self._run(name, job.command, code, inputs, outputs)
        else:
            self.s.jobs[name]["status"] = "Failed"
        return self._entity(name)

    def _run(self, name: str, command: str, code: Path, inputs: dict[str, Path],
             outputs: dict[str, Path]) -> None:
        for key, path in inputs.items():
            command = command.replace("${{inputs." + key + "}}", str(path))
        for key, path in outputs.items():
            path.mkdir(parents=True)
            command = command.replace("${{outputs." + key + "}}", str(path))
        argv = command.split()
        assert argv[0] == "python", command
        done = subprocess.run([self.s.python, *argv[1:]], cwd=code, capture_output=True,
                              text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
        self.s.jobs[name]["log"] = done.stdout + done.stderr
        self.s.jobs[name]["status"] = "Completed" if done.returncode == 0 else "Failed"

    def get(self, name: str) -> Job:
        self.s.record("jobs.get", name=name)
        if name not in self.s.jobs:
            raise not_found(f"job {name}")
        return self._entity(name)

    def begin_cancel(self, name: str, **_: Any) -> Poller:
        self.s.record("jobs.begin_cancel", name=name)
        self.s.jobs[name]["status"] = "Canceled"
        return Poller()

    def download(self, name: str, *, download_path: str = ".", output_name: str | None = None,
                 **_: Any) -> None:
        self.s.record("jobs.download", name=name, output=output_name)
        if self.s.jobs[name]["status"] not in TERMINAL:
            raise http_error(400, f"job {name} is not finished")
        source = self.s.jobs[name]["outputs"][output_name]
        shutil.copytree(source, Path(download_path) / "named-outputs" / output_name)


class Workspaces:
    """The workspace as ARM describes it, parsed by the SDK's own entity (its MLflow URI)."""

    def __init__(self, service: Service) -> None:
        self.s = service

    def get(self, name: str | None = None, **kwargs: Any) -> Workspace:
        self.s.record("workspaces.get", name=name)
        if name != WS:
            raise not_found(f"workspace {name}")
        body = {"name": WS, "location": LOCATION, "id": WORKSPACE_ID,
                "properties": {"mlFlowTrackingUri": MLFLOW_URI}}
        return Workspace._from_rest_object(rest.Workspace(body))


class FakeMLClient:
    """MLClient's operation groups over one in-memory workspace."""

    def __init__(self, root: Path, python: str = sys.executable) -> None:
        self.service = Service(root=Path(root), python=python)
        self.subscription_id, self.resource_group_name, self.workspace_name = SUB, RG, WS
        self.models = Models(self.service)
        self.environments = Environments(self.service)
        self.online_endpoints = OnlineEndpoints(self.service)
        self.online_deployments = OnlineDeployments(self.service)
        self.jobs = Jobs(self.service)
        self.workspaces = Workspaces(self.service)

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        return self.service.calls

    def writes(self) -> list[tuple[str, dict[str, Any]]]:
        """The calls that change something (or score), in order: the protocol's steps."""
        reads = (".get", ".list", ".download")
        return [(op, d) for op, d in self.calls if not op.endswith(reads)]

    def fail(self, operation: str, error: Exception, *, at_result: bool = False,
             **match: Any) -> None:
        """Make the next `operation` whose details include `match` fail with `error`."""
        self.service.failures.append(_Failure(
            operation, error, at_result,
            lambda details: all(details.get(k) == v for k, v in match.items()),
        ))

    def traffic(self, endpoint: str) -> dict[str, int]:
        return self.online_endpoints.traffic(endpoint)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
