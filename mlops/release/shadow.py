"""The shadow phase of a release: mirror traffic to the candidate, watched, before any live step.

The candidate answers copies of ``endpoint.shadow.share`` percent of the live requests for
``endpoint.shadow.hold``; clients only ever get the live deployment's answers. The copies are
judged with the spec's guards as a held step is (`mlops.release.canary`: 5xx share, p95 latency
against the live deployment over the same time, ``min_requests`` copies, ``on_too_few``), so a
candidate that fails on real requests is caught before any client depends on it. Whatever the
outcome, mirror traffic is off again when the phase ends; on a breach the caller rolls back.
"""

from __future__ import annotations

from mlops.core.spec.targets import ShadowPhase, TrafficStep
from mlops.release.canary import CanaryWatch, Reading


def shadow_phase(watch: CanaryWatch, phase: ShadowPhase, steps: int) -> Reading:
    """Mirror `phase.share`% of live requests to the watched candidate for `phase.hold`.

    Args:
        watch: the release's watch (its client, candidate, live deployment and guards).
        phase: the spec's shadow phase.
        steps: the live steps that follow, for the progress line.

    Returns:
        The last reading, once the hold ran out with the guards kept.

    Raises:
        CanaryBreachError: a guard broke; mirror traffic is already off.
        EndpointError: the endpoint refused the mirror table or its metrics could not be read.
    """
    watch.client.set_mirror_traffic({watch.candidate: phase.share})
    try:
        return watch.hold(0, steps, TrafficStep(share=phase.share, hold=phase.hold), shadow=True)
    finally:
        watch.client.set_mirror_traffic({})
