"""serving/errors.py: one error type with a status and a message, narrow names as subclasses."""

from __future__ import annotations

import copy
import pickle

import pytest

from serving.errors import BundleLoadError, ModelUrlRefused, ScoringInputError, ServingError


@pytest.mark.parametrize(("error", "status"), [
    (ServingError(408, "too slow", close=True), 408),
    (ScoringInputError(422, "missing required columns: ['a']"), 422),
    (BundleLoadError("bundle x: manifest.json is missing"), 422),
    (ModelUrlRefused("model_url 'http://x' is not under an allowed model location"), 403),
])
def test_every_serving_error_has_a_status_and_survives_a_pickle(error, status):
    assert isinstance(error, ServingError) and error.status == status
    assert str(error) == error.message
    for again in (pickle.loads(pickle.dumps(error)), copy.copy(error)):
        assert type(again) is type(error)
        assert (again.status, again.message, again.close) == (status, error.message, error.close)
