"""Start the local scoring endpoint: ``python -m serving [--host H] [--port P]``.

Everything else is configured through ``MLOPS_ENDPOINT_*`` environment variables (see
``serving.config``); the flags only override where it listens, for the local stack and tests.
One process serves the endpoint: its deployments and traffic live in this process.
"""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from serving.config import EndpointConfig
from serving.protocol import guarded_protocol
from serving.server import create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="interface to listen on (default from settings)")
    parser.add_argument("--port", type=int, help="TCP port (default from settings)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The Azure SDK logs every HTTP request and response at INFO (bundle loads, inference writes).
    logging.getLogger("azure").setLevel(logging.WARNING)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    config = EndpointConfig(**overrides)
    uvicorn.run(
        create_app(config), host=config.host, port=config.port, workers=1,
        log_config=None, access_log=config.access_log, lifespan="on",
        http=guarded_protocol(config.max_header_bytes, config.header_timeout_s),
    )


if __name__ == "__main__":
    main()
