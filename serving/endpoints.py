"""The endpoints one server process hosts, as Azure ML gives each endpoint its own scoring URI.

The default endpoint answers the plain paths (``/score``, ``/admin/...``, ``/metrics``) and
keeps its state and keys in ``<state>/endpoint/``, its inference log under
``<inference>/<MLOPS_ENDPOINT_NAME>/``. Every other endpoint answers under
``/endpoints/<name>/`` and keeps its own in ``<state>/endpoint/endpoints/<name>/`` (the same
``state.json`` and ``keys.json``) and ``<inference>/<name>/``. Each holds what one endpoint
process held before there were several: deployments and traffic (`serving.state.Endpoint`),
keys, counters and an inference collector, in a `Hosted`.

An endpoint other than the default is created by ``PUT /endpoints/<name>`` with the server's
admin key (the default endpoint's), which answers its keys, and deleted by
``DELETE /endpoints/<name>`` once it has no deployments. A restart opens every endpoint whose
folder holds a ``keys.json``.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from serving.collect import InferenceCollector
from serving.config import ENDPOINT_NAME, EndpointConfig, named_endpoint_dir
from serving.errors import ServingError
from serving.metrics import Metrics
from serving.mirror import Mirror
from serving.model_roots import parse_root
from serving.state import KEYS_FILE, Endpoint, EndpointState, Keys, resolve_keys, save_state

logger = logging.getLogger(__name__)

# The server's scoring of a table on one endpoint: (hosted, deployment, table, probabilities,
# request id, mirrored) -> the answer's body; an endpoint's mirror scores its copies with it.
HostedScoreOn = Callable[..., Awaitable[dict[str, Any]]]



def check_endpoint_name(name: str) -> None:
    """Raises ServingError (422) unless `name` is a valid endpoint name."""
    if not ENDPOINT_NAME.match(name):
        raise ServingError(
            422, f"endpoint name '{name[:64]}' must be 3-32 letters, digits or '-', starting "
            "with a letter and not ending with '-'"
        )


@dataclass(eq=False)
class Hosted:
    """One endpoint as the server runs it: deployments and traffic, keys, counters, collector."""

    name: str
    folder: Path
    endpoint: Endpoint
    metrics: Metrics
    scoring_key: bytes = b""
    admin_key: bytes = b""
    collector: InferenceCollector | None = None
    restoring: asyncio.Task[None] | None = None
    mirror: Mirror | None = None  # set by `Endpoints` with the server's scoring

    def open(self, keys: Keys, config: EndpointConfig) -> None:
        """Take the keys, start the collector, recall the saved deployments and start loading
        their models (on the running event loop)."""
        self.scoring_key, self.admin_key = keys.scoring.encode(), keys.admin.encode()
        if config.collect:
            self.collector = InferenceCollector(
                config.inference_url, self.name, flush_rows=config.collect_flush_rows,
                flush_s=config.collect_flush_s, max_rows=config.collect_queue_rows,
            )
            self.collector.start()
        self.endpoint.recall()
        self.restoring = asyncio.create_task(self.endpoint.restore())

    async def close(self) -> None:
        if self.restoring is not None and not self.restoring.done():
            self.restoring.cancel()
        if self.mirror is not None:
            self.mirror.close()
        if self.collector is not None:
            await asyncio.to_thread(self.collector.close)

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """Whether it can serve, and what the readiness answer says."""
        restoring = self.restoring is not None and not self.restoring.done()
        ready, waiting = self.endpoint.ready()
        if ready and not restoring:
            return True, {"ready": True}
        return False, {"ready": False, "waiting_for": waiting, "restoring": restoring}

    def describe(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "endpoint": self.name, "ready": self.endpoint.ready()[0], **self.endpoint.describe(),
        }
        if self.collector is not None:
            state["collection"] = self.collector.stats()
        if self.mirror is not None:
            state["mirror_copies"] = self.mirror.stats()
        return state


class Endpoints:
    """Every endpoint of the server by name, the default one included (under its own name)."""

    def __init__(self, config: EndpointConfig, score_on: HostedScoreOn) -> None:
        self.config = config
        self._score_on = score_on
        self._roots = [parse_root(root) for root in config.allowed_model_roots]
        self.default = self._hosted(config.name, config.endpoint_dir)
        self.by_name: dict[str, Hosted] = {config.name: self.default}

    @property
    def named_dir(self) -> Path:
        return named_endpoint_dir(self.config.state_dir, "")

    def _hosted(self, name: str, folder: Path) -> Hosted:
        config = self.config
        endpoint = Endpoint(folder, config.drain_timeout_s, self._roots, config.fast_path)
        hosted = Hosted(name, folder, endpoint, Metrics(name))
        hosted.mirror = Mirror(endpoint, hosted.metrics, partial(self._score_on, hosted),
                               config.mirror_queue)
        return hosted

    def open_all(self) -> None:
        """Open the default endpoint (keys from the settings, else its keys file) and every
        endpoint created before.

        Raises:
            ValueError: a saved state or a folder name is not valid (the server refuses to
                start rather than forget an endpoint), or the default's two keys are equal.
        """
        config = self.config
        self.default.open(resolve_keys(
            config.endpoint_dir,
            config.key.get_secret_value() if config.key else None,
            config.admin_key.get_secret_value() if config.admin_key else None,
        ), config)
        found = sorted(p.parent for p in self.named_dir.glob(f"*/{KEYS_FILE}"))
        for folder in found:
            if not ENDPOINT_NAME.match(folder.name) or folder.name == config.name:
                raise ValueError(f"{folder} is not an endpoint's folder: its name is not a valid "
                                 f"endpoint name, or it is the default's; move it away")
            hosted = self.by_name[folder.name] = self._hosted(folder.name, folder)
            hosted.open(resolve_keys(folder, None, None), config)
        if found:
            logger.info("Opened endpoints %s", [folder.name for folder in found])

    async def close_all(self) -> None:
        for hosted in self.by_name.values():
            await hosted.close()

    def get(self, name: str) -> Hosted:
        """The endpoint called `name`; a 404 that lists the known names otherwise."""
        hosted = self.by_name.get(name)
        if hosted is None:
            raise ServingError(
                404, f"no endpoint named '{name[:64]}'; known: {sorted(self.by_name)}"
            )
        return hosted

    def create(self, name: str) -> tuple[Hosted, bool]:
        """The endpoint `name`, created (with generated keys and an empty state, both saved at
        once so a restart keeps it) unless it exists; and whether it was created."""
        check_endpoint_name(name)
        if name in self.by_name:
            return self.by_name[name], False
        folder = named_endpoint_dir(self.config.state_dir, name)
        keys = resolve_keys(folder, None, None)
        save_state(folder, EndpointState())
        hosted = self.by_name[name] = self._hosted(name, folder)
        hosted.open(keys, self.config)
        logger.info("Created endpoint %s", name)
        return hosted, True

    async def delete(self, name: str) -> dict[str, Any]:
        """Remove an endpoint without deployments, with its state and keys (its inference
        log stays).

        Raises:
            ServingError: 404 if unknown, 409 for the default endpoint or while it has
                deployments.
        """
        hosted = self.get(name)
        if hosted is self.default:
            raise ServingError(409, f"'{name}' is the default endpoint; it cannot be deleted")
        if hosted.endpoint.deployments:
            raise ServingError(
                409, f"endpoint '{name}' still has deployments "
                f"{sorted(hosted.endpoint.deployments)}; delete them first"
            )
        del self.by_name[name]
        # two small files, removed before any await: a create of the same name cannot interleave
        shutil.rmtree(hosted.folder)
        await hosted.close()
        logger.info("Deleted endpoint %s", name)
        return {"deleted": name}

    def describe(self) -> dict[str, Any]:
        """Each endpoint's deployments and traffic, by name."""
        return {
            name: {"ready": h.endpoint.ready()[0], **h.endpoint.describe()}
            for name, h in sorted(self.by_name.items())
        }
