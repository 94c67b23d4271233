"""Steady scoring load from a process of its own, until the parent closes its stdin.

``python -m benchmarks.steady_load PORT BODY_FILE [--connections N]`` with the scoring key in
``BENCH_SCORING_KEY``: keep-alive clients on threads post the body to ``/score`` one request
after another; when stdin closes, each finishes its request and one JSON line is printed with
the requests sent, the failed ones (a status other than 200, or no answer at all), the first
failures, and the answers by model version. The rollback benchmark runs it across a traffic
flip, where wrk's fixed duration would not fit a command of unknown length.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import threading
from collections import Counter


def _client(port: int, body: bytes, headers: dict[str, str], stop: threading.Event,
            counts: Counter, failures: list[str]) -> None:
    """One keep-alive connection posting `body` until `stop`; counts into its own `counts`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while not stop.is_set():
        counts["requests"] += 1
        try:
            conn.request("POST", "/score", body, headers)
            response = conn.getresponse()
            answer = response.read()
        except (OSError, http.client.HTTPException) as exc:
            counts["failed"] += 1
            failures.append(f"no answer: {exc!r}")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        if response.status != 200:
            counts["failed"] += 1
            failures.append(f"{response.status}: {answer[:200]!r}")
            continue
        counts[f"v{json.loads(answer).get('model_version')}"] += 1
    conn.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("body", help="a file holding the request body (JSON)")
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args(argv)
    headers = {"Content-Type": "application/json",
               "Authorization": f"Bearer {os.environ['BENCH_SCORING_KEY']}"}
    with open(args.body, "rb") as fh:
        body = fh.read()
    stop = threading.Event()
    counts = [Counter() for _ in range(args.connections)]  # one per thread, summed at the end
    failures: list[list[str]] = [[] for _ in range(args.connections)]
    threads = [threading.Thread(target=_client,
                                args=(args.port, body, headers, stop, counts[i], failures[i]))
               for i in range(args.connections)]
    for thread in threads:
        thread.start()
    sys.stdout.write("started\n")
    sys.stdout.flush()
    sys.stdin.read()  # until the parent closes it
    stop.set()
    for thread in threads:
        thread.join()
    total = sum(counts, Counter())
    sys.stdout.write(json.dumps({
        "requests": total["requests"], "failed": total["failed"],
        "failures": [f for each in failures for f in each][:5],
        "versions": {k: v for k, v in total.items() if k.startswith("v")},
    }) + "\n")


if __name__ == "__main__":
    main()
