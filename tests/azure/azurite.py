"""Azurite, the Azure Storage emulator, as a process the tests start, stop and restart.

Installed by `make node-env` from the project's package-lock.json; the tests fail (not skip)
when it is missing, so CI cannot pass without exercising Blob Storage.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.conftest import ROOT

AZURITE_BLOB = ROOT / "node_modules" / ".bin" / "azurite-blob"
# Azurite's documented development account; a public value, not a secret of ours.
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


class Azurite:
    """One azurite-blob process on a loopback port, its data in `location`.

    `stop` and `start` keep the port and the folder, so a restarted Azurite serves the same
    blobs to clients that still hold the old address.
    """

    def __init__(self, location: Path, port: int, log: Path) -> None:
        self.location = location
        self.port = port
        self.log = log
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.blob_endpoint};"
        )

    def start(self, timeout_s: float = 60.0) -> None:
        if not AZURITE_BLOB.exists():
            raise RuntimeError(f"{AZURITE_BLOB} is missing: run `make node-env` (npm ci) first")
        self.location.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen(
                [
                    str(AZURITE_BLOB), "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
                    "--location", str(self.location), "--skipApiVersionCheck", "--loose",
                    "--silent", "--disableTelemetry",
                ],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self._wait_until_answering(timeout_s)

    def _wait_until_answering(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(
                    f"azurite exited with {self._proc.returncode}: {self.log.read_text()[-2000:]}"
                )
            try:
                # Any HTTP answer (403 without a signature) means the service listens.
                httpx.get(f"{self.blob_endpoint}?comp=list", timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"azurite did not answer on port {self.port} within {timeout_s} s")

    def stop(self) -> None:
        """Stop the process (and any child it started) and wait until the port is free."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
