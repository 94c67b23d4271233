"""azure.ai.ml costs seconds to import: only a spec that selects an Azure ML backend pays."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

PROBE = """
import json, sys
import flows.training, tasks.data, tasks.deploy, tasks.evaluation, tasks.registry
import tasks.training, mlops.registry.backend, tools.predict, mlops.azureml, mlops.azureml.shipping
import serving.server
before = sorted(m for m in sys.modules if m.startswith("azure.ai.ml"))
from mlops.registry.backend import registry_for
from mlops.core.settings import Settings
from mlops.core.spec import load_spec
spec = load_spec("configs/churn.yaml", {
    "registry.backend": "azureml", "endpoint.backend": "azureml",
    "azureml": {"subscription_id": "s", "resource_group": "r", "workspace": "w"}})
registry_for(spec, Settings())
print(json.dumps({"before": before, "after": "azure.ai.ml" in sys.modules}))
"""


def test_the_flow_and_tasks_import_without_azure_ml():
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=True)
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["before"] == []
    assert seen["after"] is True  # selecting the backend does import it


def test_the_azure_endpoint_imports_azure_monitor_only_when_a_hold_reads_it():
    probe = ("import json, sys, mlops.endpoint.azureml; "
             "print(json.dumps('azure.monitor.querymetrics' in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) is False
