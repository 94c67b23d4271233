"""adlfs with a short retry budget in the Azure SDK, so outages reach the retries we can see.

The Storage SDK's default policy retries a failed request three times after about 15, 18 and
24 seconds: a stopped or unreachable store takes 80 s or more to raise, on every call, and
nothing in Prefect shows the wait. Here the SDK retries twice within a few seconds (enough for
a dropped connection or a brief 503), and longer outages surface to the I/O tasks' own retries
(`tasks._options.IO_TASK`), which Prefect logs and shows as states.

Imported only through `serving.storage.open_fs`, for blob URLs.
"""

from __future__ import annotations

from adlfs import AzureBlobFileSystem
from azure.storage.blob.aio import BlobServiceClient

# Passed to the SDK's ExponentialRetry: waits of about 1 s and 3 s (+-0.5 s).
SDK_RETRY = {
    "retry_total": 2, "initial_backoff": 1, "increment_base": 2, "random_jitter_range": 0.5,
}


class BlobFileSystem(AzureBlobFileSystem):
    """`AzureBlobFileSystem` whose service client uses `SDK_RETRY`.

    adlfs builds its client from the same credentials in the same order (connection string,
    account key, then a token credential such as DefaultAzureCredential); this rebuilds it with
    the retry settings, through the SDK's public constructors.
    """

    def do_connect(self) -> None:
        super().do_connect()
        stock = self.service_client
        if self.connection_string:
            self.service_client = BlobServiceClient.from_connection_string(
                self.connection_string, **SDK_RETRY
            )
        else:
            self.service_client = BlobServiceClient(
                stock.url, credential=stock.credential, **SDK_RETRY
            )

    async def _makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Create the path's container if it is missing (Blob Storage has no other folders).

        adlfs leaves makedirs a no-op, so the first write into a new container failed with
        ContainerNotFound. The registry, the inference collector and the sample-data writer
        call makedirs before they write. Without the right to read container properties adlfs
        warns and assumes the container exists.
        """
        await self._mkdir(path, create_parents=True)
