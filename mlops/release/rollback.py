"""Where a rollback goes: the version to return to and the deployment that still serves it.

Plain Python (no Prefect), so ``mlops rollback`` can plan and flip a warm deployment's traffic
before it imports Prefect, and the rollback flow plans the same way (`tasks.rollback`).

The target is the version the champion's manifest names (``previous_champion``), or a version
the caller names. A deployment serves it when it is ready and holds that version's bundle.
"""

from __future__ import annotations

from typing import Any

from mlops.core.errors import DeploymentError
from mlops.core.settings import Settings
from mlops.core.spec import PipelineSpec
from mlops.endpoint.backend import endpoint_session
from mlops.model.results import RollbackPlan
from mlops.registry.backend import registry_for


def serves(deployment: dict[str, Any], url: str) -> bool:
    """Whether an endpoint's deployment (its `state()` entry) serves the bundle at `url`."""
    ready = deployment.get("status", "ready") == "ready"
    return ready and url in (deployment.get("model_url"), deployment.get("model"))


def _champion(name: str, alias: int | None, version: int | None,
              champion_before: int | None) -> int:
    """The champion the rollback starts from. With `champion_before` (a rollback whose
    traffic `mlops rollback` already flipped), the alias is that version, or already the
    target when only the release history is missing."""
    if alias is None:
        raise DeploymentError(f"model '{name}' has no champion: there is nothing to roll back")
    if champion_before is None:
        return alias
    if alias not in (champion_before, version):
        raise DeploymentError(
            f"{name}'s champion is v{alias}, neither v{champion_before} (before the traffic "
            f"flip) nor v{version} (the rollback's target): another release moved it since; "
            "the unfinished rollback is not completed"
        )
    return champion_before


def plan_rollback(spec: PipelineSpec, settings: Settings, version: int | None = None,
                  champion_before: int | None = None) -> RollbackPlan:
    """Which version to return to, from which champion, and whether a deployment serves it.

    Args:
        version: Return to this version instead of the previous champion.
        champion_before: The champion before an already flipped rollback to `version`
            (`mlops rollback` finishing its bookkeeping).

    Raises:
        DeploymentError: no champion, no previous champion (and no `version` named), the named
            version already is the champion, or (with `champion_before`) the champion is
            neither the one before nor the target.
        RegistryError: the named version does not exist.
    """
    registry = registry_for(spec, settings)
    name = spec.model_name
    champion = _champion(name, registry.alias(name), version, champion_before)
    target = registry.get(name, champion).manifest.get("previous_champion") \
        if version is None else version
    if target is None:
        raise DeploymentError(
            f"no previous champion to roll back to: {name} v{champion} was the first champion "
            "(its manifest names none); name a version with --version"
        )
    if int(target) == champion:
        raise DeploymentError(f"{name} v{champion} already is the champion; traffic unchanged")
    entry = registry.get(name, int(target))
    with endpoint_session(spec, settings) as client:
        state = client.state()
    warm = next((n for n, d in state.get("deployments", {}).items() if serves(d, entry.url)),
                None)
    traffic = {k: int(v) for k, v in state.get("traffic", {}).items()}
    return RollbackPlan(name, champion, entry.version, entry.url, warm, traffic)
