"""Putting a failed release's traffic back, also when the endpoint stopped answering.

A release that fails (a guard breached, the endpoint gone during a hold) returns the traffic
to the table from before it began. An endpoint that does not answer may be restarting: the
local endpoint comes back with its saved deployments and traffic, loads their models again, and
then takes a new table. So the table is retried for a bounded time
(``endpoint.guards.unreachable_wait``) until the deployments it names are loaded; then it is
set, or the caller learns the state last seen, to name it in the failure and the history.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlops.core.errors import EndpointUnreachableError, shorten
from mlops.endpoint.protocol import EndpointClient

RETRY_S = 1.0  # the longest pause between two tries: a restarted endpoint is back in seconds
GONE = ("failed", "missing")  # statuses no wait will change


@dataclass(frozen=True)
class Recovery:
    """How the attempt ended: the table set (`restored`), or what was last seen and why not.

    `traffic` is the table the endpoint holds now when restored, else the table last seen;
    `unreachable` says whether the endpoint failed to answer at least once.
    """

    restored: bool
    traffic: dict[str, int]
    waited_s: float
    unreachable: bool
    problem: str = ""


def _not_loaded(state: dict[str, Any], table: dict[str, int]) -> dict[str, str]:
    """Deployments the table gives traffic to that cannot take it yet, and their status."""
    deployments, pending = state.get("deployments", {}), {}
    for name, share in table.items():
        status = deployments[name].get("status", "ready") if name in deployments else "missing"
        if share > 0 and status != "ready":
            pending[name] = status
    return pending


def restore_traffic(
    client: EndpointClient, table: dict[str, int], last_seen: dict[str, int], wait_s: float,
    poll_s: float, sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Recovery:
    """Set `table` once the endpoint answers and the deployments it names are loaded.

    Args:
        table: The traffic to restore (the table before the release).
        last_seen: The table the caller last set, named if the endpoint never answers.
        wait_s: How long to keep trying.
        poll_s: The pause between tries (at most `RETRY_S`).

    Raises:
        EndpointError: the endpoint answered but refused the table (not a matter of waiting).
    """
    start, problem, unreachable = clock(), "", False
    while True:
        try:
            state = client.state()
            last_seen = {k: int(v) for k, v in state.get("traffic", {}).items()}
            pending = _not_loaded(state, table)
            if not pending:
                return Recovery(True, client.set_traffic(table), clock() - start, unreachable)
            problem = "deployments not ready to take the traffic back: " + ", ".join(
                f"'{n}' {s}" for n, s in pending.items())
            if any(status in GONE for status in pending.values()):
                return Recovery(False, last_seen, clock() - start, unreachable, problem)
        except EndpointUnreachableError as exc:
            problem, unreachable = shorten(str(exc), 200), True
        if clock() - start >= wait_s:
            return Recovery(False, last_seen, clock() - start, unreachable, problem)
        sleep(min(poll_s, RETRY_S, max(0.0, wait_s - (clock() - start))))
