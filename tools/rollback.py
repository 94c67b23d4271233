"""``mlops rollback``: the traffic flip first, in a process that has not imported Prefect yet;
then the rollback flow for the bookkeeping.

A rollback to a warm deployment is one traffic change, and a person running it wants the
traffic back at once; importing Prefect and creating a flow run take seconds. So the command
plans as the flow does (`mlops.release.rollback`), and when a deployment still serves the
target it flips the traffic to it itself, then runs the `rollback` flow with the traffic it
found and the champion it left. The flow finds the traffic already where it should be, moves
`champion`, records the rollback with that traffic and leaves its run and artifact as always.
A cold target (no deployment serves it) goes straight to the flow: redeploy, smoke test, flip.

Before the flip the command writes what it is about to do to
``<state>/rollbacks/<model>.json`` and removes it once the flow has finished. If the flow
fails, the error says what was done (the traffic) and what was not (champion, history), and
running the same command again finishes it from that record: traffic stays, the history gets
the traffic from before the first flip.

Its options are the flow's, less the two the command fills in itself (`traffic_before`,
`champion_before`); `tests/tools/test_rollback_command.py` keeps the two signatures equal.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from flows import _prefect_env
from mlops.core.errors import DeploymentError, MlopsError, shorten
from mlops.core.settings import DEFAULT_SPEC, Settings
from mlops.core.spec import PipelineSpec, load_spec
from mlops.endpoint.backend import endpoint_session
from mlops.model.results import RollbackPlan
from mlops.registry.backend import registry_for
from mlops.release.rollback import plan_rollback

logger = logging.getLogger(__name__)

FLIPS_DIR = "rollbacks"


@dataclass(frozen=True)
class Flip:
    """A traffic flip the command does ahead of the flow, kept until the flow recorded it."""

    champion: int
    version: int
    slot: str
    traffic_before: dict[str, int]


def flip_path(settings: Settings, model: str) -> Path:
    return settings.state_dir / FLIPS_DIR / f"{model}.json"


def read_flip(settings: Settings, model: str) -> Flip | None:
    """The unfinished rollback of `model`, if a flow after a flip failed."""
    path = flip_path(settings, model)
    return Flip(**json.loads(path.read_text())) if path.is_file() else None


def _keep_flip(settings: Settings, model: str, flip: Flip) -> None:
    path = flip_path(settings, model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(flip)))
    tmp.replace(path)  # a reader sees the whole record or none


def _plan(spec: PipelineSpec, settings: Settings, version: int | None,
          pending: Flip | None) -> RollbackPlan:
    """The flow's plan; for an unfinished rollback, that rollback's target and champion."""
    if pending is None:
        return plan_rollback(spec, settings, version)
    where = flip_path(settings, spec.model_name)
    if version not in (None, pending.version):
        raise DeploymentError(
            f"a rollback of {spec.model_name} to v{pending.version} is unfinished (traffic "
            f"flipped, bookkeeping not done; {where}): run `mlops rollback` without --version "
            f"to finish it before rolling back to v{version}"
        )
    try:
        return plan_rollback(spec, settings, pending.version, pending.champion)
    except DeploymentError as error:
        raise DeploymentError(
            f"{error}; the unfinished rollback's record is {where}: delete it to plan a new "
            "rollback"
        ) from error


def _run_flow(**parameters: object) -> dict:
    _prefect_env.apply()
    from flows.rollback import rollback as rollback_flow  # noqa: PLC0415 - Prefect: after the flip

    return rollback_flow(**parameters)


def _recorded(spec: PipelineSpec, settings: Settings, flip: Flip) -> bool:
    """Whether the newest entry of the model's release history is this rollback."""
    releases = registry_for(spec, settings).releases(spec.model_name)
    return bool(releases) and (releases[-1].kind, releases[-1].version,
                               releases[-1].champion_before) == ("rollback", flip.version,
                                                                 flip.champion)


def _unfinished(spec: PipelineSpec, settings: Settings, flip: Flip, error: Exception) -> str:
    """What a failed flow after the flip leaves: what was done, what was not, how to finish."""
    done = [f"traffic to v{flip.version}" + (f" on '{flip.slot}'" if flip.slot else "")]
    left: list[str] = []
    checks = {
        f"champion to v{flip.version}":
            lambda: registry_for(spec, settings).alias(spec.model_name) == flip.version,
        "the release history's rollback entry": lambda: _recorded(spec, settings, flip),
    }
    for step, check in checks.items():
        try:
            (done if check() else left).append(step)
        except (MlopsError, OSError) as unreadable:
            left.append(f"{step} (unknown: {shorten(str(unreadable))})")
    return (
        f"rollback of {spec.model_name} unfinished; done: {', '.join(done)}; not done: "
        f"{', '.join(left) or 'nothing'}; the rollback flow failed: {type(error).__name__}: "
        f"{shorten(str(error), 300)}. Run the same command again to finish it: the traffic "
        f"stays, the history gets the traffic before the flip {flip.traffic_before} "
        f"({flip_path(settings, spec.model_name)})"
    )


def rollback(settings: Settings, spec_path: str = DEFAULT_SPEC, version: int | None = None,
             reason: str | None = None) -> dict:
    """Move the model's traffic and `champion` back to the previous champion.

    Args:
        spec_path: The model's pipeline spec (YAML).
        version: Roll back to this registered version instead of the previous champion.
        reason: Why (a person's words); kept in the model's release history.

    Raises:
        DeploymentError: what the flow's plan refuses; or, when the flow fails after the
            traffic flip, what was done and what was not (the flow's error is its cause).
    """
    spec = load_spec(spec_path)
    pending = read_flip(settings, spec.model_name)
    if pending is not None and _recorded(spec, settings, pending) \
            and registry_for(spec, settings).alias(spec.model_name) == pending.version:
        logger.info("The rollback of %s to v%s is recorded already: nothing left to do",
                    spec.model_name, pending.version)  # a flow that failed after its entry
        flip_path(settings, spec.model_name).unlink()
        return {"outcome": "rolled back", "champion": pending.version, "how": "recorded already"}
    plan = _plan(spec, settings, version, pending)
    if pending is None and plan.warm_slot is None:  # cold: the flow redeploys, as in the UI
        return _run_flow(spec_path=spec_path, version=version, reason=reason)
    before = pending.traffic_before if pending else plan.previous_traffic
    flip = Flip(plan.champion, plan.version, plan.warm_slot or "", before)
    if plan.warm_slot is not None:
        _keep_flip(settings, spec.model_name, flip)
        with endpoint_session(spec, settings) as client:
            traffic = client.set_traffic({plan.warm_slot: 100})
        logger.info("Traffic of %s on v%s ('%s'): %s; now the rollback flow records it",
                    spec.model_name, plan.version, plan.warm_slot, traffic)
    try:
        result = _run_flow(spec_path=spec_path, version=flip.version, reason=reason,
                           traffic_before=flip.traffic_before, champion_before=flip.champion)
    except Exception as error:
        raise DeploymentError(_unfinished(spec, settings, flip, error)) from error
    flip_path(settings, spec.model_name).unlink(missing_ok=True)
    return result
