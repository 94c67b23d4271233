"""Which models `mlops up` trains: every model of the configs folder without a champion, each
through its own manual training deployment, and the named spec unless its model has one."""

from __future__ import annotations

import shutil

from mlops.core.settings import Settings
from mlops.registry.local import LocalRegistry
from tests.conftest import ROOT, write_spec
from tests.serving._models import MODEL, register_toy, toy_frame
from tools.stack import _untrained


def _settings(tmp_path) -> Settings:
    """churn and diabetes (the shipped specs) and the toy model, which has a champion."""
    configs = tmp_path / "configs"
    configs.mkdir()
    for name in ("churn", "diabetes"):
        shutil.copy(ROOT / "configs" / f"{name}.yaml", configs)
    write_spec(configs, MODEL, {"name": MODEL})
    settings = Settings(state_dir=tmp_path / "state", configs_dir=configs)
    version = register_toy(settings.state_dir / "registry", toy_frame(), 5)
    LocalRegistry(settings.registry_location).set_alias(MODEL, version.version)
    return settings


def test_up_trains_each_model_without_a_champion_through_its_own_deployment(tmp_path):
    settings = _settings(tmp_path)
    configs = settings.configs_dir
    assert _untrained(settings, None) == {
        "churn": ("training/training-manual", str(configs / "churn.yaml")),
        "diabetes": ("training/training-manual-diabetes", str(configs / "diabetes.yaml")),
    }


def test_the_named_spec_replaces_its_models_file_and_one_elsewhere_uses_the_default(tmp_path):
    settings = _settings(tmp_path)
    weak = write_spec(tmp_path, "weak", {"name": "diabetes"})
    other = write_spec(tmp_path, "other", {"name": "other"})
    assert _untrained(settings, weak)["diabetes"] == ("training/training-manual-diabetes", weak)
    assert _untrained(settings, other)["other"] == ("training/training-manual", other)


def test_a_named_spec_whose_model_has_a_champion_is_not_retrained(tmp_path):
    settings = _settings(tmp_path)
    again = write_spec(tmp_path, "again", {"name": MODEL})
    assert MODEL not in _untrained(settings, again)
