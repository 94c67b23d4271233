"""Rollback stage: traffic back to the previous champion in one action (DESIGN.md, rollback).

The previous champion is the one the champion's manifest names (``previous_champion``), or a
version the caller names. If a deployment still serves it (the slot the last release left at
0%), the rollback is one traffic change; otherwise it is deployed to the idle slot, smoke-tested
against its own predictions, then traffic flips. `champion` follows (and, with a recorder,
MLflow's `champion` alias on its mirror) and the release history records it. Any failure leaves
traffic where it was.
"""

from __future__ import annotations

import numpy as np
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from mlops.core.errors import DeploymentError, shorten
from mlops.core.settings import get_settings
from mlops.core.spec import PipelineSpec
from mlops.endpoint.backend import endpoint_session
from mlops.endpoint.payloads import frame_to_request
from mlops.model.results import RollbackPlan
from mlops.registry.backend import registry_for
from mlops.release.rollback import plan_rollback as plan_for
from mlops.tracking.recorder import Recorder
from serving.bundle import probe_frame
from tasks._options import IO_TASK
from tasks._release import record_release


@task(**IO_TASK)
def plan_rollback(spec: PipelineSpec, version: int | None = None,
                  champion_before: int | None = None) -> RollbackPlan:
    """Which version to return to and whether a deployment still serves it
    (`mlops.release.rollback.plan_rollback`, which says what it raises)."""
    return plan_for(spec, get_settings(), version, champion_before)


def _smoke_test(spec: PipelineSpec, plan: RollbackPlan, slot: str) -> None:
    """The redeployed version must answer as its own model does offline: on its trusted
    holdout's first rows, or on probe rows when it kept no holdout."""
    registry = registry_for(spec, get_settings())
    bundle = registry.load(plan.model_name, plan.version)
    holdout = registry.holdout(plan.model_name, plan.version)
    rows = (holdout[bundle.feature_names].head(spec.endpoint.smoke_rows) if holdout is not None
            else probe_frame(bundle.features, plan.url))
    offline = [str(v) for v in np.asarray(bundle.model.predict(rows))]
    with endpoint_session(spec, get_settings()) as client:
        answer = client.score(frame_to_request(rows), deployment=slot)
    served = [str(v) for v in answer.get("predictions", [])]
    if str(answer.get("model_version")) != str(plan.version) or served != offline:
        raise DeploymentError(
            f"smoke test of v{plan.version} on '{slot}' failed: served version "
            f"{answer.get('model_version')}, predictions {shorten(str(served))} for the "
            f"offline {shorten(str(offline))}; traffic unchanged {plan.previous_traffic}"
        )


@task(cache_policy=NO_CACHE)
def roll_back(plan: RollbackPlan, spec: PipelineSpec, reason: str | None = None,
              traffic_before: dict[str, int] | None = None,
              recorder: Recorder | None = None) -> dict:
    """Flip traffic to the warm deployment, or redeploy to the idle slot, smoke-test and flip;
    then move `champion` (with a `recorder`, MLflow's alias too) and record the rollback, with
    `traffic_before` as the traffic before it when `mlops rollback` flipped the warm
    deployment's traffic already (the flip here then changes nothing)."""
    logger = get_run_logger()
    with endpoint_session(spec, get_settings()) as client:
        slot, how = plan.warm_slot, f"traffic flip to the warm deployment '{plan.warm_slot}'"
        if slot is None:
            live = max(plan.previous_traffic, key=plan.previous_traffic.get, default=None)
            slot = "green" if live == "blue" else "blue"
            logger.info("No deployment serves v%s any more: deploying it to '%s'",
                        plan.version, slot)
            client.put_deployment(slot, plan.url)
            _smoke_test(spec, plan, slot)
            how = f"redeployed to '{slot}', smoke-tested, traffic flipped"
        traffic = client.set_traffic({slot: 100})
        registry_for(spec, get_settings()).set_alias(plan.model_name, plan.version)
        if recorder is not None:
            recorder.mirror_champion(plan.model_name, plan.version, plan.url)
        logger.info("Rolled %s back from v%s to v%s: %s; traffic %s", plan.model_name,
                    plan.champion, plan.version, how, traffic)
        record_release(spec, "rollback", plan.version, champion_before=plan.champion,
                       champion_after=plan.version,
                       traffic_before=traffic_before or plan.previous_traffic,
                       traffic_after=traffic, reason=reason, detail=how,
                       environment=spec.production_name)
        return {"outcome": "rolled back", "champion": plan.version, "traffic": traffic, "how": how}
