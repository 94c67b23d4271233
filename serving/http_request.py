"""A request as the server's handlers see it, and the reading every route shares: the bearer
key check and the body, bounded in size and time."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from serving.config import EndpointConfig
from serving.errors import ServingError
from serving.request_shapes import parse_json

Receive = Callable[[], Awaitable[dict[str, Any]]]

_TRUE_QUERY = {"1", "true", "yes"}


@dataclass
class Request:
    method: str
    path: str
    headers: dict[bytes, bytes]
    query: bytes
    receive: Receive
    request_id: str
    # (the endpoint's mirror, the copy) to send once the answer is out (``serving.mirror``)
    mirror: tuple[Any, Any] | None = None


def check_key(request: Request, key: bytes, what: str, also: bytes = b"") -> None:
    """Refuse the request unless it carries `key` (or `also`, when given) as a bearer token."""
    value = request.headers.get(b"authorization", b"")
    token = value[7:].strip() if value[:7].lower() == b"bearer " else b""
    if not (hmac.compare_digest(token, key) or (also and hmac.compare_digest(token, also))):
        raise ServingError(401, f"missing or wrong key: this route needs the {what} key as "
                        "'Authorization: Bearer <key>'")


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The whole body, at most `limit` bytes, within `timeout_s` of the first read.

    A body that arrived with its headers (every small request) is returned without arming a
    timer; a longer one is read under the timeout, so a client that stalls, or promises more
    bytes in Content-Length than it sends, gets a 408 and a closed connection.
    """
    declared = request.headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ServingError(413, f"request body of {int(declared)} bytes is over the {limit} limit",
                        close=True)
    message = await request.receive()
    first = message.get("body", b"")
    if message["type"] == "http.request" and not message.get("more_body", False):
        if len(first) > limit:
            raise ServingError(413, f"request body is over the {limit} byte limit", close=True)
        return first
    chunks, size = [first], len(first)
    try:
        async with asyncio.timeout(timeout_s):
            while message["type"] != "http.disconnect" and message.get("more_body", False):
                message = await request.receive()
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                if size > limit:
                    raise ServingError(413, f"request body is over the {limit} byte limit",
                                    close=True)
    except TimeoutError as exc:
        expected = f"{int(declared)} declared" if declared and declared.isdigit() else "more"
        raise ServingError(
            408, f"request body not received within {timeout_s:g} s: got {size} bytes of "
            f"{expected} (MLOPS_ENDPOINT_BODY_TIMEOUT_S)", close=True,
        ) from exc
    if message["type"] == "http.disconnect":
        raise ServingError(400, "client disconnected before sending the whole body")
    return b"".join(chunks)


async def read_json(request: Request, config: EndpointConfig) -> Any:
    return parse_json(await read_body(request, config.max_body_bytes, config.body_timeout_s))


def wants_probabilities_in_query(query: bytes) -> bool:
    if not query:
        return False
    values = parse_qs(query.decode("latin-1")).get("return_probabilities", [])
    return any(v.lower() in _TRUE_QUERY for v in values)
