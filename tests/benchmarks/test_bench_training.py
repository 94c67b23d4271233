"""The training benchmark reads tracking's cost as a crossover: the effect of going first in a
round cancels out, whichever side it favours."""

from __future__ import annotations

import pytest

from benchmarks.bench_training import crossover


@pytest.mark.parametrize("place", [1.6, -0.7, 0.0])
def test_the_place_in_the_round_cancels_out(place):
    cost = 0.3
    noise = [0.1, -0.2, 0.0, 0.2, -0.1, 0.05, 0.0]
    # tracking goes first in rounds 1, 3, 5, 7: those rounds carry the place's effect
    added = [cost + (place if i % 2 == 0 else -place) + n for i, n in enumerate(noise)]
    got_cost, got_place = crossover(added)
    assert got_cost == pytest.approx(cost, abs=0.11)
    assert got_place == pytest.approx(place, abs=0.11)


def test_one_round_is_its_own_difference():
    assert crossover([0.4]) == (0.4, 0.0)
