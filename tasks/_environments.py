"""Staged environments (DESIGN.md, deploy protocol step 6; docs/releases.md).

With `environments` in the spec, the training flow calls `release_to_environments` between
register and production's deploy. Every environment's endpoint must answer before anything
moves; then, in order, each environment before production gets the candidate on its idle
slot, smoke-tests it, moves its own traffic in its steps with its hold watched (`promote` with
``staged_in``: no champion moves) and, where the spec asks, waits for a person. Only then does
the flow release the same registered version, its digest checked against the registry, to
production with the canary. A failure in an environment leaves production untouched.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from mlops.core.errors import DeploymentError, MlopsError
from mlops.core.settings import get_settings
from mlops.core.spec import PipelineSpec
from mlops.endpoint.backend import endpoint_session
from mlops.model.results import Evaluation, Split, TrainedModel
from mlops.registry.backend import registry_for
from mlops.registry.protocol import ModelVersion
from tasks.approval import record_verdict, request_approval
from tasks.deploy import deploy_model, promote, smoke_test


def _where(spec: PipelineSpec) -> str:
    endpoint = spec.endpoint
    return endpoint.url or (spec.endpoint_name if endpoint.backend == "azureml" else
                            get_settings().endpoint_url)


@task(cache_policy=NO_CACHE)  # a check, made afresh every time
def check_environments(spec: PipelineSpec) -> None:
    """Every environment's endpoint answers its control API, before any of them changes.

    Raises:
        DeploymentError: naming each environment that does not answer, where, and why.
    """
    problems = []
    for env in spec.environments:
        seen = spec.in_environment(env)
        try:
            with endpoint_session(seen, get_settings()) as client:
                client.state()
        except MlopsError as exc:
            problems.append(f"environment '{env.name}' ({_where(seen)}) does not answer: {exc}")
    if problems:
        raise DeploymentError(f"nothing deployed, traffic unchanged: {'; '.join(problems)}")


@task(cache_policy=NO_CACHE)
def check_same_version(version: ModelVersion, spec: PipelineSpec) -> None:
    """The version about to reach production is the one that passed before it: the registry
    still holds it with the model digest it had when it was registered (nothing re-registered
    or rewritten in between).

    Raises:
        DeploymentError: the digest differs or is missing.
    """
    now = registry_for(spec, get_settings()).get(version.name, version.version)
    staged = version.manifest.get("model_sha256")
    current = now.manifest.get("model_sha256")
    if not staged or staged != current:
        raise DeploymentError(
            f"{version.name} v{version.version} in the registry has model digest "
            f"{str(current)[:16]}, not the {str(staged)[:16]} that passed "
            f"{', '.join(e.name for e in spec.environments[:-1])}; production untouched"
        )


def release_to_environments(
    version: ModelVersion, trained: TrainedModel, split: Split, spec: PipelineSpec,
    evaluation: Evaluation, reason: str | None, approval_timeout_s: int,
) -> str | None:
    """Pass the candidate through every environment before production (none: nothing to do).

    Called from the flow itself: an environment's approval pauses the flow run.

    Returns:
        None when the candidate may go to production; a person's rejection otherwise.

    Raises:
        DeploymentError: an environment does not answer, or the candidate failed in one
            (named, with the reason); production's traffic and champion are untouched.
    """
    if not spec.environments:
        return None
    check_environments(spec)
    for env in spec.environments[:-1]:
        seen = spec.in_environment(env)
        try:
            plan = deploy_model(version, seen)
            smoke_test(plan, trained, split, seen)
            promote(plan, version, seen, reason, staged_in=env.name)
        except MlopsError as exc:
            raise DeploymentError(
                f"{version.name} v{version.version} failed in environment '{env.name}'; "
                f"production untouched: {exc}"
            ) from exc
        if env.approval:
            verdict = request_approval(evaluation, plan, approval_timeout_s, env.name)
            record_verdict(plan, seen, verdict, evaluation.champion_version, env.name)
            if not verdict.approved:
                return f"{verdict.reason} in '{env.name}'"
    check_same_version(version, spec)
    return None
