"""One message, once: how Prefect's run loggers show this project's own errors.

When a task raises, Prefect logs the exception's repr with a traceback, then the task's final
state (the message again), then the flow logs the same exception with a longer traceback and
its own final state: a validation error with seven failures read as 128 lines, its message
seven times. Our errors (`MlopsError`) are expected outcomes whose message says everything, so
the filter below keeps one full copy, the first log record that carries the exception, without
a traceback; later records name the error's type only. Other exceptions keep Prefect's output.
The flow run's state message still carries the full message (the UI shows it there).
"""

from __future__ import annotations

import logging
import re

from mlops.core.errors import MlopsError

RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")
_LOGGED = "_mlops_logged"  # set on an exception once a record has shown its message
_ERROR_NAME = re.compile(r"\b([A-Z]\w*Error)\b")


def _own_error_names() -> set[str]:
    names, todo = set(), [MlopsError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


class OwnErrorsOnce(logging.Filter):
    """Rewrites Prefect's records about an `MlopsError`: the message once, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, MlopsError):
            record.exc_info, record.exc_text = None, None
            prefix = record.getMessage().split(":", 1)[0]
            if getattr(exc, _LOGGED, False):
                record.msg, record.args = "%s: %s (its message is above)", (
                    prefix, type(exc).__name__)
            else:
                setattr(exc, _LOGGED, True)
                record.msg, record.args = "%s: %s: %s", (prefix, type(exc).__name__, exc)
            return True
        message = record.msg
        if isinstance(message, str) and message.startswith("Finished in state Failed("):
            own = [n for n in _ERROR_NAME.findall(message) if n in _own_error_names()]
            if own:
                record.msg, record.args = "Finished in state Failed (%s)", (own[0],)
        return True


def install() -> None:
    """Add the filter to Prefect's flow-run and task-run loggers (once)."""
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, OwnErrorsOnce) for f in logger.filters):
            logger.addFilter(OwnErrorsOnce())
