"""Deploy, smoke-test and promote: the blue/green protocol of DESIGN.md.

1. the idle deployment gets the candidate at 0% traffic;
2. the smoke test calls it directly and compares with the offline predictions;
3. optionally it answers mirror copies of live requests first, watched (the shadow phase,
   `mlops.release.shadow`); then traffic moves to it, in the spec's steps, each held step
   watched (`mlops.release.canary`); then `champion` moves to the new version.
On any failure traffic goes back to where it was and `champion` stays.
"""

from __future__ import annotations

from typing import NoReturn

import numpy as np
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from mlops.core.errors import (
    CanaryBreachError,
    DeploymentError,
    EndpointUnreachableError,
    MlopsError,
    ProvisioningError,
)
from mlops.core.settings import get_settings
from mlops.core.spec import PipelineSpec
from mlops.data.frames import head_frame
from mlops.endpoint.backend import endpoint_session
from mlops.endpoint.payloads import frame_to_request
from mlops.endpoint.protocol import EndpointClient
from mlops.model.results import DeployPlan, Split, TrainedModel
from mlops.registry.backend import registry_for
from mlops.registry.protocol import ModelVersion
from mlops.release.canary import CanaryWatch, as_steps
from mlops.release.recovery import Recovery, restore_traffic
from mlops.release.shadow import shadow_phase
from mlops.tracking.recorder import Recorder
from tasks._options import IO_TASK
from tasks._release import HoldProgress, record_release

SLOTS = ("blue", "green")


def _live(traffic: dict[str, int]) -> str | None:
    live = [name for name, share in traffic.items() if share > 0]
    return max(live, key=lambda n: traffic[n]) if live else None


@task(**IO_TASK)
def deploy_model(version: ModelVersion, spec: PipelineSpec) -> DeployPlan:
    """Put the candidate on the idle slot, with no traffic, and wait until it is loaded."""
    with endpoint_session(spec, get_settings()) as client:
        traffic = {k: int(v) for k, v in client.state()["traffic"].items()}
        live = _live(traffic)
        target = "green" if live == "blue" else "blue"
        if traffic.get(target, 0) > 0:
            raise DeploymentError(
                f"both slots carry traffic {traffic}; finish or roll back that release first"
            )
        try:
            client.put_deployment(target, version.url)
        except ProvisioningError as exc:
            _publish_logs(spec, target, exc)
            raise
        get_run_logger().info(
            "Deployed %s v%s to '%s' at 0%% traffic (live: %s)",
            version.name, version.version, target, live or "none",
        )
        return DeployPlan(target, traffic, version.name, version.version)


def _publish_logs(spec: PipelineSpec, slot: str, exc: ProvisioningError) -> None:
    """The containers' logs of a deployment that did not provision, as a Prefect artifact."""
    sections = "\n\n".join(f"### {container}\n\n```\n{text.strip()}\n```"
                            for container, text in exc.logs.items())
    create_markdown_artifact(
        key=f"{spec.name}-{slot}-provisioning-logs".lower().replace("_", "-"),
        markdown=f"## Deployment '{slot}' did not provision\n\n{sections}",
        description=f"container logs of the failed '{slot}' deployment of {spec.endpoint_name}",
    )


def _same_predictions(served: list, offline: np.ndarray) -> bool:
    served_arr = np.asarray(served)
    if offline.dtype.kind == "f":
        return np.allclose(served_arr.astype(float), offline, rtol=1e-9, atol=1e-9)
    return [str(v) for v in served_arr] == [str(v) for v in offline]


@task
def smoke_test(plan: DeployPlan, trained: TrainedModel, split: Split, spec: PipelineSpec) -> None:
    """Call the new deployment directly: it must answer the offline predictions exactly."""
    names = [c.name for c in spec.feature_columns]
    features = head_frame(split.test, spec.endpoint.smoke_rows, names)
    offline = np.asarray(trained.pipeline.predict(features))
    with endpoint_session(spec, get_settings()) as client:
        try:
            answer = client.score(frame_to_request(features), deployment=plan.target)
            problems = []
            if str(answer.get("model_version")) != str(plan.version):
                problems.append(f"served version {answer.get('model_version')}, not {plan.version}")
            served = answer.get("predictions", [])
            if len(served) != len(offline):
                problems.append(f"{len(served)} predictions for {len(offline)} rows")
            elif not _same_predictions(served, offline):
                problems.append("predictions differ from the offline ones for the same rows")
            if problems:
                raise DeploymentError(
                    f"smoke test of '{plan.target}' failed: {'; '.join(problems)}")
        except MlopsError:
            _remove_candidate(client, plan)
            raise
        get_run_logger().info("Smoke test passed on '%s': %d rows match", plan.target, len(offline))


def _remove_candidate(client, plan: DeployPlan) -> None:
    """Take the failed candidate off the endpoint; it never had traffic."""
    try:
        client.delete_deployment(plan.target)
    except MlopsError as exc:
        get_run_logger().warning("Could not remove '%s' after failure: %s", plan.target, exc)


def _step_table(target: str, live: str | None, share: int) -> dict[str, int]:
    return {target: share, **({live: 100 - share} if live else {})}


def _move(client: EndpointClient, table: dict[str, int]) -> dict[str, int]:
    """Set `table`; it becomes the table last set only once the endpoint took it."""
    client.set_traffic(table)
    return table


@task(cache_policy=NO_CACHE)
def promote(
    plan: DeployPlan, version: ModelVersion, spec: PipelineSpec, reason: str | None = None,
    recorder: Recorder | None = None, staged_in: str | None = None,
) -> dict[str, int]:
    """Hold the spec's shadow phase (if it has one and another deployment serves), move traffic
    in the spec's steps, holding and watching those with a hold, then point `champion` at the
    new version (and, with a `recorder`, MLflow's `champion` alias at its mirror). With
    `staged_in`, an environment before production (`spec` as it sees it): its held steps are
    watched even for its first model, and `champion` stays.

    Raises:
        DeploymentError: the shadow phase or a step broke the spec's guards
            (`CanaryBreachError` is its cause) or the endpoint failed; traffic is back where
            it was, mirror traffic off, `champion` unchanged, and the candidate kept at 0% or
            removed as ``endpoint.guards.on_rollback`` says.
    """
    logger = get_run_logger()
    with endpoint_session(spec, get_settings()) as client:
        registry = registry_for(spec, get_settings())
        champion = registry.alias(version.name)
        live = _live(plan.previous_traffic)
        # with nothing else serving, the first model takes all traffic at once
        steps = [s for s in as_steps(spec.endpoint.traffic_steps) if live or s.share == 100]
        shadow = spec.endpoint.shadow if live else None  # nothing to mirror without one
        held = bool(live or staged_in) and (shadow is not None or any(s.hold for s in steps))
        where = staged_in or spec.production_name
        traffic: dict[str, int] = dict(plan.previous_traffic)  # the table last set
        try:
            if held:
                client.metrics()  # a hold needs live numbers: fail before traffic moves
                progress = HoldProgress(plan.model_name, plan.version, len(steps), bool(shadow))
                watch = CanaryWatch(client, plan.target, live, spec.endpoint.guards, progress)
            if shadow is not None:
                shadow_phase(watch, shadow, len(steps))
            for number, step in enumerate(steps, 1):
                traffic = _move(client, _step_table(plan.target, live, step.share))
                logger.info("Traffic now %s", traffic)
                if held and step.hold:
                    watch.hold(number, len(steps), step)
            if traffic.get(plan.target) != 100:
                traffic = _move(client, _step_table(plan.target, live, 100))
            if not staged_in:
                registry.set_alias(version.name, version.version)
        except MlopsError as exc:
            _roll_back(client, plan, spec, exc, (champion, reason, where), traffic)
        if staged_in:
            logger.info("%s v%s passed '%s'", version.name, version.version, staged_in)
        else:
            logger.info("Champion of %s is now version %s", version.name, version.version)
        record_release(spec, "promotion", version.version, champion_before=champion,
                       champion_after=champion if staged_in else version.version,
                       traffic_before=plan.previous_traffic, traffic_after=traffic,
                       reason=reason, environment=where)
        if recorder is not None and not staged_in:
            recorder.mirror_champion(version.name, version.version, version.url)
        return traffic


def _roll_back(client: EndpointClient, plan: DeployPlan, spec: PipelineSpec,
               cause: MlopsError, why: tuple[int | None, str | None, str],
               last_set: dict[str, int]) -> NoReturn:
    """Traffic back to where it was (and the candidate removed if the spec says so); a
    canary's breach or an endpoint that stopped answering goes into the release history;
    raise. An endpoint that does not answer is waited for (``guards.unreachable_wait``); if it
    never takes the old table, the state it was left in is recorded as unresolved. The first
    model of an endpoint (held only in an environment before production) has no traffic to
    return to and keeps it."""
    guards, (champion, reason, where) = spec.endpoint.guards, why
    first = not plan.previous_traffic
    recovery = Recovery(True, {}, 0.0, False)
    if not first:
        recovery = restore_traffic(client, plan.previous_traffic, last_set,
                                   guards.unreachable_wait_s, guards.poll)
    if not recovery.restored:
        _unresolved(plan, spec, cause, why, recovery)
    if first:
        restored, kept = "no traffic was restored", "left with it: there was none before"
    else:
        restored = f"traffic was restored to {plan.previous_traffic}"
        kept = "kept at 0% for inspection"
    breach = isinstance(cause, CanaryBreachError)
    if breach and not first and guards.on_rollback == "remove":
        client.delete_deployment(plan.target)
        kept = "removed"
    lost = isinstance(cause, EndpointUnreachableError) or recovery.unreachable
    what = f"canary: {cause}" if breach else f"endpoint unreachable: {cause}"
    if lost:
        what += f"; it answered again and took the old traffic after {recovery.waited_s:.1f} s"
    if breach or lost:
        record_release(spec, "rollback", plan.version, champion_before=champion,
                       champion_after=champion, traffic_before=plan.previous_traffic,
                       traffic_after=last_set if first else plan.previous_traffic,
                       reason=reason, detail=f"{what}; candidate {kept}", environment=where)
    raise DeploymentError(
        f"promotion of {plan.model_name} v{plan.version} failed and {restored} "
        f"(candidate on '{plan.target}' {kept}): " + (what if lost else str(cause))
    ) from cause


def _unresolved(plan: DeployPlan, spec: PipelineSpec, cause: MlopsError,
                why: tuple[int | None, str | None, str], recovery: Recovery) -> NoReturn:
    """The endpoint did not take the old table back in time: record where it was left (so
    nothing half-done stays hidden) and raise."""
    champion, reason, where = why
    left = (f"traffic {recovery.traffic or 'unknown'} (last seen), the candidate "
            f"v{plan.version} on deployment '{plan.target}'")
    waited = (f"the endpoint did not take the old traffic {plan.previous_traffic} back within "
              f"{spec.endpoint.guards.unreachable_wait_s:g} s ({recovery.problem})")
    record_release(spec, "unresolved", plan.version, champion_before=champion,
                   champion_after=champion, traffic_before=plan.previous_traffic,
                   traffic_after=recovery.traffic, reason=reason,
                   detail=f"{cause}; {waited}; left with {left}", environment=where)
    raise DeploymentError(
        f"promotion of {plan.model_name} v{plan.version} failed ({cause}) and {waited}. The "
        f"endpoint was left with {left}; champion stays "
        f"{'v' + str(champion) if champion else 'none'}. Once it answers, set its traffic to "
        f"{plan.previous_traffic} (PUT /admin/traffic, or the Azure ML endpoint's traffic)."
    ) from cause
