"""The one error type of ``serving``: an HTTP status and the message the caller reads.

Everything the endpoint, the control API and the Azure ML entry script refuse is a
`ServingError`; the server turns it into the JSON error body in one place
(``serving.server.ScoringApp``). Narrower names exist only where a caller catches them on
purpose: `ScoringInputError` (the request does not fit the model: the entry script, the load
probe), `BundleLoadError` (the registries and training in ``mlops`` catch it) and
`ModelUrlRefused` (the control API answers it with a 403).
"""

from __future__ import annotations

from typing import Any


def _rebuild(cls: type[ServingError], status: int, message: str, close: bool) -> ServingError:
    error = Exception.__new__(cls)
    Exception.__init__(error, message)
    error.status, error.message, error.close = status, message, close
    return error


class ServingError(Exception):
    """A refusal with the HTTP `status` that says why and the `message` the caller reads;
    `close` ends the connection after the answer (the rest of the request is not worth
    reading)."""

    def __init__(self, status: int, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take fewer arguments; rebuild from the fields so copies and pickles
        # (Prefect keeps a failed task's exception) work for every one of them.
        return _rebuild, (type(self), self.status, self.message, self.close)


class ScoringInputError(ServingError):
    """The request cannot be scored: 400 for a body that is not a request at all (not JSON,
    an unknown shape), 422 for a well-formed request whose content does not fit the model
    (missing columns, values that cannot become the trained dtype, no rows)."""


class BundleLoadError(ServingError):
    """The bundle is incomplete or malformed, its digest does not match, it holds a type outside
    the allow-list, or the model does not answer probe rows (422)."""

    def __init__(self, message: str) -> None:
        super().__init__(422, message)


class ModelUrlRefused(ServingError):
    """The URL is not under any allowed root (403; the message never says whether it
    exists)."""

    def __init__(self, message: str) -> None:
        super().__init__(403, message)
