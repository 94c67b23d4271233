"""`mlops rollback` (tools/rollback.py): the warm flip before the flow, on a real endpoint.

blue serves v1 (champion); v2 is promoted to green; the command returns to v1. The flow runs
on the session's Prefect server, in this process, as the command runs it.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator

import pytest

import tools.rollback as command
from flows.rollback import rollback as rollback_flow
from mlops.core.errors import DeploymentError
from mlops.core.settings import Settings
from tasks.deploy import promote
from tests.serving._models import toy_pipeline
from tests.tasks._release_env import (
    FRAME,
    Release,
    candidate,
    running_release,
    spec_for,
    under_load,
)
from tools.cli import command_parser
from tools.options import parameter_docs

pytestmark = [pytest.mark.service, pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

BEFORE, AFTER = {"blue": 0, "green": 100}, {"blue": 100, "green": 0}


@pytest.fixture
def release(tmp_path, monkeypatch) -> Iterator[Release]:
    """blue v1 at 100% and champion; the release tasks run outside a flow to set it up."""
    from prefect.settings import PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW, temporary_settings

    state = tmp_path / "state"
    monkeypatch.setenv("MLOPS_STATE_DIR", str(state))
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "INFO")  # the command sets it where unset
    with temporary_settings({PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore"}), \
            running_release(tmp_path, state, monkeypatch) as running:
        yield running


def _promoted(release: Release, max_iter: int = 25, previous: int = 1) -> str:
    """v2 (or the next) released to the idle slot with all the traffic; returns the spec."""
    spec = spec_for(release, [100])
    version, plan = candidate(release, toy_pipeline(FRAME, max_iter), spec,
                              previous_champion=previous)
    promote(plan, version, spec, "nightly schedule")
    return f"{release.spec_dir}/toy.yaml"


@pytest.fixture
def seen_by_flow(monkeypatch, release) -> list[tuple[dict, int | None]]:
    """The endpoint's traffic and the champion at the moment each flow run starts."""
    seen: list[tuple[dict, int | None]] = []
    real = command._run_flow

    def spy(**parameters):
        seen.append((release.client.state()["traffic"], release.registry.alias("toy")))
        return real(**parameters)

    monkeypatch.setattr(command, "_run_flow", spy)
    return seen


def test_the_command_flips_first_then_the_flow_records_it(release, seen_by_flow):
    path = _promoted(release)
    assert release.client.state()["traffic"] == BEFORE
    result, statuses = under_load(release, lambda: command.rollback(
        Settings(), spec_path=path, reason="alice: wrong answers"))
    assert set(statuses) == {200} and len(statuses) > 20
    assert seen_by_flow == [(AFTER, 2)]  # traffic on v1 before the flow, champion not yet
    assert result["how"] == "traffic flip to the warm deployment 'blue'"
    assert release.client.state()["traffic"] == AFTER
    assert release.registry.alias("toy") == 1
    entry = release.registry.releases("toy")[-1]
    assert (entry.kind, entry.version, entry.champion_before, entry.champion_after) == (
        "rollback", 1, 2, 1)
    assert (entry.traffic_before, entry.traffic_after) == (BEFORE, AFTER)
    assert entry.reason == "alice: wrong answers" and entry.flow_run_id
    assert not command.flip_path(Settings(), "toy").exists()


def test_a_cold_target_goes_to_the_flow_unflipped(release, seen_by_flow):
    _promoted(release)  # green v2
    path = _promoted(release, 40, 2)  # blue v3; green keeps v2 warm, v1 is gone
    result = command.rollback(Settings(), spec_path=path, version=1, reason="bob")
    assert seen_by_flow == [({"blue": 100, "green": 0}, 3)]
    assert result["how"] == "redeployed to 'green', smoke-tested, traffic flipped"
    state = release.client.state()
    assert state["traffic"] == {"blue": 0, "green": 100}
    assert state["deployments"]["green"]["model_version"] == "1"
    entry = release.registry.releases("toy")[-1]
    assert (entry.version, entry.champion_before, entry.traffic_before) == (
        1, 3, {"blue": 100, "green": 0})
    assert not command.flip_path(Settings(), "toy").exists()


def test_a_flow_failing_before_the_champion_moved_is_named_and_a_rerun_finishes(
        release, monkeypatch):
    path = _promoted(release)
    real = command._run_flow

    def prefect_down(**parameters):
        raise ConnectionError("the Prefect API at http://127.0.0.1:9 refused the connection")

    monkeypatch.setattr(command, "_run_flow", prefect_down)
    with pytest.raises(DeploymentError) as failed:
        command.rollback(Settings(), spec_path=path, reason="carol")
    message = str(failed.value)
    assert "done: traffic to v1 on 'blue'; not done: champion to v1, the release history's " \
        "rollback entry; the rollback flow failed: ConnectionError: the Prefect API" in message
    assert "Run the same command again to finish it" in message
    assert release.client.state()["traffic"] == AFTER and release.registry.alias("toy") == 2
    assert json.loads(command.flip_path(Settings(), "toy").read_text())["traffic_before"] \
        == BEFORE

    monkeypatch.setattr(command, "_run_flow", real)
    command.rollback(Settings(), spec_path=path, reason="carol")
    entry = release.registry.releases("toy")[-1]
    assert (entry.kind, entry.champion_before, entry.champion_after) == ("rollback", 2, 1)
    assert (entry.traffic_before, entry.traffic_after) == (BEFORE, AFTER)
    assert release.registry.alias("toy") == 1
    assert not command.flip_path(Settings(), "toy").exists()


def test_a_flow_failing_after_the_champion_moved_is_named_and_a_rerun_records_it(release):
    path = _promoted(release)
    history = release.registry_dir / "toy" / "releases.jsonl"
    kept = history.read_bytes()
    history.unlink()
    history.mkdir()  # the history cannot be appended to: the flow fails after set_alias
    with pytest.raises(DeploymentError) as failed:
        command.rollback(Settings(), spec_path=path)
    assert "done: traffic to v1 on 'blue', champion to v1; not done: the release history's " \
        "rollback entry (unknown: [Errno 21] Is a directory" in str(failed.value)
    assert "the rollback flow failed: IsADirectoryError" in str(failed.value)

    history.rmdir()
    history.write_bytes(kept)
    command.rollback(Settings(), spec_path=path)  # champion is v1 already: only the entry
    releases = release.registry.releases("toy")
    assert [(r.kind, r.version, r.champion_before) for r in releases] == [
        ("promotion", 2, 1), ("rollback", 1, 2)]
    assert (releases[-1].traffic_before, releases[-1].traffic_after) == (BEFORE, AFTER)
    assert release.registry.alias("toy") == 1
    assert not command.flip_path(Settings(), "toy").exists()


def test_an_unfinished_rollback_is_finished_before_another_version(release, monkeypatch):
    path = _promoted(release)
    monkeypatch.setattr(command, "_run_flow", lambda **_: (_ for _ in ()).throw(OSError("x")))
    with pytest.raises(DeploymentError):
        command.rollback(Settings(), spec_path=path)
    with pytest.raises(DeploymentError, match=r"a rollback of toy to v1 is unfinished .* run "
                       r"`mlops rollback` without --version to finish it before rolling back "
                       r"to v2"):
        command.rollback(Settings(), spec_path=path, version=2)


def test_an_unfinished_rollback_overtaken_by_a_release_is_refused(release, monkeypatch):
    path = _promoted(release)
    monkeypatch.setattr(command, "_run_flow", lambda **_: (_ for _ in ()).throw(OSError("x")))
    with pytest.raises(DeploymentError):
        command.rollback(Settings(), spec_path=path)
    _promoted(release, 40, 2)  # v3 released since: champion v3
    with pytest.raises(DeploymentError, match=r"toy's champion is v3, neither v2 \(before the "
                       r"traffic flip\) nor v1 .* delete it to plan a new rollback"):
        command.rollback(Settings(), spec_path=path)


def test_the_command_takes_the_flow_parameters_less_the_two_it_fills_in():
    mine = inspect.signature(command.rollback).parameters
    flows = inspect.signature(rollback_flow.fn).parameters
    filled = {"traffic_before", "champion_before"}
    assert [(n, p.default) for n, p in mine.items() if n != "settings"] == [
        (n, p.default) for n, p in flows.items() if n not in filled]
    docs = parameter_docs(rollback_flow.fn.__doc__)
    assert parameter_docs(command.rollback.__doc__) == {
        n: d for n, d in docs.items() if n not in filled}
    parser = command_parser("rollback", command.rollback)
    args = parser.parse_args(["--spec", "s.yaml", "--version", "3", "--reason", "alice: bad"])
    assert (args.spec_path, args.version, args.reason) == ("s.yaml", 3, "alice: bad")


def test_a_rerun_after_a_flow_that_failed_past_its_entry_writes_no_second_one(release):
    path = _promoted(release)
    command.rollback(Settings(), spec_path=path)
    # what a flow failing after its history entry (its artifact, say) leaves behind
    command._keep_flip(Settings(), "toy", command.Flip(2, 1, "blue", BEFORE))
    assert command.rollback(Settings(), spec_path=path)["how"] == "recorded already"
    assert [r.kind for r in release.registry.releases("toy")] == ["promotion", "rollback"]
    assert not command.flip_path(Settings(), "toy").exists()
