"""Every model's deployments from prefect.yaml and configs/: names, parameters, schedules,
triggers; no prefect.yaml edit for a new spec."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from mlops.core.errors import SpecError
from tests.conftest import ROOT, write_spec
from tools.deployments import SCHEDULE_KIND, render

TEMPLATE = [d["name"] for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]]


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    """The two shipped specs plus a third one, added as a file only."""
    folder = tmp_path / "configs"
    folder.mkdir()
    for name in ("churn", "diabetes"):
        shutil.copy(ROOT / "configs" / f"{name}.yaml", folder)
    write_spec(folder, "fraud", {"name": "fraud"})
    return folder


def _by_name(rendered: dict) -> dict[str, dict]:
    return {d["name"]: d for d in rendered["deployments"]}


def test_each_spec_gets_the_whole_set_and_the_default_keeps_its_names(configs):
    names = set(_by_name(render(configs=configs)))
    assert names == {*TEMPLATE, *(f"{n}-diabetes" for n in TEMPLATE),
                     *(f"{n}-fraud" for n in TEMPLATE)}
    assert set(TEMPLATE) == set(SCHEDULE_KIND)


def test_a_models_deployments_name_its_spec_folders_and_training(configs):
    deployments = _by_name(render(configs=configs))
    fraud_spec = str(configs / "fraud.yaml")
    for name in TEMPLATE:
        params = deployments[f"{name}-fraud"]["parameters"]
        assert params["spec_path"] == fraud_spec, name
    assert deployments["watch-data-fraud"]["parameters"]["location"] == "data/incoming/fraud"
    assert deployments["watch-data-fraud"]["parameters"]["model"] == "fraud"
    assert deployments["watch-data"]["parameters"]["location"] == "data/incoming/churn"
    assert deployments["batch-scoring-nightly-fraud"]["parameters"]["output_url"] == \
        "data/scores/fraud"
    assert deployments["drift-check-fraud"]["parameters"]["training_deployment"] == \
        "training/training-manual-fraud"
    assert deployments["drift-check"]["parameters"]["training_deployment"] == \
        "training/training-manual"
    assert "model:fraud" in deployments["training-nightly-fraud"]["tags"]


def test_event_triggers_match_only_their_model(configs):
    deployments = _by_name(render(configs=configs))
    for model, suffix in (("churn", ""), ("diabetes", "-diabetes"), ("fraud", "-fraud")):
        for name in ("training-on-new-data", "batch-scoring-on-new-data"):
            [trigger] = deployments[f"{name}{suffix}"]["triggers"]
            assert trigger["match"] == {"mlops.model": model}, (name, model)
            assert trigger["enabled"] is True


def test_the_spec_reschedules_or_pauses_each(configs):
    spec = yaml.safe_load((configs / "diabetes.yaml").read_text())
    spec["schedule"] = {"nightly": "0 3 * * *", "drift": "off", "on_new_data": False,
                        "timezone": "Europe/Berlin"}
    (configs / "diabetes.yaml").write_text(yaml.safe_dump(spec))
    deployments = _by_name(render(configs=configs))
    [nightly] = deployments["training-nightly-diabetes"]["schedules"]
    assert (nightly["cron"], nightly["timezone"], nightly["active"]) == (
        "0 3 * * *", "Europe/Berlin", True)
    assert deployments["drift-check-diabetes"]["schedules"][0]["active"] is False
    assert deployments["watch-data-diabetes"]["schedules"][0]["active"] is False
    assert deployments["training-on-new-data-diabetes"]["triggers"][0]["enabled"] is False
    assert deployments["batch-scoring-nightly-diabetes"]["schedules"][0]["active"] is True
    # the other models keep the defaults
    assert deployments["training-nightly"]["schedules"][0]["cron"] == "0 2 * * *"
    assert deployments["drift-check-fraud"]["schedules"][0]["active"] is True


def test_two_specs_of_one_model_are_refused(configs):
    write_spec(configs, "churn-copy", {})
    with pytest.raises(SpecError, match="churn-copy.yaml and .*/churn.yaml both name "
                                        "model 'churn'"):
        render(configs=configs)


def test_a_template_deployment_without_a_schedule_kind_is_refused(configs, tmp_path):
    project = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    project["deployments"].append({**project["deployments"][0], "name": "training-weekly"})
    prefect_file = tmp_path / "prefect.yaml"
    prefect_file.write_text(yaml.safe_dump(project))
    with pytest.raises(SpecError, match="'training-weekly' has no entry .*SCHEDULE_KIND"):
        render(prefect_file=prefect_file, configs=configs)
