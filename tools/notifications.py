"""People are told when something needs them: the automations in automations/ on the server.

``install_automations`` (run by `mlops deploy` and `mlops up`) finds the notification block
named by MLOPS_NOTIFY_BLOCK (`<block type>/<name>`), creating the default custom webhook when
MLOPS_NOTIFY_WEBHOOK_URL is set, and creates every automation of automations/*.yaml with a
send-notification action through it, replacing automations of the same name. Without a block
it creates none and says how to add one. The messages link runs through the Prefect variable
`mlops_ui_url`, set here to the UI's address (PREFECT_UI_URL, else the API's without /api): a
self-hosted server started without PREFECT_UI_URL renders `flow_run|ui_url` as None.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml

from mlops.core.errors import DeploymentError
from mlops.core.settings import Settings

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
AUTOMATIONS = ROOT / "automations"
WEBHOOK_TYPE = "custom-webhook"
UI_URL_VARIABLE = "mlops_ui_url"


def notification_block(settings: Settings) -> UUID | None:
    """The id of the block automations send through; None when it does not exist.

    Raises:
        DeploymentError: MLOPS_NOTIFY_BLOCK is not '<type>/<name>', or a webhook URL is set
            for a block that is not a custom webhook.
    """
    from prefect import get_client  # noqa: PLC0415 - tooling; Prefect only where used
    from prefect.blocks.notifications import CustomWebhookNotificationBlock  # noqa: PLC0415
    from prefect.exceptions import ObjectNotFound  # noqa: PLC0415

    block_type, _, name = settings.notify_block.partition("/")
    if not (block_type and name):
        raise DeploymentError(
            f"MLOPS_NOTIFY_BLOCK '{settings.notify_block}' must be '<block type>/<name>', "
            "e.g. custom-webhook/mlops-notifications or slack-webhook/team-ml")
    if settings.notify_webhook_url:
        if block_type != WEBHOOK_TYPE:
            raise DeploymentError(
                f"MLOPS_NOTIFY_WEBHOOK_URL creates a '{WEBHOOK_TYPE}' block, but "
                f"MLOPS_NOTIFY_BLOCK names a '{block_type}' one; create that block yourself")
        CustomWebhookNotificationBlock(
            name=name, url=settings.notify_webhook_url.get_secret_value(), method="POST",
            json_data={"subject": "{{subject}}", "body": "{{body}}"},
        ).save(name, overwrite=True)
    with get_client(sync_client=True) as client:
        try:
            return client.read_block_document_by_name(name, block_type).id
        except ObjectNotFound:
            return None


def automation(spec: dict[str, Any], block_id: UUID) -> Any:
    """One automation of automations/*.yaml as Prefect's AutomationCore (reactive, each
    matching event fires once)."""
    from prefect.events.actions import SendNotification  # noqa: PLC0415
    from prefect.events.schemas.automations import AutomationCore, EventTrigger  # noqa: PLC0415

    return AutomationCore(
        name=spec["name"], description=spec.get("description", ""),
        trigger=EventTrigger(posture="Reactive", threshold=1, within=0, **spec["trigger"]),
        actions=[SendNotification(block_document_id=block_id, subject=spec["subject"],
                                  body=spec["body"])],
    )


def set_ui_url() -> str:
    """Store the UI's address in the Prefect variable the message templates link runs with."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL  # noqa: PLC0415
    from prefect.variables import Variable  # noqa: PLC0415

    url = PREFECT_UI_URL.value() or str(PREFECT_API_URL.value() or "").removesuffix("/api")
    if not url:
        raise DeploymentError("neither PREFECT_UI_URL nor PREFECT_API_URL is set: the "
                              "notifications could not link runs")
    Variable.set(UI_URL_VARIABLE, url.rstrip("/"), overwrite=True)
    return url


def read_automations(folder: Path = AUTOMATIONS) -> list[dict[str, Any]]:
    return [a for path in sorted(folder.glob("*.yaml"))
            for a in yaml.safe_load(path.read_text())["automations"]]


def install_automations(settings: Settings, folder: Path = AUTOMATIONS) -> list[str]:
    """Create (or replace) every automation in `folder`; the names created."""
    from prefect import get_client  # noqa: PLC0415

    block_id = notification_block(settings)
    if block_id is None:
        logger.info(
            "No notification block '%s': no notifications. Set MLOPS_NOTIFY_WEBHOOK_URL, or "
            "create the block (docs/notifications.md) and run `mlops deploy` again.",
            settings.notify_block)
        return []
    set_ui_url()
    created = []
    with get_client(sync_client=True) as client:
        for spec in read_automations(folder):
            for old in client.read_automations_by_name(spec["name"]):
                client.delete_automation(old.id)
            client.create_automation(automation(spec, block_id))
            created.append(spec["name"])
    logger.info("Notifications through %s: %s", settings.notify_block, ", ".join(created))
    return created
