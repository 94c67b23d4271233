"""The scoring side of a managed online endpoint: what ``scoringUri`` reaches.

A front server plays Azure ML's endpoint router (key check, traffic or the
``azureml-model-deployment`` header, the router's own error statuses); behind it each deployment
runs Azure ML's inference server (``azmlinfsrv`` from ``.venv-azmlinfsrv``) on its uploaded code
folder and model, both downloaded from the workspace's datastore (Azurite), laid out as Azure
mounts them (``AZUREML_MODEL_DIR/<model folder>``).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from azure.storage.blob import ContainerClient

from tests.azureml.standin import Workspace
from tests.conftest import free_port
from tests.serving.conftest import stop
from tests.serving.test_azmlinfsrv import start_azmlinfsrv

DEPLOYMENT_HEADER = "azureml-model-deployment"


def _download(connection_string: str, container: str, prefix: str, dest: Path) -> Path:
    """Every blob under `prefix` into `dest`, keeping the layout below `prefix`."""
    with ContainerClient.from_connection_string(connection_string, container) as client:
        found = False
        for blob in client.list_blobs(name_starts_with=prefix + "/"):
            target = dest / blob.name[len(prefix) + 1:]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(client.download_blob(blob.name).readall())
            found = True
    assert found, f"nothing uploaded under {container}/{prefix}"
    return dest


class ScoringService:
    """The endpoints' router plus one azmlinfsrv per deployment, started on first use."""

    def __init__(self, workspace: Workspace, connection_string: str, work: Path) -> None:
        self.ws = workspace
        self.connection_string = connection_string
        self.work = work
        self.servers: dict[tuple[str, str], tuple[subprocess.Popen[bytes], str, str]] = {}
        self.lock = threading.Lock()
        self.failures: list[tuple[int, bytes]] = []  # the router's next answers, instead
        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), self._handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ScoringService:
        self.thread.start()
        self.ws.scoring_base = f"http://127.0.0.1:{self.httpd.server_port}"
        return self

    def __exit__(self, *_: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        for proc, _, _ in self.servers.values():
            stop(proc)

    def _backend(self, endpoint: str, name: str) -> str:
        """The URL of deployment `name`'s inference server (started on first use)."""
        deployment = self.ws.deployments[(endpoint, name)]
        props = deployment["properties"]
        current = self.servers.get((endpoint, name))
        if current is not None and current[1] == props["model"]:
            return current[2]
        if current is not None:  # the slot was recreated with another model
            stop(current[0])
        folder = Path(tempfile.mkdtemp(prefix=f"{endpoint}-{name}-", dir=self.work))
        code_id = props["codeConfiguration"]["codeId"]
        code_uri = self.ws.codes[_asset_key(code_id, "codes")]["properties"]["codeUri"]
        container, _, code_prefix = urlsplit(code_uri).path.lstrip("/").partition("/")
        code = _download(self.connection_string, container, code_prefix, folder / "code")
        model_uri = self.ws.models[_asset_key(props["model"], "models")]["properties"][
            "modelUri"]
        model_prefix = model_uri.split("/paths/", 1)[1].rstrip("/")
        model_dir = folder / "model"
        _download(self.connection_string, self.ws.container, model_prefix,
                  model_dir / model_prefix.rsplit("/", 1)[1])
        port = free_port()
        proc = start_azmlinfsrv(
            model_dir, port, folder / "azmlinfsrv.log",
            entry_script=code / props["codeConfiguration"]["scoringScript"], app_root=code,
        )
        self.servers[(endpoint, name)] = (proc, props["model"], f"http://127.0.0.1:{port}")
        return self.servers[(endpoint, name)][2]

    def route(self, endpoint: str, key: str | None, chosen: str | None,
              body: bytes) -> tuple[int, dict[str, str], bytes]:
        """What the router answers: status, headers, body."""
        if endpoint not in self.ws.endpoints:
            return 404, {}, b'{"message": "endpoint not found"}'
        if key != f"Bearer {self.ws.key_of(endpoint)}":
            return 401, {}, b""
        if chosen is None:
            traffic = self.ws.traffic(endpoint)
            if not traffic:
                return 424, {}, b'{"message": "No valid deployments to route to."}'
            chosen = max(traffic, key=traffic.get)
        elif (endpoint, chosen) not in self.ws.deployments:
            return 404, {}, json.dumps(
                {"message": f"Deployment {chosen} not found"}).encode()
        self.ws.sent.append(("SCORE", endpoint, chosen))
        if self.failures:
            status, content = self.failures.pop(0)
            return status, {DEPLOYMENT_HEADER: chosen}, content
        with self.lock:
            url = self._backend(endpoint, chosen)
        answer = httpx.post(f"{url}/score", content=body, timeout=60,
                            headers={"Content-Type": "application/json"})
        return answer.status_code, {DEPLOYMENT_HEADER: chosen}, answer.content

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                parts = self.path.strip("/").split("/")
                if len(parts) != 2 or parts[1] != "score":
                    self.send_error(404)
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, headers, content = service.route(
                    parts[0], self.headers.get("Authorization"),
                    self.headers.get(DEPLOYMENT_HEADER), body)
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *_: Any) -> None:
                return

        return Handler


def _asset_key(arm_id: str, kind: str) -> tuple[str, str]:
    parts = arm_id.rstrip("/").split("/")
    assert parts[-4] == kind and parts[-2] == "versions", arm_id
    return parts[-3], parts[-1]
