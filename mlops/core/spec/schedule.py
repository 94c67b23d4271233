"""The spec's schedule section: when the model's generated Prefect deployments run.

Every spec under configs/ gets the same set of deployments (tools/deployments.py): nightly,
manual, on new data, drift check, batch scoring. This section reschedules or turns off each;
a turned-off deployment still exists (a person can start it) but its schedule is paused and
its event trigger disabled.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from mlops.core.spec.columns import _Strict

OFF = "off"
HOURLY = "0 * * * *"
# Five cron fields (minute hour day month weekday); Prefect checks the values when it deploys.
_CRON = re.compile(r"^[0-9*/,\-A-Za-z?LW#]+( [0-9*/,\-A-Za-z?LW#]+){4}$")
_WORDS = {"hourly": HOURLY, "daily": "0 0 * * *", "off": OFF}


def _when(value: Any, field: str) -> str:
    """'off' (or YAML's `off`, read as False), 'hourly', 'daily' or a five-field cron."""
    if value is False:
        return OFF
    text = str(value).strip()
    if text.lower() in _WORDS:
        return _WORDS[text.lower()]
    if not _CRON.match(text):
        raise ValueError(
            f"schedule.{field} '{text[:40]}' is not 'off', 'hourly', 'daily' or a five-field "
            "cron expression (minute hour day month weekday)"
        )
    return text


class ScheduleSpec(_Strict):
    """When each generated deployment of the model runs ('off' pauses it)."""

    nightly: str = Field("0 2 * * *", description="Cron of training-nightly, or 'off'.")
    drift: str = Field(HOURLY, description="Cron of the drift check, or 'off'.")
    batch: str = Field(
        "0 4 * * *",
        description="Cron of batch-scoring-nightly, or 'off' (also stops scoring the inbox).",
    )
    on_new_data: bool = Field(
        True, description="Watch the model's inbox and train on each new file ('off': no)."
    )
    timezone: str = Field("UTC", description="Time zone of the cron expressions.")

    @field_validator("nightly", "drift", "batch", mode="before")
    @classmethod
    def _cron_or_off(cls, value: Any, info: Any) -> str:
        return _when(value, info.field_name)

    @field_validator("on_new_data", mode="before")
    @classmethod
    def _on_off(cls, value: Any) -> Any:
        words = {"on": True, "off": False}
        return words.get(value, value) if isinstance(value, str) else value

    def active(self, kind: str) -> bool:
        """Whether the deployments of `kind` (nightly, drift, batch, on_new_data) run."""
        value = getattr(self, kind)
        return value if isinstance(value, bool) else value != OFF
