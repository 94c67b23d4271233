"""uvicorn's httptools protocol with the limits it lacks: request head size and read time.

uvicorn bounds neither the size of a request's head (request line and headers: llhttp
buffers a 64 MB header whole) nor the time a client may take to send it (a connection that
sends half a header is held for ever; uvicorn's keep-alive timer only runs between
requests, and any byte cancels it). `guarded_protocol` returns a subclass that:

- answers 431 and closes the connection once a head passes ``max_header_bytes`` (counted as
  the bytes received while the head is incomplete, so an oversized head is refused before it
  is buffered whole, and checked again, in canonical form, when the head completes);
- answers 408 and closes the connection when a head is not complete ``header_timeout_s``
  after its first bytes arrived, and closes a new connection that sends nothing for that
  long (between requests, uvicorn's keep-alive timeout applies). The timer is armed only for
  a head that did not arrive in one piece, so a request that did costs no timer.

The body's read time is bounded in the application (``serving.server``), which knows how much
of a body it is waiting for. The subclass only overrides protocol and parser callbacks that
uvicorn's class itself implements, and calls them; the h11 protocol is not used because it
is slower on the request path the serving benchmark measures.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a request whose head is too large."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """One connection; the class attributes are set by `guarded_protocol`."""

    max_header_bytes = 65_536
    header_timeout_s = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str] | None = None

    # connection ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if not self._in_head:
            return
        if self._head_bytes > self.max_header_bytes:
            self._refuse(431, self._too_large(f"over {self._head_bytes} bytes received"))
        elif self._head_bytes and self._head_timer is None:
            # A head that did not arrive whole: timed from here. One that did (nearly every
            # request) arms no timer.
            self._arm_head_timer()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error; a refusal raised from a callback is ours."""
        if self._refusal is not None:
            self._refuse(*self._refusal)
        else:
            super().send_400_response(msg)

    # parser callbacks ----------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm_head_timer()
        size = (
            len(self.parser.get_method()) + len(self.url) + 12  # request line
            + sum(len(name) + len(value) + 4 for name, value in self.headers) + 2
        )
        self._head_bytes = 0
        if size > self.max_header_bytes:
            self._refusal = (431, self._too_large(f"{size} bytes"))
            raise _HeadTooLarge(self._refusal[1])
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # what follows on this connection is the next request's head

    # limits --------------------------------------------------------------------------------

    def _too_large(self, seen: str) -> str:
        return (f"request line and headers of {seen} are over the {self.max_header_bytes} "
                "byte limit (MLOPS_ENDPOINT_MAX_HEADER_BYTES)")

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # a pipelined head stalled: close after this answer
            return
        if self._head_bytes == 0:
            self.transport.close()  # a connection that never sent a byte gets no answer
            return
        self._refuse(408, f"request line and headers not received within "
                          f"{self.header_timeout_s:g} s (MLOPS_ENDPOINT_HEADER_TIMEOUT_S)")

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` with a JSON error and close the connection."""
        if self.transport.is_closing():
            return
        self._disarm_head_timer()
        body = orjson.dumps({"error": message, "status": status})
        self.transport.write(b"".join([
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status]),
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n", body,
        ]))
        self.transport.close()


def guarded_protocol(max_header_bytes: int, header_timeout_s: float) -> type[HttpToolsProtocol]:
    """The protocol class for ``uvicorn.run(http=...)`` with these limits."""
    return type(
        "GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,),
        {"max_header_bytes": max_header_bytes, "header_timeout_s": header_timeout_s},
    )
