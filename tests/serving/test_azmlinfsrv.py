"""deployments/azureml/score.py under Azure ML's own inference server answers like the endpoint.

The server runs the code folder the Azure ML endpoint backend ships (``score.py`` and
``serving/`` only, staged by ``mlops.azureml.shipping``) as its app root, on a model folder laid
out as Azure mounts one (``AZUREML_MODEL_DIR/<folder>/manifest.json``). Needs the separate
environment `.venv-azmlinfsrv` (requirements-azmlinfsrv.lock). Without it the test skips on a
developer machine and fails in CI, where the environment must be built.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from mlops.azureml.shipping import stage_scoring_code
from mlops.endpoint.payloads import frame_to_request
from tests.conftest import ROOT, free_port
from tests.serving._models import FEATURES
from tests.serving.conftest import AUTH_HEADER, stop

pytestmark = [pytest.mark.service, pytest.mark.slow]

AZ_VENV = ROOT / ".venv-azmlinfsrv"
AZMLINFSRV = AZ_VENV / "bin" / "azmlinfsrv"
ENTRY_SCRIPT = ROOT / "deployments" / "azureml" / "score.py"


def start_azmlinfsrv(model_dir: str | Path, port: int, log: Path, workers: int = 1,
                     entry_script: Path = ENTRY_SCRIPT,
                     app_root: Path = ROOT) -> subprocess.Popen[bytes]:
    """Start azmlinfsrv on `port` with `model_dir` as AZUREML_MODEL_DIR; wait for its health."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AML_APP_ROOT": str(app_root)}
    env.pop("PYTHONPATH", None)  # nothing but the app root may provide `serving`
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [str(AZMLINFSRV), "--entry_script", str(entry_script), "--model_dir",
             str(model_dir), "--port", str(port), "--worker_count", str(workers)],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=app_root,
        )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    stop(proc)
    raise RuntimeError(f"azmlinfsrv did not come up:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def azml(toys, tmp_path_factory) -> Iterator[str]:
    if not AZMLINFSRV.exists():
        message = (
            f"{AZ_VENV} is missing; create it with: python3.11 -m venv {AZ_VENV.name} && "
            f"{AZ_VENV.name}/bin/pip install --require-hashes -r requirements-azmlinfsrv.lock"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    work = tmp_path_factory.mktemp("azml")
    code = stage_scoring_code(work / "code")  # exactly what a deployment uploads
    model_dir = work / "azureml-models" / "toy" / "1"
    shutil.copytree(toys.v1.url, model_dir / "bundle")  # Azure mounts the registered folder
    port = free_port()
    proc = start_azmlinfsrv(model_dir, port, work / "azml.log", entry_script=code / "score.py",
                            app_root=code)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def _payloads(frame) -> dict[str, bytes]:
    records = orjson.loads(frame.to_json(orient="records"))
    return {
        "split": orjson.dumps(frame_to_request(frame)),
        "records in input_data": orjson.dumps({"input_data": records}),
        "columnar with probabilities": orjson.dumps({
            "input_data": {k: list(v.values()) for k, v in orjson.loads(frame.to_json()).items()},
            "return_probabilities": True,
        }),
        "renamed and extra columns": orjson.dumps({"data": [
            {"NUM-A": r["num_a"], "tenure_months": r["Tenure Months"], "cat_c": r["cat_c"],
             "ignored": 1} for r in records
        ]}),
    }


def test_azure_entry_script_answers_like_the_local_endpoint(azml, blue_green, server, toys):
    frame = toys.frame[FEATURES].head(25)
    local_headers = {**AUTH_HEADER, "azureml-model-deployment": "blue",
                     "content-type": "application/json"}
    with httpx.Client(timeout=30) as http:
        for name, body in _payloads(frame).items():
            local = http.post(f"{server.url}/score", content=body, headers=local_headers)
            azure = http.post(f"{azml}/score", content=body,
                              headers={"content-type": "application/json"})
            assert azure.status_code == local.status_code == 200, (name, azure.text)
            expected = {k: v for k, v in local.json().items() if k != "deployment"}
            assert azure.json() == expected, name


@pytest.mark.parametrize(
    ("body", "status"),
    [(b'{"input_data": [{"num_a": 1.0}]}', 422),
     (b'{"input_data": [{"num_a": "x", "Tenure Months": 1, "cat_c": "red"}]}', 422),
     (b'{"input_data": []}', 422),
     (b'{"rows": 1}', 400),
     (b'{"input_data": 7', 400)],
)
def test_bad_input_gets_the_same_status_and_message(azml, blue_green, server, body, status):
    with httpx.Client(timeout=30) as http:
        local = http.post(f"{server.url}/score", content=body,
                          headers={**AUTH_HEADER, "azureml-model-deployment": "blue"})
        azure = http.post(f"{azml}/score", content=body,
                          headers={"content-type": "application/json"})
    assert azure.status_code == local.status_code == status
    assert azure.json()["error"] == local.json()["error"]
