"""Deploy, smoke-test and promote: the blue/green protocol of DESIGN.md.

1. the idle deployment gets the candidate at 0% traffic;
2. the smoke test calls it directly and compares with the offline predictions;
3. traffic moves to it, in the spec's steps; then `champion` moves to the new version.
On any failure traffic goes back to where it was and `champion` stays.
"""

from __future__ import annotations

import numpy as np
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from mlops.core.errors import DeploymentError, MlopsError
from mlops.core.settings import get_settings
from mlops.core.spec import PipelineSpec
from mlops.data.frames import load_frame
from mlops.endpoint.backend import endpoint_for
from mlops.endpoint.payloads import frame_to_request
from mlops.model.results import DeployPlan, Split, TrainedModel
from mlops.registry.backend import registry_for
from mlops.registry.protocol import ModelVersion
from mlops.tracking.recorder import Recorder
from tasks._options import IO_TASK

SLOTS = ("blue", "green")


def _live(traffic: dict[str, int]) -> str | None:
    live = [name for name, share in traffic.items() if share > 0]
    return max(live, key=lambda n: traffic[n]) if live else None


@task(**IO_TASK)
def deploy_model(version: ModelVersion, spec: PipelineSpec) -> DeployPlan:
    """Put the candidate on the idle slot, with no traffic, and wait until it is loaded."""
    client = endpoint_for(spec, get_settings())
    traffic = {k: int(v) for k, v in client.state()["traffic"].items()}
    live = _live(traffic)
    target = "green" if live == "blue" else "blue"
    if traffic.get(target, 0) > 0:
        raise DeploymentError(
            f"both slots carry traffic {traffic}; finish or roll back that release first"
        )
    client.put_deployment(target, version.url)
    get_run_logger().info(
        "Deployed %s v%s to '%s' at 0%% traffic (live: %s)",
        version.name, version.version, target, live or "none",
    )
    return DeployPlan(target, traffic, version.name, version.version)


def _same_predictions(served: list, offline: np.ndarray) -> bool:
    served_arr = np.asarray(served)
    if offline.dtype.kind == "f":
        return np.allclose(served_arr.astype(float), offline, rtol=1e-9, atol=1e-9)
    return [str(v) for v in served_arr] == [str(v) for v in offline]


@task
def smoke_test(plan: DeployPlan, trained: TrainedModel, split: Split, spec: PipelineSpec) -> None:
    """Call the new deployment directly: it must answer the offline predictions exactly."""
    names = [c.name for c in spec.feature_columns]
    features = load_frame(split.test, names).head(spec.endpoint.smoke_rows)
    offline = np.asarray(trained.pipeline.predict(features))
    client = endpoint_for(spec, get_settings())
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
            raise DeploymentError(f"smoke test of '{plan.target}' failed: {'; '.join(problems)}")
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


@task(cache_policy=NO_CACHE)
def promote(
    plan: DeployPlan, version: ModelVersion, spec: PipelineSpec, recorder: Recorder | None = None
) -> dict[str, int]:
    """Move traffic in the spec's steps, then point `champion` at the new version (and, with a
    `recorder`, MLflow's `champion` alias at its mirror)."""
    logger = get_run_logger()
    client = endpoint_for(spec, get_settings())
    live = _live(plan.previous_traffic)
    traffic: dict[str, int] = {}
    try:
        for share in spec.endpoint.traffic_steps:
            traffic = {plan.target: share, **({live: 100 - share} if live else {})}
            if not live and share < 100:
                continue  # nothing else serves yet: the first model takes all traffic at once
            client.set_traffic(traffic)
            logger.info("Traffic now %s", traffic)
        if traffic.get(plan.target) != 100:
            traffic = {plan.target: 100, **({live: 0} if live else {})}
            client.set_traffic(traffic)
        registry_for(spec, get_settings()).set_alias(version.name, version.version)
    except MlopsError as exc:
        if plan.previous_traffic:
            client.set_traffic(plan.previous_traffic)
        raise DeploymentError(
            f"promotion of {version.name} v{version.version} failed and traffic was restored "
            f"to {plan.previous_traffic or 'none'}: {exc}"
        ) from exc
    logger.info("Champion of %s is now version %s", version.name, version.version)
    if recorder is not None:
        recorder.mirror_champion(version.name, version.version, version.url)
    return traffic
