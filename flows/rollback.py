"""The rollback flow: traffic back to the previous champion in one action.

plan (previous champion, warm deployment?) -> flip, or redeploy + smoke test + flip ->
`champion` (and its mirror in MLflow) and the release history. Run it from the ``rollback``
deployment's form in the Prefect UI, or with ``mlops rollback --spec ...`` (`tools.rollback`),
which flips a warm deployment's traffic itself before it starts this flow, and passes the
traffic it found.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows import _runtime
from mlops.core.settings import DEFAULT_SPEC
from tasks.data import read_spec
from tasks.rollback import plan_rollback, roll_back
from tasks.tracking import recording

_runtime.install()  # heartbeat join and exit collection (see flows/_runtime.py)


@flow(name="rollback", log_prints=False)
def rollback(
    spec_path: str = DEFAULT_SPEC, version: int | None = None, reason: str | None = None,
    traffic_before: dict[str, int] | None = None, champion_before: int | None = None,
) -> dict:
    """Move the model's traffic and `champion` back to the previous champion.

    Args:
        spec_path: The model's pipeline spec (YAML).
        version: Roll back to this registered version instead of the previous champion.
        reason: Why (a person's words); kept in the model's release history.
        traffic_before: Leave empty. `mlops rollback` sets it when it has flipped the traffic
            to the warm deployment already: the traffic it found, for the release history.
        champion_before: Leave empty. `mlops rollback` sets it with `traffic_before`: the
            champion it rolled back from, so a re-run completes an unfinished rollback.
    """
    spec = read_spec(spec_path, None)
    with recording(spec) as recorder:
        plan = plan_rollback(spec, version, champion_before)
        get_run_logger().info(
            "Rolling %s back from v%s to v%s (%s)", plan.model_name, plan.champion,
            plan.version,
            f"warm on '{plan.warm_slot}'" if plan.warm_slot else "not deployed: redeploying",
        )
        return roll_back(plan, spec, reason, traffic_before, recorder)
