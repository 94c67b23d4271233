"""The local stack's environments before production: one endpoint process per staged URL.

A spec under the configs folder (`MLOPS_CONFIGS_DIR`) whose `environments` put one before
production on a local endpoint at a loopback URL gets that endpoint from ``mlops up``: its own
process on the URL's port, its own
state folder ``<state>/environments/<name>-<port>`` (deployments, traffic table, inference
log), the production endpoint's keys (one key pair reaches both, so a client needs nothing
more than the URL) and the shared registry as the place it may load models from. Its PID is
recorded as ``endpoint-<name>-<port>``, so ``mlops down`` stops it with the rest.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mlops.core.settings import Settings
from mlops.endpoint.local import KEYS_FILE
from serving.config import state_fingerprint
from tools.deployments import configs_folder, model_specs
from tools.endpoint_process import health, port_holder, start_endpoint
from tools.processes import record_pid

logger = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class StagedEndpoint:
    """The endpoint process of one environment before production."""

    environment: str
    url: str
    port: int

    @property
    def process(self) -> str:
        """Its name among the stack's processes (PID file, log file)."""
        return f"endpoint-{self.environment}-{self.port}"

    def state_dir(self, settings: Settings) -> Path:
        return (settings.state_dir / "environments" / f"{self.environment}-{self.port}").resolve()


def staged_endpoints(configs: Path) -> list[StagedEndpoint]:
    """The local endpoints the specs under `configs` stage candidates on, one per port; an
    environment on another host is left to whoever runs that host."""
    found: dict[int, StagedEndpoint] = {}
    for _, spec in model_specs(configs):
        for env in spec.environments[:-1]:
            if env.endpoint is None or env.endpoint.backend != "local" or not env.endpoint.url:
                continue
            parts = urlsplit(env.endpoint.url)
            if parts.hostname not in LOOPBACK:
                logger.info("Environment '%s' of %s is at %s: not started here",
                            env.name, spec.name, env.endpoint.url)
                continue
            port = parts.port or 80
            found.setdefault(port, StagedEndpoint(env.name, env.endpoint.url.rstrip("/"), port))
    return list(found.values())


def _process_env(settings: Settings, staged: StagedEndpoint) -> dict[str, str]:
    """Production's keys, the shared registry as model root, the environment's own folder."""
    saved = json.loads((settings.endpoint_state_dir / KEYS_FILE).read_text())
    key = settings.endpoint_key.get_secret_value() if settings.endpoint_key else saved["key"]
    admin = (settings.endpoint_admin_key.get_secret_value() if settings.endpoint_admin_key
             else saved["admin_key"])
    registry = settings.registry_location
    if "://" not in registry:
        registry = str(Path(registry).resolve())
    return {
        "MLOPS_ENDPOINT_KEY": key, "MLOPS_ENDPOINT_ADMIN_KEY": admin,
        "MLOPS_ENDPOINT_REGISTRY_URL": registry,
        "MLOPS_ENDPOINT_STATE_DIR": str(staged.state_dir(settings)),
    }


def up(settings: Settings) -> list[StagedEndpoint]:
    """Start every staged endpoint that is not already up (after production's endpoint, whose
    keys it takes); keep one that answers for its own state folder.

    Raises:
        SystemExit: a staged URL's port is held by another process (named).
    """
    started = staged_endpoints(configs_folder(settings))
    for staged in started:
        folder = staged.state_dir(settings)
        answer = health(staged.url)
        if answer is not None and answer.get("state") == state_fingerprint(folder / "endpoint"):
            logger.info("Endpoint of '%s' already up at %s", staged.environment, staged.url)
            continue
        if answer is not None:
            raise SystemExit(
                f"{staged.url} (environment '{staged.environment}') is taken by another "
                f"process, not this stack's endpoint for {folder}: {port_holder(staged.port)}"
            )
        proc = start_endpoint(
            folder, staged.port, _process_env(settings, staged),
            log_path=settings.state_dir / "logs" / f"{staged.process}.log",
        )
        record_pid(settings, staged.process, proc.pid)
        logger.info("Endpoint of '%s' up at %s (pid %s)", staged.environment, staged.url,
                    proc.pid)
    return started


def status(settings: Settings) -> None:
    """Whether each staged endpoint answers."""
    for staged in staged_endpoints(configs_folder(settings)):
        logger.info("endpoint of '%s' %s: %s", staged.environment, staged.url,
                    "healthy" if health(staged.url) is not None else "not answering")
