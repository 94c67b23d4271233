"""The watched canary: hold a traffic step, read both deployments' live numbers, judge them.

During a step's hold the candidate and the old deployment are read every ``guards.poll``
seconds through the endpoint client's `metrics` (deltas since the step began). A breach of the
spec's guards ends the hold at once with `CanaryBreachError`; a hold that runs out passes, or,
with fewer requests than ``guards.min_requests``, does what ``guards.on_too_few`` says. The
caller moves the traffic and rolls it back; this module only watches (no Prefect: what a person
sees goes through the `report` callback).

A client whose numbers arrive late (Azure Monitor, ``metrics_delay_s``) has each hold lengthened
by that delay, so the step is decided on data that covers it; the traffic stays as it is
meanwhile, so the extra minutes belong to the same step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from mlops.core.errors import CanaryBreachError
from mlops.core.spec.targets import CanaryGuards, TrafficStep
from mlops.endpoint.metrics import DeploymentStats
from mlops.endpoint.protocol import EndpointClient

Verdict = Literal["wait", "pass", "breach"]


def as_steps(steps: list[TrafficStep | int]) -> list[TrafficStep]:
    """The spec's steps; a bare share (a spec copied with ``model_copy(update=...)``, which
    skips validation) is a step without hold."""
    return [s if isinstance(s, TrafficStep) else TrafficStep(share=s) for s in steps]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


@dataclass(frozen=True)
class Reading:
    """One look at a held step: where the release is and what each side did since it began."""

    step: int  # 1-based
    steps: int
    share: int
    hold_s: float
    left_s: float
    candidate: DeploymentStats
    old: DeploymentStats | None
    shadow: bool = False  # the shadow phase: the candidate answers mirror copies only

    def numbers(self) -> str:
        c = self.candidate
        text = (f"candidate: {c.requests} requests, 5xx {c.errors} ({c.error_rate:.1%}), "
                f"p95 {_ms(c.p95())}")
        if self.old is not None:
            text += f"; old: {self.old.requests} requests, p95 {_ms(self.old.p95())}"
        return text

    def where(self) -> str:
        at = (f"shadow phase at {self.share}% mirrored" if self.shadow
              else f"step {self.step}/{self.steps} at {self.share}%")
        return f"{at}, {self.left_s:.0f} s of {self.hold_s:.0f} s left"


def judge(reading: Reading, guards: CanaryGuards, final: bool) -> tuple[Verdict, list[str]]:
    """Whether the step breaks a guard now, passes (only once its hold ran out), or waits.

    A step is judged once the candidate answered ``min_requests`` (and at least one); the
    latency ratio only when the old deployment answered as many in the same time.
    """
    cand, old, least = reading.candidate, reading.old, max(1, guards.min_requests)
    if cand.requests < least:
        if not final:
            return "wait", []
        too_few = (f"the candidate answered {cand.requests} requests in {reading.hold_s:g} s, "
                   f"fewer than min_requests {guards.min_requests}")
        return ("pass", [too_few + " (on_too_few: pass)"]) if guards.on_too_few == "pass" \
            else ("breach", [too_few])
    problems = []
    if guards.max_error_rate is not None and cand.error_rate > guards.max_error_rate:
        problems.append(f"5xx share {cand.error_rate:.1%} ({cand.errors} of {cand.requests}) "
                        f"is over max_error_rate {guards.max_error_rate:.1%}")
    limit = guards.max_p95_latency_ratio
    if limit is not None and old is not None and old.requests >= least:
        mine, theirs = cand.p95(), old.p95()
        if mine is not None and theirs and mine / theirs > limit:
            problems.append(f"p95 latency {_ms(mine)} is {mine / theirs:.2f} times the old "
                            f"deployment's {_ms(theirs)}, over max_p95_latency_ratio {limit:g}")
    if problems:
        return "breach", problems
    return ("pass" if final else "wait"), []


class CanaryWatch:
    """Holds the steps of one release on `client`: `candidate` against `old` (None: nothing
    else serves, so there is no latency to compare with)."""

    def __init__(
        self, client: EndpointClient, candidate: str, old: str | None, guards: CanaryGuards,
        report: Callable[[Reading, Verdict], None],
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.client, self.candidate, self.old, self.guards = client, candidate, old, guards
        self.report, self.sleep = report, sleep or time.sleep
        self.delay_s = client.metrics_delay_s

    def _read(self) -> dict[str, DeploymentStats]:
        return self.client.metrics()

    def hold(self, step: int, steps: int, spec: TrafficStep, shadow: bool = False) -> Reading:
        """Watch one step (or with `shadow`, the shadow phase: `spec.share` is the mirrored
        share) for its hold; returns the last reading when it passes.

        Raises:
            CanaryBreachError: a guard broke (the message has the step, the rules and the
                numbers); the caller rolls the traffic back.
            EndpointError: the metrics could not be read.
        """
        began = time.time()  # a windowed source counts the minutes that begin after it
        start = self._read()
        hold = spec.hold + self.delay_s
        end = time.monotonic() + hold
        empty = DeploymentStats(read_at=began)
        while True:
            left = max(0.0, end - time.monotonic())
            now = self._read()
            reading = Reading(
                step, steps, spec.share, hold, left,
                now.get(self.candidate, empty).since(start.get(self.candidate, empty)),
                now.get(self.old, empty).since(start.get(self.old, empty)) if self.old else None,
                shadow,
            )
            verdict, reasons = judge(reading, self.guards, final=left <= 0)
            self.report(reading, verdict)
            if verdict == "breach":
                raise CanaryBreachError(
                    f"{reading.where()}: {'; '.join(reasons)} ({reading.numbers()})"
                )
            if verdict == "pass":
                return reading
            self.sleep(min(self.guards.poll, left))
