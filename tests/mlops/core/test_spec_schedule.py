"""The spec's schedule section and the drift cooldown: defaults, words, cron, errors."""

from __future__ import annotations

import re

import pytest
import yaml

from mlops.core.errors import SpecError
from mlops.core.spec import load_spec
from tests.conftest import ROOT, write_spec


def test_defaults_run_everything_at_the_documented_times():
    spec = load_spec(ROOT / "configs" / "churn.yaml")
    assert (spec.schedule.nightly, spec.schedule.drift, spec.schedule.batch) == (
        "0 2 * * *", "0 * * * *", "0 4 * * *")
    assert spec.schedule.on_new_data and spec.schedule.timezone == "UTC"
    assert all(spec.schedule.active(k) for k in ("nightly", "drift", "batch", "on_new_data"))
    assert spec.drift.cooldown_hours == 24


def test_yaml_off_words_and_cron_are_read(tmp_path):
    # unquoted `off` is YAML's false: it must still mean off, not fail or mean on
    path = tmp_path / "s.yaml"
    raw = yaml.safe_load((ROOT / "configs" / "churn.yaml").read_text())
    path.write_text(yaml.safe_dump(raw) + 'schedule: {nightly: "0 3 * * 1-5", drift: daily}\n')
    spec = load_spec(path)
    assert spec.schedule.nightly == "0 3 * * 1-5" and spec.schedule.drift == "0 0 * * *"
    path.write_text(path.read_text().replace(
        'schedule: {nightly: "0 3 * * 1-5", drift: daily}',
        "schedule: {batch: off, on_new_data: off}"))
    spec = load_spec(path)
    assert spec.schedule.batch == "off" and not spec.schedule.active("batch")
    assert spec.schedule.on_new_data is False and not spec.schedule.active("on_new_data")
    assert spec.schedule.active("nightly")


@pytest.mark.parametrize(("value", "seen"), [
    ("every hour", "every hour"), ("0 2 * *", "0 2 * *"), ("0 2 * * * *", "0 2 * * * *"),
])
def test_a_bad_schedule_names_the_field_and_value(tmp_path, value, seen):
    spec = write_spec(tmp_path, "bad", {"name": "bad"})
    with open(spec, "a") as out:
        out.write(yaml.safe_dump({"schedule": {"drift": value}}))
    with pytest.raises(SpecError, match=rf"schedule.drift: .*'{re.escape(seen)}' is not 'off'"):
        load_spec(spec)


def test_schedule_and_cooldown_do_not_change_the_spec_hash(tmp_path):
    base = load_spec(ROOT / "configs" / "churn.yaml")
    changed = load_spec(ROOT / "configs" / "churn.yaml",
                        {"schedule": {"nightly": "off"}, "drift.cooldown_hours": 2})
    assert changed.schedule.nightly == "off" and changed.drift.cooldown_hours == 2
    assert changed.spec_hash() == base.spec_hash()


def test_a_negative_cooldown_is_refused():
    with pytest.raises(SpecError, match="drift.cooldown_hours"):
        load_spec(ROOT / "configs" / "churn.yaml", {"drift.cooldown_hours": -1})
