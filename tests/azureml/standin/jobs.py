"""Command jobs in the REST stand-in: submitted by the SDK, run here for real.

A job's code folder and inputs are downloaded from the datastore (Azurite) where the SDK
uploaded them; its command runs in a subprocess with the given Python (``.venv-azmlinfsrv``, the
shipped environment); its outputs are uploaded where Azure ML puts them
(``azureml/<job>/<output>/`` on the default datastore), so ``jobs.download`` fetches them as it
does from Azure.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from azure.storage.blob import ContainerClient

from tests.azureml.standin.http import (
    LOCATION,
    MFE_HOST,
    RG,
    SUB,
    WS,
    Reply,
    ServiceError,
    body_of,
)

TERMINAL_JOB = {"Completed", "Failed", "Canceled"}


class JobRoutes:
    """The jobs routes of a Workspace (mixed into it)."""

    python: str | None = None  # the shipped environment's interpreter; None: jobs never run
    computes: frozenset[str] = frozenset({"cpu-cluster"})

    def _add_job_routes(self, ws: str) -> None:
        n = r"(?P<name>[^/]+)"
        self.job_statuses: list[str] = []  # what successive GETs report before the real end
        self.job_logs: dict[str, str] = {}
        self.route("PUT", f"{ws}/jobs/{n}", self._put_job)
        self.route("GET", f"{ws}/jobs/{n}", self._get_job)
        self.route("POST", f"{ws}/jobs/{n}/cancel", self._cancel_job)
        self.route("GET", "/discovery", self._discovery_urls)
        dataplane = ws.replace(re.escape("/subscriptions"), "", 1)
        self.route("POST", f"/history/v1.0/subscriptions{dataplane}/rundata", self._run_data)
        self.route("POST", f"/data/v1.0/subscriptions{dataplane}/dataversion/"
                           "batchGetResolvedUris", self._resolved_uris)

    def _blobs(self) -> ContainerClient:
        return ContainerClient.from_container_url(
            f"{self.blob_endpoint}/{self.container}?{self.sas_token}")

    def _put_job(self, request: Any, name: str) -> Any:
        sent = body_of(request)
        props = (sent or {}).get("properties") or {}
        if name in self.jobs:
            raise ServiceError(409, "UserError", f"A job named {name} already exists")
        if props.get("jobType") != "Command":
            raise ServiceError(400, "UserError", f"jobType {props.get('jobType')!r}")
        compute = (props.get("computeId") or "").rsplit("/", 1)[-1]
        if compute not in self.computes:
            raise ServiceError(400, "UserError", f"Compute {compute} not found in workspace")
        self._asset_exists(props.get("environmentId"), "environments", self.environments)
        self._asset_exists(props.get("codeId"), "codes", self.codes)
        outputs = {}
        for key, output in (props.get("outputs") or {}).items():
            outputs[key] = {**output, "mode": output.get("mode", "ReadWriteMount"),
                            "uri": f"azureml://datastores/workspaceblobstore/paths/azureml/"
                                   f"{name}/{key}/"}
        body = self._resource("jobs", name, {
            **props, "outputs": outputs, "status": "Starting",
            "services": {"Studio": {"jobServiceType": "Studio",
                                    "endpoint": f"https://ml.azure.com/runs/{name}"}},
        }, f"jobs/{name}")
        self.jobs[name] = body
        if self.python is not None:
            self._run_job(name, props, outputs)
        return Reply(201, body)

    def _run_job(self, name: str, props: dict[str, Any], outputs: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory(prefix=f"job-{name}-") as work, self._blobs() as blobs:
            root = Path(work)
            code_uri = self.codes[_key(props["codeId"])]["properties"]["codeUri"]
            code_prefix = urlsplit(code_uri).path.strip("/").split("/", 1)[1]
            code = _download(blobs, code_prefix, root / "code")
            command = props["command"]
            for key, value in (props.get("inputs") or {}).items():
                path = value["uri"].split("/paths/", 1)[1]
                target = root / "inputs" / key / Path(path).name
                _download(blobs, path, target, single=True)
                command = command.replace("${{inputs." + key + "}}", str(target))
            for key in outputs:
                (root / "outputs" / key).mkdir(parents=True)
                command = command.replace("${{outputs." + key + "}}", str(root / "outputs" / key))
            argv = command.split()
            assert argv[0] == "python", command
            done = subprocess.run([self.python, *argv[1:]], cwd=code, capture_output=True,
                                  text=True, timeout=300,
                                  env={**os.environ, "OMP_NUM_THREADS": "1"})
            self.job_logs[name] = done.stdout + done.stderr
            for key in outputs:
                for file in (root / "outputs" / key).rglob("*"):
                    if file.is_file():
                        blob = f"azureml/{name}/{key}/{file.relative_to(root / 'outputs' / key)}"
                        blobs.upload_blob(blob, file.read_bytes(), overwrite=True)
        self.jobs[name]["properties"]["status"] = (
            "Completed" if done.returncode == 0 else "Failed")

    def _discovery_urls(self, request: Any) -> Any:
        base = f"https://{MFE_HOST}"
        return Reply(200, {key: base for key in (
            "api", "catalog", "experimentation", "history", "modelmanagement", "pipelines",
            "studio")})

    def _run_data(self, request: Any) -> Any:
        """Run history's view of a job: its outputs as data asset ids."""
        name = (body_of(request) or {}).get("runId")
        if name not in self.jobs:
            raise ServiceError(404, "UserError", f"Run {name} not found")
        outputs = {
            key: {"assetId": f"azureml://locations/{LOCATION}/workspaces/{uuid.UUID(int=3)}/"
                             f"data/azureml_{name}_output_data_{key}/versions/1",
                  "type": "UriFolder"}
            for key in self.jobs[name]["properties"]["outputs"]}
        return Reply(200, {"runMetadata": {"runId": name, "status":
                                           self.jobs[name]["properties"]["status"],
                                           "outputs": outputs}})

    def _resolved_uris(self, request: Any) -> Any:
        values = {}
        for asset_id in ((body_of(request) or {}).get("values") or []):
            found = re.search(r"/data/azureml_(.+)_output_data_(.+)/versions/1$", asset_id)
            job, key = found[1], found[2]
            path = self.jobs[job]["properties"]["outputs"][key]["uri"].split("/paths/", 1)[1]
            values[asset_id] = {"uri": f"azureml://subscriptions/{SUB}/resourcegroups/"
                                       f"{RG}/workspaces/{WS}/datastores/"
                                       f"workspaceblobstore/paths/{path}", "type": "UriFolder"}
        return Reply(200, {"values": values})

    def _get_job(self, request: Any, name: str) -> Any:
        if name not in self.jobs:
            raise ServiceError(404, "UserError", f"Job {name} not found")
        body = self.jobs[name]
        if self.job_statuses:
            shown = {**body, "properties": {**body["properties"],
                                            "status": self.job_statuses.pop(0)}}
            return Reply(200, shown)
        return Reply(200, body)

    def _cancel_job(self, request: Any, name: str) -> Any:
        if name not in self.jobs:
            raise ServiceError(404, "UserError", f"Job {name} not found")
        job = self.jobs[name]["properties"]
        if job["status"] in TERMINAL_JOB:
            raise ServiceError(400, "UserError", f"Job {name} is {job['status']}")
        job["status"] = "CancelRequested"

        def finish() -> None:
            job["status"] = "Canceled"

        return self._lro(finish, 202, None)


def _key(arm_id: str) -> tuple[str, str]:
    found = re.search(r"/codes/([^/]+)/versions/([^/]+)$", arm_id)
    assert found, arm_id
    return found[1], found[2]


def _download(blobs: ContainerClient, prefix: str, dest: Path, single: bool = False) -> Path:
    if single:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(blobs.download_blob(prefix).readall())
        return dest
    for blob in blobs.list_blobs(name_starts_with=prefix.rstrip("/") + "/"):
        target = dest / blob.name[len(prefix.rstrip("/")) + 1:]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blobs.download_blob(blob.name).readall())
    return dest
