"""What a person asks after a release: who is champion, where the traffic goes, what happened.

The same text is printed by ``mlops status --spec ...`` and published as a Prefect artifact
after every release (``tasks._release``).
"""

from __future__ import annotations

from typing import Any

from mlops.core.errors import EndpointError
from mlops.core.settings import Settings
from mlops.core.spec import PipelineSpec
from mlops.endpoint.backend import endpoint_session
from mlops.registry.releases import Release

LAST_RELEASES = 10


def _version(value: int | None) -> str:
    return "-" if value is None else f"v{value}"


def _traffic(table: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}%" for k, v in table.items()) or "none"


def endpoint_view(spec: PipelineSpec, settings: Settings) -> dict[str, Any]:
    """The model's endpoint as `status_markdown` shows it; one that does not answer (a status
    may be asked for exactly then) is shown as such instead of its table."""
    try:
        with endpoint_session(spec, settings) as client:
            return client.state()
    except EndpointError as exc:
        return {"error": str(exc)}


def status_markdown(
    model: str, champion: int | None, endpoint: dict[str, Any], releases: list[Release],
) -> str:
    """Markdown: the champion, the traffic table and deployments, the last releases (newest
    first). `endpoint` is the endpoint client's `state()`, or ``{"error": message}`` when it
    could not be read."""
    traffic = endpoint.get("traffic", {})
    lines = [f"## {model}", "", f"Champion: **{_version(champion)}**", "",
             "| deployment | model | version | traffic | status |", "|---|---|---|---|---|"]
    if "error" in endpoint:
        lines.append(f"| - | endpoint unreadable: {str(endpoint['error']).replace('|', '/')} "
                     "| - | - | - |")
    for name, d in endpoint.get("deployments", {}).items():
        lines.append(
            f"| {name} | {d.get('model_name') or d.get('model', '-')} | "
            f"{d.get('model_version', '-')} | {traffic.get(name, 0)}% | "
            f"{d.get('status') or d.get('state', '-')} |"
        )
    lines += ["", f"Last releases ({min(len(releases), LAST_RELEASES)} of {len(releases)}):", "",
              "| when | what | version | champion | traffic after | why | run |",
              "|---|---|---|---|---|---|---|"]
    for r in reversed(releases[-LAST_RELEASES:]):
        why = r.reason + (f" ({r.detail})" if r.detail else "")
        what = f"{r.kind} in {r.environment}" if r.environment else r.kind
        lines.append(
            f"| {r.at[:19]} | {what} | {_version(r.version)} | "
            f"{_version(r.champion_before)} -> {_version(r.champion_after)} | "
            f"{_traffic(r.traffic_after)} | {why.replace('|', '/')} | {r.flow_run_id or '-'} |"
        )
    return "\n".join(lines)
