"""Malformed requests, stalled clients and memory, against a real endpoint process.

The server here has small limits (body, head, read timeouts) so that each boundary is cheap
to cross; the corpus itself lives in tests/serving/malformed_requests.py.
"""

from __future__ import annotations

import random
import socket
import string
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from mlops.endpoint.local import LocalEndpointClient
from tests.conftest import free_port
from tests.serving.conftest import (
    ADMIN_KEY,
    SCORING_KEY,
    Running,
    roots_env,
    server_env,
    stop,
)
from tests.serving.malformed_requests import (
    GOOD_ROW,
    MAX_BODY_BYTES,
    MAX_HEADER_BYTES,
    corpus,
    request,
)
from tools.endpoint_process import start_endpoint

pytestmark = [pytest.mark.service, pytest.mark.slow]

TIMEOUT_S = 1.0  # the server's header and body read timeouts
CLOSED_WITHIN_S = 20.0  # a generous bound: closed well before this, or the test fails
CASES = corpus()


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory, toys) -> Iterator[Running]:
    state_dir = tmp_path_factory.mktemp("limited-endpoint")
    port = free_port()
    proc = start_endpoint(state_dir, port, server_env(
        MLOPS_ENDPOINT_MAX_BODY_BYTES=str(MAX_BODY_BYTES),
        MLOPS_ENDPOINT_MAX_HEADER_BYTES=str(MAX_HEADER_BYTES),
        MLOPS_ENDPOINT_HEADER_TIMEOUT_S=str(TIMEOUT_S),
        MLOPS_ENDPOINT_BODY_TIMEOUT_S=str(TIMEOUT_S),
        MLOPS_ENDPOINT_COLLECT="false",
        **roots_env(tmp_path_factory),
    ))
    url = f"http://127.0.0.1:{port}"
    client = LocalEndpointClient(url, SCORING_KEY, ADMIN_KEY, timeout=30)
    try:
        client.put_deployment("blue", toys.v1.url)
        client.put_deployment("green", toys.v2.url)
        client.set_traffic({"blue": 100, "green": 0})
        yield Running(proc, url, state_dir, client)
    finally:
        client.close()
        stop(proc)


def _port(running: Running) -> int:
    return int(running.url.rsplit(":", 1)[1])


def exchange(port: int, data: bytes, pause_s: float = 0.0) -> tuple[bytes, float]:
    """Send `data` on a new connection and read until the server closes it.

    Returns what the server sent and how long after the last byte sent it closed. A server
    that refuses mid-request may reset the connection; what arrived before counts.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=CLOSED_WITHIN_S) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        sent_at = time.monotonic()
        if pause_s:
            time.sleep(pause_s)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        except TimeoutError:
            pytest.fail(f"connection still open {CLOSED_WITHIN_S} s after the request")
        return received, time.monotonic() - sent_at


def status_of(response: bytes) -> int | None:
    """The final status of an answer (after any interim 100 Continue); None if none came."""
    while response.startswith(b"HTTP/1.1 1"):
        response = response.split(b"\r\n\r\n", 1)[1]
    if not response.startswith(b"HTTP/1.1 "):
        return None
    return int(response.split(b" ", 2)[1])


def _healthy_and_scoring(running: Running) -> None:
    with httpx.Client(base_url=running.url, timeout=30) as http:
        assert http.get("/health").status_code == 200
        scored = http.post("/score", json=[GOOD_ROW],
                           headers={"Authorization": f"Bearer {SCORING_KEY}"})
        assert scored.status_code == 200, scored.text
        assert len(scored.json()["predictions"]) == 1


def test_the_corpus_is_large_and_every_case_is_sendable():
    assert len(CASES) >= 200
    assert all(isinstance(c.raw, bytes) and c.raw for c in CASES)


def test_every_malformed_request_is_a_4xx_and_the_server_stays_healthy(limited):
    port = _port(limited)
    wrong = {}
    for case in CASES:
        response, _ = exchange(port, case.raw)
        status = status_of(response)
        if status is None or not 400 <= status < 500:
            wrong[case.name] = (status, response[:200])
    assert not wrong, f"{len(wrong)} of {len(CASES)} not a 4xx: {wrong}"
    assert limited.proc.poll() is None
    _healthy_and_scoring(limited)


def test_4xx_answers_are_json_with_a_message(limited):
    body = b'[{"num_a": 0.5, "Tenure Months": 9223372036854775808, "cat_c": "red"}]'
    with httpx.Client(base_url=limited.url, timeout=30) as http:
        response = http.post("/score", content=body,
                             headers={"Authorization": f"Bearer {SCORING_KEY}"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert "'Tenure Months'" in error and "9223372036854775808" in error and "range" in error


def _head_of_size(size: int) -> bytes:
    """A GET /health whose request line and headers are exactly `size` bytes."""
    base = b"GET /health HTTP/1.1\r\nconnection: close\r\nx-pad: \r\n\r\n"
    return base.replace(b"x-pad: ", b"x-pad: " + b"a" * (size - len(base)))


def test_head_size_limit_is_exact(limited):
    port = _port(limited)
    at_limit, over = _head_of_size(MAX_HEADER_BYTES), _head_of_size(MAX_HEADER_BYTES + 1)
    assert (len(at_limit), len(over)) == (MAX_HEADER_BYTES, MAX_HEADER_BYTES + 1)
    assert status_of(exchange(port, at_limit)[0]) == 200
    refused, _ = exchange(port, over)
    assert status_of(refused) == 431
    assert b"MLOPS_ENDPOINT_MAX_HEADER_BYTES" in refused


def test_an_endless_head_is_refused_before_it_ends(limited):
    """The head never completes: only the running count can refuse it (not the timeout)."""
    endless = b"GET /health HTTP/1.1\r\nx-big: " + b"a" * (4 * MAX_HEADER_BYTES)
    response, _ = exchange(_port(limited), endless)
    assert status_of(response) == 431


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("half a request line", b"POST /sco"),
        ("half a header", b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nx-a"),
        ("content-length beyond the body",
         request(body=b'[{"num_a": 1}]', length=False, headers={b"content-length": b"500"})),
        ("chunked body never finished", request(
            body=b"5\r\n[{}, \r\n", length=False, headers={b"transfer-encoding": b"chunked"})),
    ],
)
def test_a_stalled_client_gets_408_and_a_closed_connection(limited, name, data):
    response, _ = exchange(_port(limited), data)
    assert status_of(response) == 408, name
    assert b"not received within" in response
    _healthy_and_scoring(limited)


def test_a_silent_connection_is_closed(limited):
    response, _ = exchange(_port(limited), b"")
    assert response == b""


def test_a_trickled_head_is_timed_from_its_first_byte(limited):
    """One byte every tenth of a second: each byte must not restart the clock."""
    head = b"GET /health HTTP/1.1\r\nx-slow: " + b"a" * 1000
    received = b""
    with socket.create_connection(("127.0.0.1", _port(limited)), timeout=CLOSED_WITHIN_S) as s:
        deadline = time.monotonic() + CLOSED_WITHIN_S
        for byte in head:
            try:
                s.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.1)
            if time.monotonic() > deadline:
                pytest.fail("the server kept reading a trickled head")
        try:
            received = s.recv(65536)
        except ConnectionResetError:
            pass
    assert status_of(received) == 408


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))


def _names(rng: random.Random, count: int) -> dict[str, int]:
    return {"".join(rng.choices(string.ascii_letters, k=16)): i for i in range(count)}


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_memory_stays_flat_under_random_extra_columns(limited):
    """10,000 requests, each with its own random extra column names; one in 159 is wide
    (40,000 extra names) and goes to green, so green's scorer sees nothing but unique wide
    name sets, 64 in all, as many as a cache of 64 name sets would hold. Nothing of them may
    stay behind."""
    rng = random.Random(0)
    pid = limited.proc.pid
    auth = {"Authorization": f"Bearer {SCORING_KEY}"}

    def send(http: httpx.Client, count: int, wide_every: int) -> None:
        for i in range(count):
            wide = i % wide_every == 0
            extra = _names(rng, 40_000 if wide else 5)
            headers = {**auth, "azureml-model-deployment": "green"} if wide else auth
            response = http.post("/score", content=orjson.dumps([{**GOOD_ROW, **extra}]),
                                 headers=headers)
            assert response.status_code == 200, response.text

    with httpx.Client(base_url=limited.url, timeout=30) as http:
        send(http, 1_000, 1_000)  # warm-up: allocator pools, both deployments, one wide
        before = _rss_kib(pid)
        send(http, 10_000, 159)  # 63 wide: with the warm-up's, as many as 64 name sets
        after = _rss_kib(pid)
    assert after <= before * 1.10, f"RSS {before} KiB before, {after} KiB after"
