"""Settings of the local scoring endpoint, from ``MLOPS_ENDPOINT_*`` environment variables.

The state folder is shared with the rest of the project, so ``MLOPS_STATE_DIR`` is accepted
as well as ``MLOPS_ENDPOINT_STATE_DIR``. Keys come from ``MLOPS_ENDPOINT_KEY`` and
``MLOPS_ENDPOINT_ADMIN_KEY`` (the names ``mlops.core.settings`` reads too) or are generated at
first start into the state folder.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# Azure ML's rule for endpoint (and deployment) names: 3-32 letters, digits or '-', a letter
# first, no '-' last. The local server's endpoints and the specs' endpoint names both follow it.
ENDPOINT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]$")


class EndpointConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MLOPS_ENDPOINT_", env_file=".env", extra="ignore", populate_by_name=True
    )

    host: str = Field("127.0.0.1", description="Interface to listen on; loopback by default.")
    port: int = Field(8765, ge=1, le=65535, description="TCP port to listen on.")
    state_dir: Path = Field(
        Path(".mlops"),
        validation_alias=AliasChoices("MLOPS_ENDPOINT_STATE_DIR", "MLOPS_STATE_DIR"),
        description="Project state folder; the endpoint keeps its files in <state_dir>/endpoint.",
    )
    name: str = Field(
        "local-endpoint", min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
        description="Endpoint name; the folder of its inference data.",
    )
    key: SecretStr | None = Field(None, description="Scoring key; default: generated.")
    admin_key: SecretStr | None = Field(None, description="Control-API key; default: generated.")
    max_body_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 above)."
    )
    max_header_bytes: int = Field(
        65_536, ge=1024,
        description="Largest request line plus headers accepted (431 and a closed connection "
        "above).",
    )
    header_timeout_s: float = Field(
        10.0, gt=0,
        description="Time a client has to send a request line and headers once it has started "
        "(408 and a closed connection after); a new connection that sends nothing is closed.",
    )
    body_timeout_s: float = Field(
        30.0, gt=0,
        description="Time a client has to send a request body whose headers have arrived "
        "(408 and a closed connection after), also when Content-Length promises more bytes "
        "than come.",
    )
    offload_rows: int = Field(
        2000, ge=1,
        description="Requests with at least this many rows are scored in a worker thread so "
        "the event loop keeps answering; smaller ones are scored inline (faster).",
    )
    omp_threads: int | None = Field(
        1, ge=1,
        description="OpenMP threads per inline prediction. One is fastest for small requests "
        "and avoids oversubscribing a busy machine; empty keeps the library default.",
    )
    drain_timeout_s: float = Field(
        60.0, gt=0, description="How long a replace or delete waits for in-flight requests."
    )
    collect: bool = Field(True, description="Record each request's inputs and outputs.")
    collect_url: str | None = Field(
        None, description="Where inference data goes (path or fsspec URL); default state/inference."
    )
    collect_flush_rows: int = Field(5000, ge=1, description="Write a batch at this many rows.")
    collect_flush_s: float = Field(5.0, gt=0, description="...or when the oldest row is this old.")
    collect_queue_rows: int = Field(
        200_000, ge=1, description="Most rows held in memory; the oldest are dropped beyond it."
    )
    azureml_collect: bool = Field(
        False,
        description="Entry script on Azure ML: send each request's inputs and outputs to Azure "
        "ML's data collector (needs azureml-ai-monitoring; deployment.yml turns it on).",
    )
    mirror_queue: int = Field(
        100, ge=1,
        description="Mirror traffic copies that may wait for the mirrored deployment; further "
        "copies are dropped and counted (mlops_mirror_dropped_total).",
    )
    access_log: bool = Field(False, description="Log every request (slows the server down).")
    metrics: bool = Field(
        True,
        description="Count every answer per deployment for GET /metrics (what a release watches "
        "during a held traffic step); false skips the counting and /metrics answers 404.",
    )
    registry_url: str | None = Field(
        None, validation_alias=AliasChoices("MLOPS_ENDPOINT_REGISTRY_URL", "MLOPS_REGISTRY_URL"),
        description="The project's local registry (as mlops.core.settings reads it); a model root.",
    )
    fast_path: bool = Field(
        True,
        description="Score through the lean predict path (serving.fastpath) where it answers "
        "exactly as the pipeline; false sends every request through the plain pipeline.",
    )
    model_roots: list[str] = Field(
        default_factory=list,
        description="Where deployments may load bundles from (JSON list of local folders or "
        "abfs:// prefixes); default: <state_dir>/registry and the registry URL. Any other "
        "model_url is refused (docs/trust-boundary.md).",
    )

    @property
    def endpoint_dir(self) -> Path:
        return endpoint_dir(self.state_dir)

    @property
    def allowed_model_roots(self) -> list[str]:
        if self.model_roots:
            return list(self.model_roots)
        extra = [self.registry_url] if self.registry_url else []
        return [str(self.state_dir / "registry"), *extra]

    @property
    def inference_url(self) -> str:
        return self.collect_url or str(self.state_dir / "inference")


def endpoint_dir(state_dir: Path) -> Path:
    """Where the endpoint keeps its state and keys inside the project's state folder; the
    one place this path is built (``mlops`` reads the keys from it)."""
    return Path(state_dir) / "endpoint"


def named_endpoint_dir(state_dir: Path, name: str) -> Path:
    """Where an endpoint other than the default keeps its state and keys (``serving.endpoints``);
    the one place this path is built."""
    return endpoint_dir(state_dir) / "endpoints" / name


def state_fingerprint(endpoint_dir: Path) -> str:
    """What ``/health`` says about the endpoint's state folder: a digest of its absolute path,
    so a caller can tell whether the endpoint answering at a URL is the one it meant (the
    same folder) without the path itself being published."""
    return hashlib.sha256(str(Path(endpoint_dir).resolve()).encode()).hexdigest()[:16]
