"""Bad data through the whole training flow, with a champion serving behind the endpoint.

A representative subset of the corpus in `tests/tasks/test_bad_data.py` (one per kind of
failure: a partition, a value, a format, a header, the target): each run fails with its clear
message, shown once in the logs, and leaves the registry, the champion and the endpoint as
they were. A spec that drops rows without a target trains, and the bundle counts them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.training import training
from mlops.core.errors import MlopsError
from mlops.core.settings import Settings
from mlops.endpoint.local import LocalEndpointClient
from mlops.registry.local import LocalRegistry
from tests.conftest import write_spec
from tests.tasks.test_bad_data import CORPUS, DROP_TARGET, Fails, _no_target, write
from tools.datasets import make_churn

pytestmark = [pytest.mark.slow, pytest.mark.service, pytest.mark.usefixtures("prefect_server")]

FAST = {"model.params": {"max_iter": 3, "max_depth": 1, "learning_rate": 0.05},
        "evaluation.minimum": 0.5}
SUBSET = (
    "partition-missing-a-column", "csv-partition-missing-a-column", "int-beyond-int64",
    "plus-inf-min-only", "mixed-date-formats", "semicolon-csv", "duplicate-csv-header",
    "csv-gzip-format-csv-broken", "target-missing-on-some-rows", "huge-bad-value",
    "fraction-in-int-column",
)
FLOW_CORPUS = {
    **{name: CORPUS[name] for name in SUBSET if name in CORPUS},
    "csv-gzip-format-csv-broken": (write("data.csv.gz", lambda r: r.drop(columns=["region"]),
                                         {"data.format": "csv"}),
                                   Fails(MlopsError, "load_data", ("data.csv.gz", "['region']"))),
}


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.text.append(self.format(record))


@pytest.fixture
def run_logs() -> Iterator[_Lines]:
    """Everything the flow and task runs log, formatted as the console shows it."""
    handler = _Lines()
    loggers = [logging.getLogger(n) for n in ("prefect.flow_runs", "prefect.task_runs")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


@pytest.fixture(scope="module")
def champion(stack: Settings, churn_data: str, tmp_path_factory: pytest.TempPathFactory) -> int:
    """A first churn model, promoted and serving."""
    folder = tmp_path_factory.mktemp("champion")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_STATE_DIR", str(stack.state_dir))
        patch.setenv("MLOPS_ENDPOINT_URL", stack.endpoint_url)
        state = training(spec_path=write_spec(folder, "churn", FAST), data_url=churn_data,
                         return_state=True)
        assert state.result()["outcome"] == "promoted"
    return state.result()["version"]


def _world(stack: Settings) -> tuple:
    """Registry versions, champion, and what the endpoint serves with which traffic."""
    registry = LocalRegistry(stack.registry_location)
    state = LocalEndpointClient.from_settings(stack).state()
    served = {name: d.get("model_version") for name, d in state["deployments"].items()}
    return registry.versions("churn"), registry.alias("churn"), served, state["traffic"]


@pytest.mark.parametrize(("make", "expected"), FLOW_CORPUS.values(), ids=FLOW_CORPUS.keys())
def test_bad_data_fails_the_flow_and_changes_nothing(
    make, expected, champion, use_stack, tmp_path: Path, run_logs: _Lines
):
    spec_path, url = make(tmp_path, make_churn(1500, seed=7))
    before = _world(use_stack)
    assert before[1] == champion
    state = training(spec_path=spec_path, data_url=url, return_state=True)
    assert state.is_failed()
    with pytest.raises(expected.error) as info:
        state.result()
    message = str(info.value)
    for name in expected.names:
        assert name in message, message
    assert message in state.message  # the flow run's failure message carries it
    assert _world(use_stack) == before
    logged = "\n".join(run_logs.text)
    assert logged.count(message.splitlines()[0]) == 1, logged
    assert "Traceback" not in logged, logged


def test_rows_without_a_target_are_dropped_and_counted(use_stack, tmp_path: Path):
    make = write("cars.csv", _no_target(8), {**FAST, **DROP_TARGET, "name": "churn-drop"})
    spec_path, url = make(tmp_path, make_churn(1500, seed=7))
    state = training(spec_path=spec_path, data_url=url, return_state=True)
    version = state.result()["version"]
    manifest = LocalRegistry(use_stack.registry_location).get("churn-drop", version).manifest
    assert (manifest["source_rows"], manifest["clean_rows"]) == (1500, 1492)
