"""Data on Blob Storage (Azurite): listing, etag fingerprints, Parquet and CSV partitions.

The same functions the training flow and the data watcher use (`mlops.data.storage`, `mlops.data`),
on `abfs://` and `az://` URLs, with credentials only from AZURE_STORAGE_CONNECTION_STRING.
"""

from __future__ import annotations

import io

import pandas as pd
import pytest

from mlops.core.errors import DataLoadError
from mlops.core.spec import load_spec
from mlops.data.loading import conform_columns, read_table
from mlops.data.storage import fingerprint, list_data_files, url_to_fs
from tests.azure.azurite import ACCOUNT_KEY
from tests.azure.conftest import container_name
from tests.conftest import ROOT
from tools.datasets import make_churn, write_churn

pytestmark = [pytest.mark.azurite, pytest.mark.service]

CHURN_YAML = ROOT / "configs" / "churn.yaml"


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def test_parquet_partitions_load_in_order_with_etag_versions(blob_env):
    container = container_name("data")  # written into a new container, as a first trial would
    url = f"abfs://{container}/churn"
    written = write_churn(url, n_rows=900, partitions=3, seed=5)
    files = list_data_files(url)
    assert [f.url for f in files] == written == [
        f"abfs://{container}/churn/part-0000{i}.parquet" for i in range(3)
    ]
    assert all(f.size > 0 and f.version.startswith("0x") for f in files)  # etags, not mtimes
    spec = load_spec(CHURN_YAML, {"data.url": url})
    frame = conform_columns(read_table(files), spec)
    expected = make_churn(900, seed=5)
    pd.testing.assert_frame_equal(frame.reset_index(drop=True), expected[frame.columns.tolist()])


def test_csv_partitions_folder_glob_and_single_file(container, blobs):
    rows = make_churn(600, seed=8)
    blobs.put("csv/2024/a.csv", _csv(rows.iloc[:250]))
    blobs.put("csv/2025/b.csv", _csv(rows.iloc[250:]))
    blobs.put("csv/_SUCCESS", b"")
    blobs.put("csv/2025/.c.csv.tmp", b"half a file")
    spec = load_spec(CHURN_YAML, {"data.url": f"abfs://{container}/csv"})

    folder = list_data_files(f"abfs://{container}/csv")
    assert [f.url.rsplit("/", 2)[-2:] for f in folder] == [["2024", "a.csv"], ["2025", "b.csv"]]
    loaded = conform_columns(read_table(folder), spec)
    assert len(loaded) == 600
    assert loaded["customer_id"].tolist() == rows["customer_id"].tolist()

    globbed = list_data_files(f"abfs://{container}/csv/*/*.csv")
    assert [f.url for f in globbed] == [f.url for f in folder]
    single = list_data_files(f"az://{container}/csv/2025/b.csv")
    assert len(single) == 1 and single[0].size == len(_csv(rows.iloc[250:]))
    assert len(read_table(single)) == 350


def test_overwrite_and_new_blob_change_the_listing_and_the_fingerprint(container, blobs):
    """What the data watcher relies on: a fresh listing every time, etags that change.

    The blobs are written by another client, as a data producer would; this process keeps one
    cached filesystem object per thread, so a listing cache would hide the changes.
    """
    first = blobs.put("drop/a.csv", _csv(make_churn(10, seed=1)))
    url = f"abfs://{container}/drop"
    before = list_data_files(url)
    assert [(f.url.rsplit("/", 1)[-1], f.version) for f in before] == [("a.csv", first)]
    single_before = list_data_files(f"{url}/a.csv")[0].version

    second = blobs.put("drop/a.csv", _csv(make_churn(12, seed=2)))
    assert second != first
    after = list_data_files(url)
    assert [f.version for f in after] == [second]
    assert list_data_files(f"{url}/a.csv")[0].version == second != single_before
    assert fingerprint(after) != fingerprint(before)

    blobs.put("drop/b.csv", _csv(make_churn(5, seed=3)))
    grown = list_data_files(url)
    assert [f.url.rsplit("/", 1)[-1] for f in grown] == ["a.csv", "b.csv"]
    assert grown[0].version == second  # the unchanged blob keeps its etag


def test_missing_data_names_the_url(container):
    with pytest.raises(DataLoadError, match=f"no data at abfs://{container}/nothing"):
        list_data_files(f"abfs://{container}/nothing")
    with pytest.raises(DataLoadError, match="no parquet or csv data files"):
        url = f"abfs://{container}/empty"
        fs, path = url_to_fs(url)
        fs.pipe_file(f"{path}/readme.txt", b"no data here")
        list_data_files(url)


def test_a_corrupt_blob_is_a_data_error_naming_it(container, blobs):
    blobs.put("bad/part-0.parquet", b"not parquet at all")
    files = list_data_files(f"abfs://{container}/bad")
    with pytest.raises(DataLoadError, match="part-0.parquet"):
        read_table(files)


def test_connection_string_wins_over_account_settings(container, blobs, monkeypatch):
    blobs.put("order/a.csv", _csv(make_churn(3, seed=4)))
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "someoneelse")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", "bm90IGEga2V5")
    assert len(list_data_files(f"abfs://{container}/order")) == 1


def test_wrong_credentials_are_a_clear_error_not_a_retry(azurite, container, monkeypatch):
    wrong = azurite.connection_string.replace(ACCOUNT_KEY, "d3Jvbmcga2V5IGZvciB0aGUgdGVzdA==")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", wrong)
    with pytest.raises(DataLoadError, match="refused access.*HTTP 403") as raised:
        list_data_files(f"abfs://{container}/anything")
    assert "d3Jvbmcga2V5" not in str(raised.value)


def test_blob_writes_and_reads_round_trip_through_url_to_fs(container):
    fs, path = url_to_fs(f"abfs://{container}/x/frame.parquet")
    buffer = io.BytesIO()
    make_churn(20, seed=9).to_parquet(buffer, index=False)
    fs.pipe_file(path, buffer.getvalue())
    assert read_table(list_data_files(f"abfs://{container}/x")).shape[0] == 20
