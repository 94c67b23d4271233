"""Stage checkpoints (mlops/data/frames.py): whole, in batches, and rows gathered into a new one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlops.data.frames import (
    FrameRef,
    FrameWriter,
    frame_columns,
    head_frame,
    iter_frames,
    load_frame,
    release_memory,
    sample_frame,
    save_frame,
    take_rows,
)


def _frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame({
        "n": np.arange(rows, dtype="int64"),
        "m": pd.array([i if i % 3 else None for i in range(rows)], dtype="Int64"),
        "s": pd.Series([f"s{i}" for i in range(rows)], dtype="str"),
        "f": pd.array([bool(i % 2) for i in range(rows)], dtype="boolean"),
    })


def _ref(path: Path) -> FrameRef:
    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_file(source).read_all()
    return FrameRef(str(path), table.num_rows, table.num_columns)


def _written(tmp_path: Path, rows: int, batch: int) -> Path:
    """A checkpoint of `_frame(rows)` written `batch` rows at a time."""
    frame = _frame(rows)
    with FrameWriter(tmp_path / "frame.arrow") as writer:
        for start in range(0, rows, batch):
            writer.write(frame.iloc[start:start + batch])
    return tmp_path / "frame.arrow"


def test_save_and_load_keep_values_and_pandas_dtypes(tmp_path):
    ref = save_frame(_frame(10), tmp_path / "a.arrow")
    assert (ref.rows, ref.columns) == (10, 4)
    pd.testing.assert_frame_equal(load_frame(ref), _frame(10))
    pd.testing.assert_frame_equal(load_frame(ref, ["s", "n"]), _frame(10)[["s", "n"]])
    assert frame_columns(ref) == ["n", "m", "s", "f"]


def test_the_writer_appends_batches_into_one_checkpoint(tmp_path):
    with FrameWriter(tmp_path / "out.arrow") as writer:
        for start in range(0, 10, 4):
            writer.write(_frame(10).iloc[start:start + 4])
    assert (writer.ref.rows, writer.ref.columns) == (10, 4)
    pd.testing.assert_frame_equal(load_frame(writer.ref), _frame(10))


def test_later_batches_take_the_first_batchs_types(tmp_path):
    with FrameWriter(tmp_path / "out.arrow") as writer:
        writer.write(pd.DataFrame({"x": [1.5, 2.5]}))
        writer.write(pd.DataFrame({"x": [3, 4]}))  # ints, stored as the first batch's floats
        writer.write(pa.table({"x": pa.array([5], pa.int32())}))
    assert load_frame(writer.ref)["x"].tolist() == [1.5, 2.5, 3.0, 4.0, 5.0]


def test_a_failed_write_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError), FrameWriter(tmp_path / "out.arrow") as writer:
        writer.write(_frame(5))
        raise RuntimeError("the stage failed half way")
    assert list(tmp_path.iterdir()) == []


def test_iter_frames_groups_the_files_batches_into_about_rows(tmp_path):
    ref = _ref(_written(tmp_path, 10, 2))  # five batches of two rows
    got = list(iter_frames(ref, rows=5))
    assert [len(f) for f in got] == [6, 4]  # whole batches until at least 5 rows
    pd.testing.assert_frame_equal(pd.concat(got, ignore_index=True), _frame(10))
    assert [len(f) for f in iter_frames(ref, rows=4)] == [4, 4, 2]
    assert [len(f) for f in iter_frames(ref, rows=100)] == [10]


def test_iter_frames_of_an_empty_checkpoint_is_one_empty_frame(tmp_path):
    got = list(iter_frames(save_frame(_frame(0), tmp_path / "empty.arrow")))
    assert len(got) == 1
    pd.testing.assert_frame_equal(got[0], _frame(0))


def test_take_rows_gathers_rows_in_the_order_given(tmp_path):
    ref = _ref(_written(tmp_path, 10, 4))
    positions = np.array([9, 0, 5, 5, 2])
    out = take_rows(ref, positions, tmp_path / "taken.arrow", rows=2)
    expected = _frame(10).iloc[positions].reset_index(drop=True)
    pd.testing.assert_frame_equal(load_frame(out), expected)
    empty = take_rows(ref, np.array([], dtype="int64"), tmp_path / "none.arrow")
    assert empty.rows == 0 and list(load_frame(empty).columns) == ["n", "m", "s", "f"]


def test_release_memory_keeps_live_tables(tmp_path):
    ref = save_frame(_frame(1000), tmp_path / "a.arrow")
    kept = load_frame(ref)
    release_memory()
    pd.testing.assert_frame_equal(kept, _frame(1000))


@pytest.mark.parametrize("n", [1, 7, 250, 400])
def test_sample_frame_is_what_pandas_sample_gives(tmp_path, n):
    """Same rows, order and dtypes as sampling the whole loaded table, including a nullable
    column whose sample holds no null (its dtype must stay the table's)."""
    ref = save_frame(_frame(300), tmp_path / "a.arrow")
    whole = load_frame(ref, ["m", "s", "n"])
    expected = whole.sample(n=min(n, len(whole)), random_state=11).reset_index(drop=True)
    got = sample_frame(ref, n, 11, ["m", "s", "n"])
    pd.testing.assert_frame_equal(got, expected)
    assert got.dtypes.to_dict() == whole.dtypes.to_dict()


@pytest.mark.parametrize("n", [0, 1, 7, 300, 500])
def test_head_frame_is_what_pandas_head_gives(tmp_path, n):
    ref = save_frame(_frame(300), tmp_path / "a.arrow")
    whole = load_frame(ref, ["m", "s", "n"])
    pd.testing.assert_frame_equal(head_frame(ref, n, ["m", "s", "n"]), whole.head(n))


def test_sample_frame_keeps_dtypes_when_the_sample_has_no_nulls(tmp_path):
    """Column m is null on every third row: a one-row sample of a non-null row stays Int64."""
    ref = save_frame(_frame(300), tmp_path / "a.arrow")
    for seed in range(20):
        got = sample_frame(ref, 1, seed, ["m"])
        if got["m"].notna().all():
            break
    else:
        raise AssertionError("no seed drew a non-null row")
    assert str(got["m"].dtype) == "Int64"
