"""The local stack: start and stop the services as background processes with recorded PIDs.

``mlops up`` brings up, from nothing: a Prefect server (SQLite in the state folder, analytics
off, on 127.0.0.1), the process work pool and a worker, the local endpoint server (with the
endpoint of every model under the configs folder, `MLOPS_CONFIGS_DIR`, docs/endpoints.md), the
MLflow UI (from its own environment, `.venv-mlflow`, on the tracking store in the state folder;
started beside the Prefect server and waited for before any run);
deploys every model's deployments (prefect.yaml's set, repeated for each spec by
tools/deployments.py), trains every model that has no champion yet (all at once, each through
its own manual training deployment), waits for them and prints the URLs. ``endpoint-up``
starts only the endpoint. ``down`` stops exactly the processes started here (by their recorded
PIDs), ``status`` says what runs. Logs go to ``<state>/logs/``.

While the stack is up, ``<state>/stack.env`` holds ``PREFECT_API_URL``; the Makefile reads it,
so ``make run`` and the ``prefect`` CLI talk to the stack's server instead of a temporary one.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from mlops.core.settings import DEFAULT_SPEC, Settings
from mlops.core.spec import load_spec
from mlops.tracking.local import local_folder, local_target
from tools import environments
from tools.deployments import (
    configs_folder,
    deploy,
    deployment_name,
    model_specs,
    write_deployments,
)
from tools.endpoint_process import endpoint_up, model_endpoints_up
from tools.notifications import install_automations
from tools.prefect_server import command as prefect_command
from tools.processes import ROOT, answers, pid_path, record_pid, running, start_process

logger = logging.getLogger(__name__)

BIN = Path(sys.executable).parent
MLFLOW_BIN = ROOT / ".venv-mlflow" / "bin" / "mlflow"
MANUAL_TRAINING = "training-manual"
WATCH_FLOW = "watch-data"


def _healthy(url: str) -> bool:
    return answers(f"{url.rstrip('/')}/health")


def prefect_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.prefect_port}"


def stack_env(settings: Settings) -> dict[str, str]:
    """The environment every stack process and CLI call gets: one state folder, one server."""
    state = settings.state_dir.resolve()
    return {
        **os.environ,
        "MLOPS_STATE_DIR": str(state),
        "MLOPS_ENDPOINT_URL": settings.endpoint_url,
        "MLOPS_CONFIGS_DIR": str(configs_folder(settings)),
        "PREFECT_HOME": str(state / "prefect"),
        "PREFECT_API_URL": f"{prefect_url(settings)}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(settings.prefect_port),
    }


def _start(
    settings: Settings,
    name: str,
    command: Sequence[str],
    ready: str,
    env: dict[str, str],
    timeout_s: float,
) -> int:
    """Start a stack service logging to `<state>/logs/<name>.log` and record its PID."""
    log_file = settings.state_dir / "logs" / f"{name}.log"
    proc = start_process(command, ready, env, log_file, timeout_s)
    record_pid(settings, name, proc.pid)
    logger.info("%s up (pid %s), log %s", name, proc.pid, log_file)
    return proc.pid


def prefect_server_up(settings: Settings, timeout_s: float = 120.0) -> None:
    """A Prefect server with its SQLite database in `<state>/prefect`, bound to loopback."""
    url = prefect_url(settings)
    if _healthy(f"{url}/api"):
        logger.info("Prefect server already up at %s", url)
        return
    env = stack_env(settings)
    Path(env["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    _start(
        settings, "prefect-server",
        prefect_command("server", "start", "--host", "127.0.0.1",
                        "--port", str(settings.prefect_port)),
        f"{url}/api/health", env, timeout_s,
    )
    (settings.state_dir / "stack.env").write_text(f"PREFECT_API_URL={url}/api\n")


def mlflow_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.mlflow_port}"


def mlflow_ui_up(settings: Settings, timeout_s: float = 180.0) -> None:
    """`mlflow server` (one worker, loopback) on the SQLite store and artifact folder the flows
    write (mlops/tracking/local.py). Without `.venv-mlflow` it says how to get it and goes on:
    runs are recorded either way."""
    url = mlflow_url(settings)
    if answers(f"{url}/health"):
        logger.info("MLflow UI already up at %s", url)
        return
    if not MLFLOW_BIN.exists():
        logger.warning("MLflow UI not started: %s is missing; `make mlflow-env` installs it",
                       MLFLOW_BIN)
        return
    target = local_target(settings.state_dir)
    artifacts = local_folder(settings.state_dir) / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    _start(
        settings, "mlflow-ui",
        [str(MLFLOW_BIN), "server", "--backend-store-uri", target.uri,
         "--default-artifact-root", str(target.artifact_location),
         "--artifacts-destination", str(artifacts),
         "--host", "127.0.0.1", "--port", str(settings.mlflow_port), "--workers", "1"],
        f"{url}/health", stack_env(settings), timeout_s,
    )


def _prefect(settings: Settings, *args: str) -> None:
    """Run a `prefect` CLI command against the stack's server; fail loudly with its output."""
    result = subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", *args], env=stack_env(settings), cwd=ROOT,
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"prefect {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    logger.debug("%s", result.stdout)


def worker_up(settings: Settings) -> None:
    """The process work pool (created or kept) and one worker polling it."""
    if running(pid_path(settings, "worker")):
        logger.info("Worker already running")
        return
    _prefect(settings, "work-pool", "create", settings.work_pool, "--type", "process",
             "--overwrite")
    _start(
        settings, "worker",
        [str(BIN / "prefect"), "worker", "start", "--pool", settings.work_pool,
         "--type", "process"],
        "", stack_env(settings), 0,
    )


def deploy_all(settings: Settings) -> None:
    """Every model's deployments, generated from prefect.yaml and the configs folder's specs,
    on the stack's server (`mlops deploy`), its inboxes created, and the notification automations
    of automations/ (tools/notifications.py)."""
    for _, spec in model_specs(configs_folder(settings)):
        (ROOT / "data" / "incoming" / spec.name).mkdir(parents=True, exist_ok=True)
    deploy(write_deployments(settings), stack_env(settings))
    logger.info("Deployed every model's deployments (%s/*.yaml)", configs_folder(settings))
    with stack_api(settings):
        install_automations(settings)


@contextmanager
def stack_api(settings: Settings) -> Iterator[None]:
    """Point this process's Prefect client at the stack's server for the block."""
    from prefect.settings import PREFECT_API_URL, temporary_settings  # noqa: PLC0415

    with temporary_settings(updates={PREFECT_API_URL: f"{prefect_url(settings)}/api"}):
        yield


def first_look(settings: Settings, timeout_s: float = 300) -> None:
    """Run every model's watcher once now, so a file dropped before its first scheduled run is
    announced (the watcher's very first look only records what is already there)."""
    from prefect.deployments import run_deployment  # noqa: PLC0415

    default_model = load_spec(ROOT / DEFAULT_SPEC).name
    for _, spec in model_specs(configs_folder(settings)):
        if not spec.schedule.on_new_data:
            continue
        name = f"{WATCH_FLOW}/{deployment_name(WATCH_FLOW, spec.name, default_model)}"
        with stack_api(settings):
            run = run_deployment(name, timeout=timeout_s)
        if not (run.state and run.state.is_completed()):
            raise SystemExit(
                f"the data watcher {name}'s first run ended "
                f"{run.state.name if run.state else 'unknown'}; "
                f"see {settings.state_dir}/logs/worker.log"
            )
    logger.info("Data watchers ran once; they now run every minute")


def _untrained(settings: Settings, spec_path: str | None) -> dict[str, tuple[str, str]]:
    """{model: (its manual training deployment, spec path)} of every model under the configs
    folder with no champion yet, and of the named spec's model unless it has one (a spec
    outside the configs folder goes through the default model's deployment, as a person's
    run from the UI form would)."""
    from mlops.registry.backend import registry_for  # noqa: PLC0415

    default_model = load_spec(ROOT / DEFAULT_SPEC).name
    models = {spec.name: (path, spec) for path, spec in model_specs(configs_folder(settings))}
    named = {}
    if spec_path:
        spec = load_spec(spec_path)
        named[spec.name] = (spec_path, spec)
    todo = {}
    for model, (path, spec) in {**models, **named}.items():
        champion = registry_for(spec, settings).alias(spec.model_name)
        if champion is not None:
            logger.info("%s has a champion (version %s): not trained by `up`", model, champion)
            continue
        name = deployment_name(MANUAL_TRAINING, model if model in models else default_model,
                               default_model)
        todo[model] = (f"training/{name}", path)
    return todo


def first_runs(settings: Settings, spec_path: str | None, timeout_s: float) -> dict[str, str]:
    """Train every model that has no champion yet, through its own manual training deployment:
    all started at once (each model holds its own training slot, so they run side by side as
    far as the worker's machine allows) and waited for together.

    Returns:
        The final state of each model's run.

    Raises:
        SystemExit: a run did not complete (or not within `timeout_s`); names every such model
            with the run's page.
    """
    from prefect import get_client  # noqa: PLC0415
    from prefect.deployments import run_deployment  # noqa: PLC0415

    todo = _untrained(settings, spec_path)
    runs, states = {}, {}
    with stack_api(settings):
        for model, (deployment, path) in todo.items():
            runs[model] = run_deployment(deployment, timeout=0, parameters={
                "spec_path": path, "reason": "first run of the local stack"}).id
            logger.info("Started the first training run of %s (%s)", model, deployment)
        deadline = time.monotonic() + timeout_s
        with get_client(sync_client=True) as client:
            while len(states) < len(runs) and time.monotonic() < deadline:
                for model in runs.keys() - states.keys():
                    state = client.read_flow_run(runs[model]).state
                    if state and state.is_final():
                        states[model] = state.name
                        logger.info("First training run of %s: %s", model, state.name)
                time.sleep(2)
    failed = {m: states.get(m, f"not finished after {timeout_s:.0f} s") for m in runs
              if states.get(m) != "Completed"}
    if failed:
        raise SystemExit("first training runs that did not complete:\n" + "\n".join(
            f"  {model}: {state}, {prefect_url(settings)}/runs/flow-run/{runs[model]}"
            for model, state in failed.items()) + f"\nsee {settings.state_dir}/logs/worker.log")
    return states


def up(settings: Settings, spec_path: str = DEFAULT_SPEC, timeout_s: float = 900) -> None:
    """Everything, from nothing; idempotent (what already runs is kept, a model with a
    champion is not retrained)."""
    endpoint_up(settings)
    endpoints = model_endpoints_up(settings)
    environments.up(settings)  # the specs' staging endpoints, on production's keys
    # The MLflow UI (about 10 s to answer) starts beside the Prefect server (about 15 s) and
    # the deployments, on the other core; it has set up its store before a run writes to it.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-ui-up") as beside:
        mlflow = beside.submit(mlflow_ui_up, settings)
        prefect_server_up(settings)
        worker_up(settings)
        deploy_all(settings)
        mlflow.result()  # raises its SystemExit: the UI did not come up
    first_look(settings)
    first_runs(settings, spec_path, timeout_s)
    served = "".join(f"\n  {model}: {url}" for model, url in endpoints.items())
    logger.info(
        "\nPrefect UI:  %s\nMLflow UI:   %s\nEndpoint:    %s  (keys in %s)%s\nLogs:        %s\n"
        "Drop data files into data/incoming/<model>/ to start a training run of that model; "
        "`make down` stops all.",
        prefect_url(settings), mlflow_url(settings), settings.endpoint_url,
        settings.endpoint_state_dir, served, settings.state_dir / "logs",
    )


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc): the worker starts flow runs in new sessions,
    so stopping its process group alone would leave a running flow behind."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def down(settings: Settings, timeout_s: float = 15.0) -> None:
    """Stop every process started by this module (by its recorded PID, with everything it
    started) and wait for them."""
    stopping: dict[str, list[int]] = {}
    for pid_file in sorted((settings.state_dir / "pids").glob("*.pid")):
        pid = running(pid_file)
        if pid:
            family = [pid, *_descendants(pid)]
            for member in family:
                try:
                    os.kill(member, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            stopping[pid_file.stem] = family
        pid_file.unlink(missing_ok=True)
    deadline = time.monotonic() + timeout_s
    for name, family in stopping.items():
        for member in family:
            while _alive(member) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _alive(member):
                os.kill(member, signal.SIGKILL)
                logger.warning("%s: pid %s did not stop in time; killed", name, member)
                gone_by = time.monotonic() + 5  # SIGKILL is delivered, not waited for
                while _alive(member) and time.monotonic() < gone_by:
                    time.sleep(0.05)
        logger.info("Stopped %s (pid %s%s)", name, family[0],
                    f" and {len(family) - 1} child process(es)" if len(family) > 1 else "")
    (settings.state_dir / "stack.env").unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    """Running; a process that has exited but not been reaped yet (a zombie) is not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a stopped child of ours stays a zombie until we reap it
        if os.waitpid(pid, os.WNOHANG)[0]:
            return False
    except ChildProcessError:
        pass  # not our child: its own parent reaps it
    if not Path("/proc/self").exists():
        return True  # no procfs (macOS): the signal check above is all there is
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False  # gone since the signal check
    return state != "Z"


def status(settings: Settings) -> None:
    for pid_file in sorted((settings.state_dir / "pids").glob("*.pid")):
        pid = running(pid_file)
        logger.info("%s: %s", pid_file.stem, f"running (pid {pid})" if pid else "not running")
    url = settings.endpoint_url
    logger.info("endpoint %s: %s", url, "healthy" if _healthy(url) else "not answering")
    environments.status(settings)
    api = prefect_url(settings)
    logger.info("prefect %s: %s", api, "healthy" if _healthy(f"{api}/api") else "not answering")
    ui = mlflow_url(settings)
    logger.info("mlflow %s: %s", ui, "healthy" if _healthy(ui) else "not answering")

