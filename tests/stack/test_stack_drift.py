"""The drift check in the local stack: drifted requests to the endpoint start a retraining run.

Runs before test_stack_e2e.py's last test (which stops the stack): pytest takes files in order.
"""

from __future__ import annotations

import time

import pandas as pd
import pytest
from prefect import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.deployments import run_deployment

from mlops.endpoint.payloads import frame_to_request
from tests.conftest import spec_endpoint
from tests.stack.conftest import Stack
from tools.datasets import make_churn
from tools.stack import stack_api

pytestmark = [pytest.mark.slow, pytest.mark.service]

DRIFT = {"tenure_months": 2.0, "monthly_charges": 2.0, "support_calls": 2.0, "age": 2.0,
         "avg_session_minutes": 2.0, "days_since_last_login": 2.0, "contract": 0.9,
         "internet_service": 0.9}


def _collected_rows(stack: Stack) -> int:
    folder = stack.settings.state_dir / "inference"
    files = list(folder.rglob("*.parquet"))
    return sum(len(pd.read_parquet(f)) for f in files)


def test_drifted_requests_lead_to_a_retraining_run(local_stack: Stack):
    endpoint = spec_endpoint(local_stack.spec_path, local_stack.settings)
    rows = make_churn(1500, seed=77, drift=DRIFT).drop(columns=["churned"])
    for start in range(0, len(rows), 100):
        endpoint.score(frame_to_request(rows.iloc[start:start + 100]))
    deadline = time.monotonic() + 120
    while _collected_rows(local_stack) < 1500 and time.monotonic() < deadline:
        time.sleep(1)  # the endpoint writes its inference batches off the request path
    assert _collected_rows(local_stack) >= 1500

    with stack_api(local_stack.settings):
        check = run_deployment(
            "drift-check/drift-check",
            parameters={"spec_path": local_stack.spec_path}, timeout=600,
        )
        assert check.state.is_completed(), check.state
        with get_client(sync_client=True) as client:
            started = [
                run for run in client.read_flow_runs(
                    deployment_filter=DeploymentFilter(
                        name=DeploymentFilterName(any_=["training-manual"])
                    ),
                    limit=50, offset=0,
                )
                if (run.parameters.get("reason") or "").startswith("drift")
            ]
    assert len(started) == 1, [r.parameters for r in started]
    assert started[0].parameters["spec_path"] == local_stack.spec_path
    assert started[0].parameters["report_url"]
