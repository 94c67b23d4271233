"""The endpoint's two traffic tables and their rules, Azure ML's: live and mirror traffic.

The live table gives each deployment a whole percentage of the requests, summing to 100, and
only loaded deployments get a share. The mirror table copies a share of the live requests to
one deployment (``serving.mirror`` sends the copies): at most one deployment, at most 50%, and
only one that exists, is loaded and has no live traffic (a deployment takes live or mirror
traffic, not both); giving it live traffic takes its mirror traffic off.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from serving.errors import ServingError

READY = "ready"  # a deployment's status once its model answers (serving.state)


def traffic_problems(table: Any, deployments: dict[str, Any]) -> list[str]:
    """Everything wrong with a live traffic table for `deployments` (by name, each with its
    `status`)."""
    if not isinstance(table, dict):
        return ['expected an object like {"blue": 90, "green": 10}']
    problems = [f"unknown deployment '{n}'" for n in table if n not in deployments]
    bad = [n for n, v in table.items() if isinstance(v, bool) or not isinstance(v, int)
           or not 0 <= v <= 100]
    problems += [f"'{n}' must be a whole number from 0 to 100, got {table[n]!r}" for n in bad]
    if problems:
        return problems
    unloaded = [n for n, v in table.items() if v > 0 and deployments[n].status != READY]
    problems += [f"deployment '{n}' is {deployments[n].status}" for n in unloaded]
    if sum(table.values()) != 100:
        problems.append(f"weights must sum to 100, got {sum(table.values())}")
    return problems


MAX_SHARE = 50  # Azure ML's limit, which keeps copies from eating the endpoint's bandwidth


def mirror_problems(
    table: Any, deployments: dict[str, Any], traffic: dict[str, int],
) -> list[str]:
    """Everything wrong with a mirror traffic table for `deployments` (by name, each with its
    `status`) and the live traffic table."""
    if not isinstance(table, dict):
        return ['expected an object like {"green": 10}']
    problems = [f"unknown deployment '{n}'" for n in table if n not in deployments]
    bad = [n for n, v in table.items() if isinstance(v, bool) or not isinstance(v, int)
           or not 0 <= v <= MAX_SHARE]
    problems += [f"'{n}' must be a whole number from 0 to {MAX_SHARE}, got {table[n]!r}"
                 for n in bad]
    if problems:
        return problems
    mirrored = sorted(n for n, v in table.items() if v > 0)
    if len(mirrored) > 1:
        problems.append(f"mirror traffic goes to one deployment only, got {mirrored}")
    problems += [f"deployment '{n}' has {traffic[n]}% of the live traffic; a deployment takes "
                 "live or mirror traffic, not both" for n in mirrored if traffic.get(n, 0) > 0]
    problems += [f"deployment '{n}' is {deployments[n].status}" for n in mirrored
                 if deployments[n].status != READY]
    return problems


class MirrorTable:
    """Which deployment gets copies of live requests, and which share of them (in percent)."""

    def __init__(self, shares: dict[str, int] | None = None,
                 rng: random.Random | None = None) -> None:
        """`rng`: the draws' source (seeded in tests); default: one of its own."""
        self.target: str | None = None
        self.share = 0
        self._rng = rng or random.Random()  # noqa: S311 - a sample, not a secret
        self._assign(shares or {})

    def _assign(self, shares: dict[str, int]) -> None:
        on = [(n, v) for n, v in shares.items() if v > 0]
        self.target, self.share = on[0] if on else (None, 0)

    @property
    def shares(self) -> dict[str, int]:
        return {self.target: self.share} if self.target else {}

    def set(self, table: Any, deployments: dict[str, Any], traffic: dict[str, int]) -> None:
        """Replace the table (deployments left out get no copies).

        Raises:
            ServingError: 422 naming every problem (`mirror_problems`); nothing changes.
        """
        problems = mirror_problems(table, deployments, traffic)
        if problems:
            raise ServingError(422, "invalid mirror traffic table: " + "; ".join(problems))
        self._assign(table)

    def drop(self, names: Iterable[str]) -> bool:
        """Stop copying to any of `names` (they took live traffic); whether anything changed."""
        if self.target is not None and self.target in set(names):
            self._assign({})
            return True
        return False

    def draw(self) -> str | None:
        """The deployment that gets a copy of this request, or None (most requests)."""
        if self.target is not None and self._rng.random() * 100 < self.share:
            return self.target
        return None
