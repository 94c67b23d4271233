"""Environment settings: where state lives and how to reach the local services.

Everything about a model is in its spec; this is only what differs between machines. Values
come from ``MLOPS_*`` environment variables (or a ``.env`` file).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from serving.config import endpoint_dir

# The model a flow or command works on when none is named: the flows' `spec_path` default (the
# Prefect UI's run form shows it) and every command's `--spec` default come from here.
DEFAULT_SPEC = "configs/churn.yaml"
# Its model (a spec file is named after its model): served by the local endpoint server's
# default endpoint, at the plain MLOPS_ENDPOINT_URL; every other model has an endpoint of its own.
DEFAULT_MODEL = Path(DEFAULT_SPEC).stem


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MLOPS_", env_file=".env", extra="ignore")

    state_dir: Path = Field(
        Path(".mlops"), description="Local state: registry, endpoint state, run outputs, logs."
    )
    configs_dir: Path = Field(
        Path("configs"),
        description="The model specs (*.yaml) the local stack serves, deploys and trains, one "
        "per model; a relative path is taken from the project root.",
    )
    registry_url: str | None = Field(
        None, description="Local registry location (path or fsspec URL); default state/registry."
    )
    outputs_url: str | None = Field(
        None, description="Where runs write reports and plots; default state/runs."
    )
    endpoint_url: str = Field(
        "http://127.0.0.1:8765", description="Base URL of the local scoring endpoint."
    )
    endpoint_key: SecretStr | None = Field(
        None, description="Scoring key; default: read from the endpoint's state folder."
    )
    endpoint_admin_key: SecretStr | None = Field(
        None, description="Control-API key; default: read from the endpoint's state folder."
    )
    prefect_port: int = Field(4200, description="Port of the local stack's Prefect server.")
    mlflow_port: int = Field(5050, description="Port of the local stack's MLflow UI.")
    work_pool: str = Field("local-process", description="The local stack's process work pool.")
    http_timeout_s: float = Field(30.0, gt=0, description="Timeout of calls to the endpoint.")
    notify_block: str = Field(
        "custom-webhook/mlops-notifications",
        description="The Prefect notification block ('<block type>/<name>') that the "
        "automations in automations/ send through, e.g. slack-webhook/team-ml.",
    )
    notify_webhook_url: SecretStr | None = Field(
        None,
        description="Create (or update) the default block, a custom webhook posting JSON "
        "{subject, body} to this URL; unset: use the block as it exists.",
    )

    @cached_property
    def registry_location(self) -> str:
        return self.registry_url or str(self.state_dir / "registry")

    @cached_property
    def outputs_location(self) -> str:
        return self.outputs_url or str(self.state_dir / "runs")

    @cached_property
    def endpoint_state_dir(self) -> Path:
        return endpoint_dir(self.state_dir)


def get_settings() -> Settings:
    return Settings()
