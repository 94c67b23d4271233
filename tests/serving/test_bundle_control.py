"""PUT /admin/deployments with bad bundles and foreign URLs: clear 4xx JSON, nothing runs."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import httpx
import pytest
import skops.io as sio

from tests.serving.conftest import ADMIN_KEY
from tests.serving.test_model_file import _call, _dict, _edit, _json, _ran, _set_memory

pytestmark = [pytest.mark.service, pytest.mark.slow]

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
ENV_MARK = "MLOPS_TEST_PAYLOAD_RAN"


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def _bundle(toys, folder: Path, model: bytes | None = None, manifest: object = None) -> str:
    """A copy of toy version 1 with its model file and/or manifest replaced (sha kept right)."""
    shutil.copytree(Path(toys.v1.url), folder)
    if model is not None:
        (folder / "model.skops").write_bytes(model)
        written = json.loads((folder / "manifest.json").read_text())
        written["model_sha256"] = hashlib.sha256(model).hexdigest()
        (folder / "manifest.json").write_text(json.dumps(written))
    if manifest is not None:
        (folder / "manifest.json").write_text(json.dumps(manifest))
    return str(folder)


def _put(http, url: str) -> httpx.Response:
    return http.put("/admin/deployments/green", json={"model_url": url}, headers=ADMIN)


def test_a_hostile_bundle_is_a_422_naming_the_type_and_runs_nothing(blue_green, toys, http,
                                                                    tmp_path):
    marker = tmp_path / "payload-ran"
    model = (Path(toys.v1.url) / "model.skops").read_bytes()
    payload = _call("numpy.testing._private.utils.runstring",
                    _json(f"open({str(marker)!r}, 'w').write('ran')"), _dict({}))
    response = _put(http, _bundle(toys, tmp_path / "b", _edit(model, _set_memory(payload))))
    assert response.status_code == 422
    assert "numpy.testing._private.utils.runstring" in response.json()["error"]
    assert not _ran(marker)
    assert blue_green.state()["deployments"]["green"]["status"] == "ready"


@pytest.mark.parametrize(("change", "words"), [
    ("dict model", "holds a builtins.dict, not an estimator"),
    ("list manifest", "manifest.json must be a JSON object, got list"),
    ("manifest without task", "'task' must be one of"),
    ("manifest features not a list", "'features' must be a non-empty list"),
    ("model not a zip", "not a skops (zip) file"),
])
def test_malformed_bundles_are_a_422_not_a_500(blue_green, toys, http, tmp_path, change, words):
    manifest = json.loads((Path(toys.v1.url) / "manifest.json").read_text())
    folder = tmp_path / "b"
    if change == "dict model":
        url = _bundle(toys, folder, model=sio.dumps({"a": "b"}))
    elif change == "list manifest":
        url = _bundle(toys, folder, manifest=[manifest])
    elif change == "manifest without task":
        url = _bundle(toys, folder, manifest={k: v for k, v in manifest.items() if k != "task"})
    elif change == "manifest features not a list":
        url = _bundle(toys, folder, manifest={**manifest, "features": "num_a"})
    else:
        url = _bundle(toys, folder, model=b"PK but not really a zip")
    response = _put(http, url)
    assert response.status_code == 422, response.text
    assert words in response.json()["error"]
    assert blue_green.state()["deployments"]["green"]["status"] == "ready"


def test_model_urls_outside_the_registry_roots_are_refused_alike(blue_green, http, tmp_path,
                                                                 toys):
    inside = Path(toys.v1.url)
    urls = ["http://127.0.0.1:9/registry/toy/1", "ftp://example.com/toy/1",
            "memory://toy/1", "/etc", "/etc/no-such-folder",
            f"{inside}/../../../../../../etc", f"file://{inside.parent}/../../../../../../etc"]
    link = tmp_path / "link-out"
    link.symlink_to("/etc")  # inside the roots by name, outside once resolved
    urls.append(str(link))
    answers = {}
    for url in urls:
        response = _put(http, url)
        assert response.status_code == 403, (url, response.text)
        answers[url] = response.json()["error"].replace(url[:200], "URL")
    assert len(set(answers.values())) == 1, answers  # existing or not: the same words
    assert "not under an allowed model location" in next(iter(answers.values()))
    assert blue_green.state()["deployments"]["green"]["status"] == "ready"
