"""The spec's `environments`: where a candidate goes, in order, before production.

Every environment but the last has its own endpoint (and, on Azure ML, may name its own
workspace; the registry is shared, so the version released to production is the one that
passed before it). The last environment is production: it uses the spec's own `endpoint`
section. A spec without `environments` releases straight to that endpoint.
"""

from __future__ import annotations

from pydantic import Field

from mlops.core.spec.columns import _Strict
from mlops.core.spec.targets import (
    AzureMLSpec,
    EndpointSpec,
    RegistrySpec,
    Seconds,
    TrafficStep,
)


class EnvironmentSpec(_Strict):
    """One place a candidate is released to and checked in before the next."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,30}$",
                      description="Named in logs, errors and the release history.")
    endpoint: EndpointSpec | None = Field(
        None, description="Its endpoint; none for the last environment (production), which "
        "uses the spec's own endpoint section.",
    )
    azureml: AzureMLSpec | None = Field(
        None, description="Backend 'azureml': this environment's workspace; default: the "
        "spec's 'azureml' section.",
    )
    hold: Seconds = Field(
        0.0, description="Once the candidate takes all of this environment's traffic, how long "
        "it is watched with the endpoint's guards before the next environment (seconds, or "
        "'30s', '5m', '1h').",
    )
    approval: bool = Field(
        False, description="A person approves the candidate here before the next environment.",
    )

    def watched_steps(self, steps: list[TrafficStep]) -> list[TrafficStep]:
        """`steps` (its endpoint's) with the environment's hold on the final step at 100%."""
        if not self.hold:
            return list(steps)
        if steps and steps[-1].share == 100:
            return [*steps[:-1], TrafficStep(share=100, hold=max(steps[-1].hold, self.hold))]
        return [*steps, TrafficStep(share=100, hold=self.hold)]


def environment_problems(
    environments: list[EnvironmentSpec], production: EndpointSpec, registry: RegistrySpec,
    workspace: AzureMLSpec | None,
) -> list[str]:
    """What is wrong with a spec's environments, every problem at once (empty: nothing)."""
    if not environments:
        return []
    names = [e.name for e in environments]
    problems = []
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        problems.append(f"environments repeat names {dupes}; each name must be unique")
    if len(environments) < 2:
        problems.append(f"environments name only {names}: give at least one before production "
                        "(the last one), or leave 'environments' out")
    if environments[-1].endpoint is not None:
        problems.append(f"environment '{names[-1]}' is production (the last one): it uses the "
                        "spec's 'endpoint' section; remove its own 'endpoint'")
    for env in environments[:-1]:
        problems += _staged_problems(env, production, registry, workspace)
    return problems


def _staged_problems(
    env: EnvironmentSpec, production: EndpointSpec, registry: RegistrySpec,
    workspace: AzureMLSpec | None,
) -> list[str]:
    where = f"environment '{env.name}'"
    if env.endpoint is None:
        return [f"{where} needs an 'endpoint' (only the last environment uses the spec's)"]
    problems = []
    if env.endpoint.backend != registry.backend:
        problems.append(f"{where}: endpoint.backend '{env.endpoint.backend}' must be the "
                        f"registry's backend '{registry.backend}' (the registry is shared)")
    if env.endpoint.backend == "local":
        if not env.endpoint.url:
            problems.append(f"{where} needs endpoint.url (a local endpoint of its own)")
        elif production.url and _same_url(env.endpoint.url, production.url):
            problems.append(f"{where}: endpoint.url {env.endpoint.url} is production's endpoint")
    elif env.azureml is None and workspace is None:
        problems.append(f"{where}: endpoint.backend 'azureml' needs an 'azureml' section")
    elif env.endpoint.name == production.name and (env.azureml or workspace) == workspace:
        problems.append(f"{where}: its endpoint is production's (same workspace, same name); "
                        "give it its own endpoint.name or its own 'azureml' workspace")
    if env.azureml is not None and env.endpoint.backend != "azureml":
        problems.append(f"{where}: 'azureml' needs endpoint.backend 'azureml'")
    elif env.azureml not in (None, workspace) and not registry.azureml_registry:
        problems.append(f"{where} has its own workspace: the model registry both share must be "
                        "an Azure ML registry (registry.azureml_registry)")
    return problems


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()
