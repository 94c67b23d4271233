"""What the endpoint must remember across restarts: deployments, traffic and keys.

``<state_dir>/endpoint/state.json`` holds each deployment's model URL (with the model name and
version it had), the traffic table and the mirror traffic table; it is replaced atomically on
every change, so a crash leaves the old state or the new one. On start the server loads every
deployment again from its URL. ``keys.json`` (mode 0600) holds generated keys; keys are never
logged.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import json
import logging
import os
import random
import re
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from serving.bundle import load_bundle
from serving.errors import BundleLoadError, ServingError
from serving.model_roots import Root, check_model_url
from serving.scoring import Scorer
from serving.traffic import READY, MirrorTable, traffic_problems

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"
KEYS_FILE = "keys.json"


@dataclass(frozen=True)
class DeploymentRecord:
    """A deployment as persisted: enough to load it again."""

    model_url: str
    model_name: str = ""
    model_version: str = ""


@dataclass(frozen=True)
class EndpointState:
    deployments: dict[str, DeploymentRecord] = field(default_factory=dict)
    traffic: dict[str, int] = field(default_factory=dict)
    mirror_traffic: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "deployments": {k: asdict(v) for k, v in self.deployments.items()},
            "traffic": dict(self.traffic), "mirror_traffic": dict(self.mirror_traffic),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EndpointState:
        return cls(
            deployments={
                k: DeploymentRecord(**v) for k, v in data.get("deployments", {}).items()
            },
            traffic={k: int(v) for k, v in data.get("traffic", {}).items()},
            mirror_traffic={k: int(v) for k, v in data.get("mirror_traffic", {}).items()},
        )


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write via a temporary file and a rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_state(endpoint_dir: Path) -> EndpointState:
    """The saved state, or an empty endpoint the first time."""
    path = endpoint_dir / STATE_FILE
    try:
        return EndpointState.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return EndpointState()
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} is not a valid endpoint state; fix or remove it: {exc}") from exc


def save_state(endpoint_dir: Path, state: EndpointState) -> None:
    write_atomic(endpoint_dir / STATE_FILE, json.dumps(state.to_json(), indent=2).encode())


@dataclass(frozen=True)
class Keys:
    scoring: str
    admin: str

    def __repr__(self) -> str:  # keep keys out of logs and tracebacks
        return "Keys(scoring=***, admin=***)"


def _read_keys(path: Path) -> dict[str, str]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}


def resolve_keys(endpoint_dir: Path, scoring: str | None, admin: str | None) -> Keys:
    """Keys from the environment, else from keys.json, else generated and saved there (0600).

    Raises:
        ValueError: the scoring key and the admin key are the same, which would let every
            scoring client change deployments.
    """
    path = endpoint_dir / KEYS_FILE
    saved = _read_keys(path)
    wanted = {"key": scoring, "admin_key": admin}
    merged = dict(saved)
    for name, given in wanted.items():
        if not given and not saved.get(name):
            merged[name] = secrets.token_urlsafe(32)
    if merged != saved:
        write_atomic(path, json.dumps(merged).encode(), mode=0o600)
        logger.info("Generated endpoint keys into %s", path)
    keys = Keys(scoring or merged["key"], admin or merged["admin_key"])
    if keys.scoring == keys.admin:
        raise ValueError("the scoring key and the admin key must differ")
    return keys


# --- the live endpoint --------------------------------------------------------------------

DEPLOYMENT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,31}$")
LOADING, FAILED = "loading", "failed"  # and READY, from serving.traffic


@dataclass(eq=False)
class Deployment:
    """One named deployment as it runs: its model (once loaded) and its in-flight count.

    A replaced deployment object stays alive while requests that picked it finish, which is
    what draining waits for.
    """

    name: str
    record: DeploymentRecord
    scorer: Scorer | None = None
    status: str = LOADING
    error: str | None = None
    inflight: int = 0

    def describe(self) -> dict[str, Any]:
        return {
            **asdict(self.record), "status": self.status, "error": self.error,
            "inflight": self.inflight, "scoring": self.scorer.path if self.scorer else None,
        }


def settle_memory() -> None:
    """Take what is loaded now (modules, models) out of the garbage collector's rounds.

    A full collection walks every tracked object: about 170,000 once scikit-learn, pandas and a
    model are loaded, 90 ms during which no request is answered. Under load the requests'
    short-lived objects set one off every second or two, and those pauses were the endpoint's
    p99 latency. Objects alive after a load live as long as the deployment, so they are frozen
    (``gc.freeze``) and collections only look at newer ones. Unfreezing first lets this
    collection free a replaced or deleted model.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _load_scorer(url: str, roots: list[Root], fast_path: bool = True) -> Scorer:
    """The bundle at `url` ready to score (through the fast path if `fast_path`), or a
    ServingError: 403 outside the model roots (`ModelUrlRefused`, the same answer whether the
    path exists or not), 422 for a bundle that does not load."""
    check_model_url(url, roots)
    try:
        return Scorer(load_bundle(url), fast=fast_path)
    except (BundleLoadError, OSError, ValueError) as exc:
        raise ServingError(422, f"could not load a model bundle from {url}: {exc}") from exc


class Endpoint:
    """Deployments, traffic and routing of one endpoint; every change is saved at once.

    All methods run on the server's event loop thread, so routing a request and counting it in
    flight happen together, with no await in between: a request can never pick a deployment
    that a finished control call already removed.
    """

    def __init__(
        self, endpoint_dir: Path, drain_timeout_s: float = 60.0, model_roots: Iterable[Root] = (),
        fast_path: bool = True,
    ) -> None:
        """`model_roots`: where deployments may load bundles from (`serving.model_roots`);
        `fast_path`: whether models score through `serving.fastpath` where it is exact
        (``MLOPS_ENDPOINT_FAST_PATH``), else every request takes the plain pipeline."""
        self.endpoint_dir = endpoint_dir
        self.drain_timeout_s = drain_timeout_s
        self.model_roots = list(model_roots)
        self.fast_path = fast_path
        self.deployments: dict[str, Deployment] = {}
        self.traffic: dict[str, int] = {}
        self.mirror = MirrorTable()
        self._thresholds: list[float] = []
        self._routes: list[str] = []
        self._locks: dict[str, asyncio.Lock] = {}

    # routing ---------------------------------------------------------------------------

    def _reroute(self) -> None:
        total, self._thresholds, self._routes = 0, [], []
        for name, weight in self.traffic.items():
            if weight > 0:
                total += weight
                self._thresholds.append(total)
                self._routes.append(name)

    def pick(self, header: str | None) -> Deployment:
        """The deployment for one request: named by the header, else drawn by traffic weight.

        Raises:
            ServingError: 404 for an unknown name, 503 when nothing can serve.
        """
        if header:
            deployment = self.deployments.get(header)
            if deployment is None:
                raise ServingError(
                    404, f"no deployment named '{header}'; known: {sorted(self.deployments)}"
                )
        elif self._routes:
            draw = random.random() * self._thresholds[-1]
            deployment = self.deployments[self._routes[bisect.bisect_right(self._thresholds, draw)]]
        else:
            raise ServingError(
                503, "no deployment has traffic; set it with PUT /admin/traffic"
            )
        if deployment.status != READY:
            raise ServingError(503, f"deployment '{deployment.name}' is {deployment.status}")
        return deployment

    def ready(self) -> tuple[bool, list[str]]:
        """Whether every deployment with traffic is loaded, and which are not."""
        waiting = [
            name for name, weight in self.traffic.items()
            if weight > 0 and self.deployments[name].status != READY
        ]
        return not waiting, waiting

    # state -----------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {
            "deployments": {n: d.describe() for n, d in self.deployments.items()},
            "traffic": dict(self.traffic), "mirror_traffic": self.mirror.shares,
        }

    def _save(self) -> None:
        save_state(self.endpoint_dir, EndpointState(
            {n: d.record for n, d in self.deployments.items()}, dict(self.traffic),
            self.mirror.shares,
        ))

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def recall(self) -> None:
        """Read the saved deployments and traffic; their models load later in `restore`.

        Raises:
            ValueError: state.json is not valid JSON (the server refuses to start rather than
                forget its deployments).
        """
        state = load_state(self.endpoint_dir)
        for name, record in state.deployments.items():
            self.deployments[name] = Deployment(name, record)
        self.traffic = {n: state.traffic.get(n, 0) for n in state.deployments}
        self.mirror = MirrorTable(
            {n: v for n, v in state.mirror_traffic.items() if n in state.deployments})
        self._reroute()

    async def restore(self) -> None:
        """Load the model of every recalled deployment (a restart restores the endpoint)."""
        for name, record in [(n, d.record) for n, d in self.deployments.items()]:
            async with self._lock(name):
                current = self.deployments.get(name)
                if current is None or current.status != LOADING:
                    continue  # replaced or deleted through the control API meanwhile
                try:
                    current.scorer = await asyncio.to_thread(
                        _load_scorer, record.model_url, self.model_roots, self.fast_path)
                    current.status = READY
                    logger.info("Restored deployment %s from %s", name, record.model_url)
                except ServingError as exc:
                    current.status, current.error = FAILED, exc.message
                    logger.error("Deployment %s failed to load: %s", name, exc.message)
        settle_memory()

    async def _drain(self, deployment: Deployment) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_timeout_s
        while deployment.inflight and loop.time() < deadline:
            await asyncio.sleep(0.005)
        if deployment.inflight:
            logger.warning(
                "Deployment %s still had %s requests in flight after %.0f s",
                deployment.name, deployment.inflight, self.drain_timeout_s,
            )
        return deployment.inflight == 0

    async def put(self, name: str, model_url: str) -> dict[str, Any]:
        """Create or replace a deployment; the model is loaded before it takes requests.

        A replaced deployment keeps serving the requests that already picked it; this returns
        once they have finished (or the drain timeout passed).

        Raises:
            ServingError: 422 for a bad name or a bundle that does not load, 403 for a URL
                outside the model roots.
        """
        if not DEPLOYMENT_NAME.match(name):
            raise ServingError(
                422, f"deployment name '{name}' must be 1-32 letters, digits or '-', "
                "starting with a letter"
            )
        async with self._lock(name):
            scorer = await asyncio.to_thread(_load_scorer, model_url, self.model_roots,
                                             self.fast_path)
            bundle = scorer.bundle
            record = DeploymentRecord(model_url, bundle.model_name, bundle.version)
            old = self.deployments.get(name)
            self.deployments[name] = Deployment(name, record, scorer, READY)
            self.traffic.setdefault(name, 0)
            self._save()
            logger.info(
                "Deployment %s now serves %s version %s", name, record.model_name,
                record.model_version,
            )
            drained = await self._drain(old) if old else True
        del old  # the replaced model must be garbage before the collection below
        settle_memory()
        return {**self.deployments[name].describe(), "drained": drained}

    async def delete(self, name: str) -> dict[str, Any]:
        """Remove a deployment without traffic, after its in-flight requests finish.

        Raises:
            ServingError: 404 if unknown, 409 while it still has live or mirror traffic.
        """
        async with self._lock(name):
            deployment = self.deployments.get(name)
            if deployment is None:
                raise ServingError(404, f"no deployment named '{name}'")
            share = self.traffic.get(name, 0) or self.mirror.shares.get(name, 0)
            if share > 0:
                kind = "live" if self.traffic.get(name, 0) else "mirror"
                raise ServingError(
                    409, f"deployment '{name}' has {share}% of the {kind} traffic; "
                    "move it elsewhere first"
                )
            del self.deployments[name]
            self.traffic.pop(name, None)
            self._reroute()
            self._save()
            logger.info("Deleted deployment %s", name)
            drained = await self._drain(deployment)
        del deployment
        settle_memory()
        return {"deleted": name, "drained": drained}

    def set_traffic(self, table: Any) -> dict[str, int]:
        """Replace the traffic table; deployments left out get 0, and one that gets live
        traffic loses its mirror traffic (as on Azure ML).

        Raises:
            ServingError: 422 naming every problem (unknown or unloaded names, values that are
                not whole percentages, a total other than 100).
        """
        problems = traffic_problems(table, self.deployments)
        if problems:
            raise ServingError(422, "invalid traffic table: " + "; ".join(problems))
        self.traffic = {name: int(table.get(name, 0)) for name in self.deployments}
        self._reroute()
        if self.mirror.drop(n for n, v in self.traffic.items() if v > 0):
            logger.info("Mirror traffic taken off the deployment that now has live traffic")
        self._save()
        logger.info("Traffic is now %s", self.traffic)
        return dict(self.traffic)

    def set_mirror_traffic(self, table: Any) -> dict[str, int]:
        """Replace the mirror traffic table (Azure ML's rules, `serving.traffic`).

        Raises:
            ServingError: 422 naming every problem; the table stays as it was.
        """
        self.mirror.set(table, self.deployments, self.traffic)
        self._save()
        logger.info("Mirror traffic is now %s", self.mirror.shares)
        return self.mirror.shares

