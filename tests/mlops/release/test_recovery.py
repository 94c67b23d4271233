"""restore_traffic: the old table back once the endpoint answers, within a bounded wait.

The endpoint here is a scripted stand-in of the client protocol (what a restarting endpoint
answers, call by call) and the clock advances only by the pauses taken, so the boundary of the
wait is exact; the real process killed and started again is in tests/tasks.
"""

from __future__ import annotations

import pytest

from mlops.core.errors import EndpointUnreachableError
from mlops.release.recovery import restore_traffic

OLD = {"blue": 100}
HELD = {"green": 50, "blue": 50}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Restarting:
    """Down until `back_at` seconds on `clock`, then up with the held table and `statuses`
    (one dict of deployment statuses per state() call once up, the last one repeated)."""

    def __init__(self, clock: Clock, back_at: float, statuses: list[dict[str, str]]) -> None:
        self.clock, self.back_at, self.statuses = clock, back_at, statuses
        self.traffic, self.calls, self.answered = dict(HELD), 0, 0

    def state(self) -> dict:
        self.calls += 1
        if self.clock() < self.back_at:
            raise EndpointUnreachableError("endpoint at http://x is not reachable: refused")
        self.answered += 1
        status = self.statuses[min(self.answered, len(self.statuses)) - 1]
        return {"traffic": self.traffic,
                "deployments": {n: {"status": s} for n, s in status.items()}}

    def set_traffic(self, table: dict[str, int]) -> dict[str, int]:
        self.traffic = {"blue": table.get("blue", 0), "green": table.get("green", 0)}
        return self.traffic


READY = {"blue": "ready", "green": "ready"}


def _restore(back_at: float, statuses: list[dict[str, str]], wait_s: float,
             poll_s: float = 1.0):
    clock = Clock()
    client = Restarting(clock, back_at, statuses)
    return client, restore_traffic(client, OLD, HELD, wait_s, poll_s, clock.sleep, clock)


@pytest.mark.parametrize(("wait_s", "restored"), [(2.0, True), (1.9, False)])
def test_the_wait_is_bounded(wait_s, restored):
    """An endpoint back 2 s after the failure is found by a wait of 2 s, not of 1.9 s."""
    client, recovery = _restore(2.0, [READY], wait_s)
    assert recovery.restored is restored and recovery.unreachable
    assert recovery.traffic == ({"blue": 100, "green": 0} if restored else HELD)
    assert client.traffic == recovery.traffic
    if not restored:
        assert "not reachable: refused" in recovery.problem


def test_a_restarted_endpoint_gets_the_table_once_its_models_are_loaded():
    client, recovery = _restore(0.25, [{"blue": "loading", "green": "loading"},
                                       {"blue": "loading", "green": "ready"}, READY], 10, 0.25)
    assert recovery.restored and recovery.waited_s == 0.75
    assert client.calls == 4


def test_a_deployment_that_failed_to_load_ends_the_wait_at_once():
    client, recovery = _restore(0.0, [{"blue": "failed", "green": "ready"}], 60)
    assert not recovery.restored and not recovery.unreachable and client.calls == 1
    assert recovery.problem == "deployments not ready to take the traffic back: 'blue' failed"
    assert recovery.traffic == HELD


def test_the_pause_is_never_longer_than_a_second():
    _, recovery = _restore(3.0, [READY], 60, poll_s=30)
    assert recovery.restored and recovery.waited_s == 3.0
