"""The Prefect settings a flow run as a script gets, the same as under ``make``.

The Makefile exports ``PREFECT_HOME`` (inside the project's state folder),
``PREFECT_SERVER_ANALYTICS_ENABLED=false`` and ``PREFECT_LOGGING_LEVEL=INFO``, and
``PREFECT_API_URL`` from ``<state>/stack.env`` while the local stack is up. Without them, a
run started as the README shows (``mlops train``) uses ``~/.prefect``, logs a
telemetry error from the temporary server's analytics and can hit "database is locked" on
its first start. Prefect reads its settings when it is imported, so an entry point calls
`apply` before its first Prefect import; a value already set is never replaced.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path


def apply(environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Set the Makefile's Prefect settings in `environ` where unset; returns those set."""
    state = Path(environ.get("MLOPS_STATE_DIR") or ".mlops").resolve()
    defaults = {
        "PREFECT_HOME": str(state / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",
    }
    stack_env = state / "stack.env"
    if stack_env.is_file():  # the local stack is up: its server, as `make run` uses it
        for line in stack_env.read_text().splitlines():
            name, _, value = line.partition("=")
            if name.strip() == "PREFECT_API_URL" and value.strip():
                defaults["PREFECT_API_URL"] = value.strip()
    applied = {name: value for name, value in defaults.items() if not environ.get(name)}
    environ.update(applied)
    Path(environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    return applied
