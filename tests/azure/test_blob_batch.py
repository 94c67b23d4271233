"""Batch scoring from one blob container into another (Azurite): read back, re-run, resume.

The same functions the batch-scoring flow maps (`mlops.batch.run.score_partition`) on
``abfs://`` input and output, with credentials only from AZURE_STORAGE_CONNECTION_STRING.
"""

from __future__ import annotations

import io

import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlops.batch import writing
from mlops.batch.partitions import plan_partitions
from mlops.batch.run import score_partition
from mlops.batch.writing import TEMP_FOLDER
from tests.azure.conftest import new_container
from tests.mlops.batch._batch import make_champion, plan_for, write_partitions
from tools.datasets import make_churn

pytestmark = [pytest.mark.azurite, pytest.mark.service]


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    return make_champion(tmp_path_factory.mktemp("champion"))


def _score_all(input_url, output_url, champion):
    plan = plan_for(champion, output_url)
    return [score_partition(p, plan) for p in plan_partitions(input_url)]


def _read_blobs(blobs, prefix) -> pd.DataFrame:
    frames = [pq.read_table(io.BytesIO(blobs.get(name))).to_pandas()
              for name in blobs.names(prefix) if name.endswith(".parquet")]
    frame = pd.concat(frames, ignore_index=True).drop(columns="scored_at")
    return frame.sort_values("customer_id", ignore_index=True)


def test_blob_partitions_score_into_another_container_and_skip_on_rerun(
        champion, blob_env, blobs, tmp_path):
    local_in = tmp_path / "in"
    write_partitions(local_in, parts=3, rows=1500)
    for path in sorted(local_in.glob("*.parquet")):
        blobs.put(f"inbox/{path.name}", path.read_bytes())
    scores = new_container(blob_env, "scores")
    source, target = f"abfs://{blobs.container}/inbox", f"abfs://{scores}/nightly"

    first = _score_all(source, target, champion)
    assert [(r.rows, r.skipped) for r in first] == [(1500, False)] * 3
    out = type(blobs)(blobs.service, scores)
    names = out.names()
    assert len(names) == 3 and not [n for n in names if TEMP_FOLDER in n]  # no temp left
    stamps = {n: out.service.get_blob_client(scores, n).get_blob_properties().etag
              for n in names}

    again = _score_all(source, target, champion)
    assert [(r.rows, r.skipped) for r in again] == [(1500, True)] * 3
    assert {n: out.service.get_blob_client(scores, n).get_blob_properties().etag
            for n in out.names()} == stamps  # nothing written twice

    _score_all(str(local_in), str(tmp_path / "local"), champion)
    local = pq.read_table(tmp_path / "local").to_pandas().drop(columns="scored_at")
    pd.testing.assert_frame_equal(_read_blobs(out, "nightly/"),
                                  local.sort_values("customer_id", ignore_index=True))



def _put_partition(blobs, rows: int, seed: int) -> None:
    buffer = io.BytesIO()
    make_churn(rows, seed=seed).drop(columns=["churned"]).to_parquet(buffer, index=False)
    blobs.put("inbox/part-0.parquet", buffer.getvalue())


def test_a_failed_write_publishes_nothing_and_keeps_the_earlier_file(champion, blobs):
    source, target = f"abfs://{blobs.container}/inbox", f"abfs://{blobs.container}/out"
    _put_partition(blobs, 3000, seed=9)
    (first,) = _score_all(source, target, champion)
    (name,) = blobs.names("out/")
    earlier = blobs.get(name)
    _put_partition(blobs, 2500, seed=4)  # a changed input: scored again, replacing the file
    write = writing.PartitionWriter.write

    def write_then_fail(self, batch):
        write(self, batch)  # the first batch is staged, then the connection breaks
        raise OSError("connection reset while writing")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(writing.PartitionWriter, "write", write_then_fail)
        with pytest.raises(OSError, match="connection reset"):
            _score_all(source, target, champion)
    assert blobs.names("out/") == [name] and blobs.get(name) == earlier  # the old file, whole
    (again,) = _score_all(source, target, champion)
    assert (first.rows, again.rows, again.skipped) == (3000, 2500, False)
    assert pq.read_table(io.BytesIO(blobs.get(name))).num_rows == 2500
