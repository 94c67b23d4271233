"""The spec's batch section: passthrough columns must be the spec's, once each."""

from __future__ import annotations

import pytest

from mlops.core.errors import SpecError
from mlops.core.spec import load_spec
from tests.conftest import write_spec


def test_passthrough_names_spec_columns_ignoring_case(tmp_path):
    spec = load_spec(write_spec(tmp_path, "ok", {"batch": {"passthrough": ["Region", "age"]}}))
    assert spec.batch.passthrough == ["Region", "age"]
    assert spec.column("Region").name == "region"


@pytest.mark.parametrize(("batch", "problem"), [
    ({"passthrough": ["regio"]}, r"batch.passthrough names columns the spec does not: \['regio'\]"),
    ({"passthrough": ["region", "REGION"]}, r"batch.passthrough repeats columns: \['region'\]"),
    ({"rows_per_batch": 1023}, r"batch.rows_per_batch: Input should be greater than or equal"),
])
def test_bad_batch_settings_are_named(tmp_path, batch, problem):
    with pytest.raises(SpecError, match=problem):
        load_spec(write_spec(tmp_path, "bad", {"batch": batch}))


def test_the_batch_section_does_not_change_the_spec_hash(tmp_path):
    plain = load_spec(write_spec(tmp_path, "a", {}))
    batch = load_spec(write_spec(tmp_path, "b", {"batch": {"passthrough": ["region"]}}))
    assert plain.spec_hash() == batch.spec_hash()
