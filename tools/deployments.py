"""Every model's Prefect deployments, generated from its spec under configs/.

prefect.yaml holds one model's deployment set, written out for the default spec
(configs/churn.yaml): it reads as the documentation of what a model gets, and `prefect deploy
--all` on it alone deploys that model. `mlops deploy` (and `mlops up`) takes that set as the
template and gives every spec under configs/ its own copy:

- names carry the model (`training-nightly-diabetes`); the default spec keeps the plain names
  (`training-nightly`), which the UI, the docs and `run_deployment` calls use;
- `spec_path` names the model's spec, per-model folders (`data/incoming/churn`) its own folder,
  the drift check starts the model's own manual training deployment;
- event triggers match the model (`mlops.model` label of the watcher's events), so a file in
  one model's inbox starts only that model's deployments;
- the spec's `schedule` section reschedules or pauses each (`SCHEDULE_KIND`).

The result is written to `<state>/prefect-models.yaml` and deployed with `prefect deploy --all
--prefect-file`, so the deployments are built exactly as prefect.yaml's own are.
"""

from __future__ import annotations

import copy
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from mlops.core.errors import DeploymentError, SpecError
from mlops.core.settings import DEFAULT_SPEC, Settings
from mlops.core.spec import PipelineSpec, load_spec

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
# Template deployment -> the spec's schedule field that reschedules or pauses it (None: always
# on, e.g. the manual training a person or the drift check starts).
SCHEDULE_KIND: dict[str, str | None] = {
    "training-nightly": "nightly",
    "training-manual": None,
    "training-on-new-data": "on_new_data",
    "drift-check": "drift",
    "rollback": None,
    "watch-data": "on_new_data",
    "batch-scoring-nightly": "batch",
    "batch-scoring-on-new-data": "batch",
    "watch-scoring-inbox": "batch",
}
# Parameters naming a folder of the model's own (the template's ends in the default model).
FOLDER_PARAMETERS = ("location", "input_url", "output_url")
MODEL_LABEL = "mlops.model"


def configs_folder(settings: Settings) -> Path:
    """The folder of model specs (`MLOPS_CONFIGS_DIR`), a relative one taken from the project
    root: the stack's processes run there, wherever the command was started."""
    return ROOT / settings.configs_dir


def model_specs(configs: Path) -> list[tuple[str, PipelineSpec]]:
    """(path relative to the project when inside it, spec) of every `*.yaml` under `configs`.

    Raises:
        SpecError: a spec is invalid, or two specs name the same model (their deployments
            would overwrite each other).
    """
    found: dict[str, str] = {}
    specs = []
    for path in sorted(Path(configs).glob("*.yaml")):
        spec = load_spec(path)
        shown = str(path.resolve().relative_to(ROOT)) if path.resolve().is_relative_to(ROOT) \
            else str(path)
        if spec.name in found:
            raise SpecError(f"specs {found[spec.name]} and {shown} both name model "
                            f"'{spec.name}'; each model needs its own name")
        found[spec.name] = shown
        specs.append((shown, spec))
    if not specs:
        raise SpecError(f"no spec files (*.yaml) in {configs}")
    return specs


def _kind(name: str) -> str | None:
    if name not in SCHEDULE_KIND:
        raise SpecError(
            f"prefect.yaml deployment '{name}' has no entry in tools/deployments.py "
            f"SCHEDULE_KIND (known: {sorted(SCHEDULE_KIND)}); say which schedule controls it"
        )
    return SCHEDULE_KIND[name]


def _parameters(params: dict[str, Any], spec_path: str, model: str, default_model: str,
                suffix: str) -> dict[str, Any]:
    out = {**params, "spec_path": spec_path} if "spec_path" in params else dict(params)
    if "model" in out:
        out["model"] = model
    for key in FOLDER_PARAMETERS:
        value = out.get(key)
        if isinstance(value, str) and value.endswith(f"/{default_model}"):
            out[key] = f"{value.removesuffix(default_model)}{model}"
    if "training_deployment" in out:
        out["training_deployment"] = f"{out['training_deployment']}{suffix}"
    return out


def model_deployments(template: list[dict[str, Any]], spec_path: str, spec: PipelineSpec,
                      default_model: str) -> list[dict[str, Any]]:
    """The template's deployments for one model, named, parameterised and scheduled for it."""
    suffix = deployment_name("", spec.name, default_model)
    out = []
    for source in template:
        deployment = copy.deepcopy(source)
        kind = _kind(source["name"])
        active = kind is None or spec.schedule.active(kind)
        deployment["name"] = f"{source['name']}{suffix}"
        deployment["parameters"] = _parameters(
            deployment.get("parameters", {}), spec_path, spec.name, default_model, suffix)
        deployment["tags"] = [*deployment.get("tags", []), f"model:{spec.name}"]
        for trigger in deployment.get("triggers", []):
            trigger["match"] = {**trigger.get("match", {}), MODEL_LABEL: spec.name}
            trigger["enabled"] = active
        for schedule in deployment.get("schedules", []):
            schedule["active"] = active
            value = getattr(spec.schedule, kind) if kind else None
            if "cron" in schedule and isinstance(value, str) and active:
                schedule["cron"] = value
                schedule["timezone"] = spec.schedule.timezone
        out.append(deployment)
    return out


def render(configs: Path, prefect_file: Path = ROOT / "prefect.yaml",
           default_spec: str = DEFAULT_SPEC) -> dict[str, Any]:
    """prefect.yaml with its deployments repeated for every spec under `configs`."""
    project = yaml.safe_load(Path(prefect_file).read_text())
    template = project.pop("deployments")
    project.pop("definitions", None)  # anchors, already resolved into the deployments
    default_model = load_spec(ROOT / default_spec).name
    project["deployments"] = [
        deployment
        for spec_path, spec in model_specs(configs)
        for deployment in model_deployments(template, spec_path, spec, default_model)
    ]
    return project


def write_deployments(settings: Settings) -> Path:
    """Render the deployments of every model under the configs folder into
    `<state>/prefect-models.yaml`; its path."""
    out = settings.state_dir / "prefect-models.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    rendered = render(configs_folder(settings))
    out.write_text(
        "# Generated by `mlops deploy` from prefect.yaml and configs/*.yaml; do not edit.\n"
        + yaml.safe_dump(rendered, sort_keys=False)
    )
    names = sorted({d["parameters"]["spec_path"] for d in rendered["deployments"]
                    if "spec_path" in d.get("parameters", {})})
    logger.info("%d deployments for %d spec(s) %s -> %s", len(rendered["deployments"]),
                len(names), names, out)
    return out


def deployment_name(template_name: str, model: str, default_model: str) -> str:
    """The name a template deployment gets for `model` (the default model keeps the plain
    name)."""
    return template_name if model == default_model else f"{template_name}-{model}"


def deploy(prefect_file: Path, env: dict[str, str]) -> None:
    """`prefect deploy --all --prefect-file` from the project root, against `env`'s server.

    Raises:
        DeploymentError: prefect failed; the message carries its output.
    """
    command = [str(Path(sys.executable).parent / "prefect"), "--no-prompt", "deploy", "--all",
               "--prefect-file", str(prefect_file)]
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise DeploymentError(
            f"prefect deploy --all --prefect-file {prefect_file} failed (exit code "
            f"{result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    logger.debug("%s", result.stdout)
