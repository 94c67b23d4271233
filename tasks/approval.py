"""The optional human gate between the smoke test and the traffic move (DESIGN.md, step 3).

The flow pauses with the candidate-vs-champion table in the pause's description and a form
(approve, comment). A person resumes it from the Prefect UI or through the resume API.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect import get_client, get_run_logger, task
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run
from prefect.states import Running

from mlops.core.errors import MlopsError
from mlops.core.settings import get_settings
from mlops.core.spec import PipelineSpec
from mlops.endpoint.backend import endpoint_session
from mlops.model.results import DeployPlan, Evaluation
from tasks._release import record_release


class Approval(RunInput):
    """The form a reviewer fills in to let the candidate take traffic."""

    approve: bool = False
    comment: str = ""


@dataclass(frozen=True)
class Verdict:
    approved: bool
    reason: str


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def approval_description(
    evaluation: Evaluation, plan: DeployPlan, environment: str | None = None,
) -> str:
    """Markdown for the pause: what is waiting, and the numbers a reviewer decides on."""
    champion = (
        f"v{evaluation.champion_version}" if evaluation.champion_version else "none (first model)"
    )
    where = (f"passed environment **{environment}** (deployment {plan.target}); approve to "
             "release it to the next" if environment else
             f"passed the promotion gate and the smoke test; it is on deployment "
             f"**{plan.target}** with 0% traffic")
    lines = [
        f"### Approve {plan.model_name} v{plan.version}?",
        f"The candidate {where}. Champion: {champion}.",
        "",
        "| metric | candidate | champion | delta | limit | passed |",
        "|---|---|---|---|---|---|",
    ]
    for row in evaluation.decision.rows:
        lines.append(
            f"| {row.metric} | {_fmt(row.candidate)} | {_fmt(row.champion)} | "
            f"{_fmt(row.delta)} | {_fmt(row.limit)} | {'yes' if row.passed else 'no'} |"
        )
    lines += ["", "Tick **approve** to move traffic; leave it unticked to reject."]
    return "\n".join(lines)


def request_approval(
    evaluation: Evaluation, plan: DeployPlan, timeout_s: int, environment: str | None = None,
) -> Verdict:
    """Pause the flow run until a person approves or rejects; no answer in time rejects.
    With `environment`, the candidate has passed that environment before production.

    Called from the flow itself: Prefect pauses flow runs, not tasks.
    """
    logger = get_run_logger()
    logger.info(
        "Waiting up to %d s for approval of %s v%s (resume the run in the UI or the API)",
        timeout_s, plan.model_name, plan.version,
    )
    try:
        answer = pause_flow_run(
            wait_for_input=Approval.with_initial_data(
                description=approval_description(evaluation, plan, environment), approve=False
            ),
            timeout=timeout_s,
            poll_interval=2,
            key=f"approve-{plan.model_name}-v{plan.version}"
            + (f"-{environment}" if environment else ""),
        )
    except FlowPauseTimeout:
        _resume_after_timeout()
        return Verdict(False, f"no approval within {timeout_s} s")
    comment = f" ({answer.comment})" if answer.comment else ""
    if answer.approve:
        return Verdict(True, f"approved{comment}")
    return Verdict(False, f"rejected by the reviewer{comment}")


def _resume_after_timeout() -> None:
    """Take the run out of its expired pause, so it can clean up and end with its own message.

    Prefect fails any transition out of a pause whose time is up ("never resumed"); nobody
    answered, so the run resumes itself (forced) to withdraw the candidate and report why.
    """
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(
            flow_run.id, Running(message="No approval in time: withdrawing"), force=True
        )


@task
def record_verdict(
    plan: DeployPlan, spec: PipelineSpec, verdict: Verdict, champion: int | None,
    environment: str | None = None,
) -> None:
    """The reviewer's answer (or its absence) in the model's release history; `environment`
    is the one before production it was given in (default: production)."""
    record_release(
        spec, "approval" if verdict.approved else "rejection", plan.version,
        champion_before=champion, champion_after=champion,
        traffic_before=plan.previous_traffic, traffic_after=plan.previous_traffic,
        reason=verdict.reason, environment=environment or spec.production_name,
    )


@task
def withdraw_candidate(
    plan: DeployPlan, spec: PipelineSpec, reason: str = "", champion: int | None = None,
) -> None:
    """Remove the unapproved candidate's deployment (it never carried traffic) and say so in
    the release history."""
    with endpoint_session(spec, get_settings()) as client:
        try:
            client.delete_deployment(plan.target)
        except MlopsError as exc:
            get_run_logger().warning("Could not remove '%s': %s", plan.target, exc)
            raise
        get_run_logger().info(
            "Removed %s v%s from '%s'; traffic unchanged: %s",
            plan.model_name, plan.version, plan.target, plan.previous_traffic or "none",
        )
        record_release(
            spec, "withdrawal", plan.version, champion_before=champion, champion_after=champion,
            traffic_before=plan.previous_traffic, traffic_after=plan.previous_traffic,
            reason=reason, detail=f"deployment '{plan.target}' removed",
            environment=spec.production_name,
        )
