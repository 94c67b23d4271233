"""The canary guards' durations: how long a release waits for an endpoint that went away."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mlops.core.spec.targets import CanaryGuards


@pytest.mark.parametrize(("given", "seconds"), [
    ({}, 60.0),  # the default poll (5 s): at least 60 s
    ({"poll": "5.5s"}, 66.0),  # 12 polls once they exceed a minute
    ({"poll": 1, "unreachable_wait": "2m"}, 120.0),
    ({"unreachable_wait": 0}, 0.0),  # fail at once, naming the state left
])
def test_the_wait_for_an_unreachable_endpoint(given, seconds):
    assert CanaryGuards(**given).unreachable_wait_s == seconds


def test_a_wait_that_is_not_a_duration_is_refused():
    with pytest.raises(ValidationError, match="a duration is a number of seconds"):
        CanaryGuards(unreachable_wait="soon")
