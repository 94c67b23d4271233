"""Blob Storage fixtures: one Azurite for the session, a fresh container per test.

Azurite comes from the project's package-lock.json (`make node-env`); `make test` installs it.
The connection string is Azurite's well-known development one and reaches the code the way a
real one would: through AZURE_STORAGE_CONNECTION_STRING.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from azure.storage.blob import BlobServiceClient

from tests.azure.azurite import Azurite
from tests.conftest import free_port

# Every variable adlfs or our storage options read: a developer's own settings must not leak in.
AZURE_ENV = (
    "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_CLIENT_ID", "AZURE_STORAGE_CLIENT_SECRET",
    "AZURE_STORAGE_TENANT_ID", "AZURE_STORAGE_ANON",
)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """azurite-blob on a free loopback port, its blobs in a temporary folder."""
    folder = tmp_path_factory.mktemp("azurite")
    server = Azurite(folder / "data", free_port(), folder / "azurite.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def blob_env(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> str:
    """AZURE_STORAGE_CONNECTION_STRING pointing at Azurite, and no other Azure setting."""
    if not azurite.running:
        azurite.start()  # a failed fault test must not take the emulator from the others
    for name in AZURE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    return azurite.connection_string


def container_name(prefix: str = "t") -> str:
    """A container name no test has used (3-63 lowercase letters and digits)."""
    return f"{prefix}{uuid.uuid4().hex[:16]}"


def new_container(connection_string: str, prefix: str = "t") -> str:
    name = container_name(prefix)
    with BlobServiceClient.from_connection_string(connection_string) as service:
        service.create_container(name)
    return name


@pytest.fixture
def container(blob_env: str) -> str:
    """A new, empty container's name."""
    return new_container(blob_env)


@pytest.fixture
def blobs(blob_env: str, container: str) -> Iterator[BlobClientFactory]:
    """Write, overwrite and read blobs in `container` behind the code's back (another client)."""
    with BlobServiceClient.from_connection_string(blob_env) as service:
        yield BlobClientFactory(service, container)


class BlobClientFactory:
    def __init__(self, service: BlobServiceClient, container: str) -> None:
        self.service = service
        self.container = container

    def put(self, name: str, data: bytes) -> str:
        """Write (or overwrite) a blob; returns its new etag."""
        client = self.service.get_blob_client(self.container, name)
        return client.upload_blob(data, overwrite=True)["etag"].strip('"')

    def get(self, name: str) -> bytes:
        return self.service.get_blob_client(self.container, name).download_blob().readall()

    def names(self, prefix: str = "") -> list[str]:
        client = self.service.get_container_client(self.container)
        return sorted(b.name for b in client.list_blobs(name_starts_with=prefix))
