"""tasks/data.py: read_spec, locate_data, load_data and validate_data as real task runs.

Every bad input named in the product issue stops the stages with one error that names the file,
column or field, and nothing reaches the registry. Our own errors are not retried; a transient
OSError is. Loading is cached until a data file changes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from prefect import flow

import tasks.data
from mlops.core.errors import DataLoadError, DataValidationError, MlopsError, SpecError
from mlops.core.spec import load_spec
from mlops.data.frames import load_frame, save_frame
from tasks._options import IO_RETRY_DELAYS, retry_transient
from tasks.data import load_data, locate_data, read_spec, validate_data
from tests.tasks._stages import (
    CHURN_YAML,
    ROOT,
    STAGE_NAMES,
    Stages,
    fresh_ref,
    run_stages,
    task_run,
    write_spec,
)

pytestmark = [pytest.mark.service, pytest.mark.usefixtures("prefect_server")]


def _parquet(folder: Path, name: str, frame: pd.DataFrame) -> str:
    path = folder / name
    frame.to_parquet(path, index=False)
    return str(path)


# ---------------------------------------------------------------- normal paths


def test_read_spec_overrides_the_data_url_only_when_given(churn_dir):
    assert read_spec(CHURN_YAML, churn_dir).data.url == churn_dir
    spec = read_spec(CHURN_YAML)
    assert spec.data.url == "data/generated/churn"
    assert (spec.name, spec.target, spec.task) == ("churn", "churned", "classification")


def test_locate_data_lists_and_fingerprints_the_partitions(stages, churn_dir):
    ref = stages.data
    assert ref.url == churn_dir
    assert [Path(f.url).name for f in ref.files] == ["part-00000.parquet", "part-00001.parquet"]
    assert ref.total_bytes == sum(Path(f.url).stat().st_size for f in ref.files) > 0
    assert locate_data(stages.spec).fingerprint == ref.fingerprint  # same files, same digest


def test_load_data_reads_every_partition_in_spec_order(stages, churn_rows):
    assert (stages.raw.rows, stages.raw.columns) == (1500, len(stages.spec.columns))
    raw = load_frame(stages.raw)
    assert len(raw) == len(churn_rows)
    assert list(raw.columns) == [c.name for c in stages.spec.columns]
    assert raw["customer_id"].tolist() == churn_rows["customer_id"].tolist()


def test_load_data_matches_headers_loosely_and_can_drop_extra_columns(tmp_path, churn_rows):
    frame = churn_rows.rename(columns={"tenure_months": "Tenure Months", "age": "AGE"})
    url = _parquet(tmp_path, "loose.parquet", frame.assign(shoe_size=42))
    spec = load_spec(CHURN_YAML, {"data.url": url, "data.extra_columns": "drop"})
    raw = load_frame(load_data(locate_data(spec), spec))
    assert list(raw.columns) == [c.name for c in spec.columns]
    assert raw["tenure_months"].tolist() == churn_rows["tenure_months"].tolist()


def test_load_data_reads_csv_too(tmp_path, churn_rows):
    path = tmp_path / "churn.csv"
    churn_rows.to_csv(path, index=False)
    spec = load_spec(CHURN_YAML, {"data.url": str(path)})
    raw = load_data(locate_data(spec), spec)
    assert (raw.rows, raw.columns) == (1500, len(spec.columns))


def test_validate_data_returns_the_rows_with_the_spec_dtypes(stages):
    assert stages.clean.rows == 1500
    clean = load_frame(stages.clean)
    assert clean["tenure_months"].dtype == "int64"
    assert clean["paperless_billing"].dtype == "boolean"
    assert str(clean["signup_date"].dtype).startswith("datetime64")


def test_validate_data_lists_every_failure_at_once(stages, tmp_path):
    raw = load_frame(stages.raw)
    raw.loc[raw.index[:10], "tenure_months"] = 500
    raw.loc[raw.index[:3], "contract"] = "weekly"
    broken = save_frame(raw, tmp_path / "broken.arrow")
    with pytest.raises(DataValidationError) as info:
        validate_data(broken, fresh_ref(), stages.spec)
    message = str(info.value)
    assert "broke 2 rule(s)" in message
    assert "tenure_months: less_than_or_equal_to(120" in message and "10 bad rows" in message
    assert "contract: isin" in message and "weekly" in message


# ---------------------------------------------------------------- the bad inputs


@dataclass(frozen=True)
class Broken:
    """One bad input: how to make it, the error, the stage that must raise it, what it names."""

    make: Callable[[Path, pd.DataFrame], tuple[str, str]]  # -> (spec path, data url)
    error: type[MlopsError]
    stage: str
    names: tuple[str, ...]


def _data(name: str, change: Callable[[pd.DataFrame], pd.DataFrame]):
    def make(folder: Path, rows: pd.DataFrame) -> tuple[str, str]:
        return CHURN_YAML, _parquet(folder, name, change(rows.copy()))

    return make


def _file(name: str, content: bytes | None):
    def make(folder: Path, rows: pd.DataFrame) -> tuple[str, str]:
        if content is not None:
            (folder / name).write_bytes(content)
        return CHURN_YAML, str(folder / name)

    return make


def _spec(text: str | None = None, **changes):
    def make(folder: Path, rows: pd.DataFrame) -> tuple[str, str]:
        url = _parquet(folder, "good.parquet", rows)
        if text is None:
            return write_spec(folder, "bad-field", changes), url
        (folder / "unparsable.yaml").write_text(text)
        return str(folder / "unparsable.yaml"), url

    return make


def _as_text(rows: pd.DataFrame) -> pd.DataFrame:
    rows["tenure_months"] = rows["tenure_months"].astype(str)
    rows.loc[rows.index[:5], "tenure_months"] = "twelve"
    return rows


BROKEN = {
    "missing-file": Broken(
        _file("nowhere.parquet", None), DataLoadError, "locate_data",
        ("nowhere.parquet", "does not exist"),
    ),
    "empty-file": Broken(
        _file("empty.parquet", b""), DataLoadError, "load_data", ("empty.parquet", "0 bytes"),
    ),
    "corrupt-parquet": Broken(
        _file("corrupt.parquet", b"PAR1 these bytes are not a parquet file"), DataLoadError,
        "load_data", ("corrupt.parquet", "cannot read parquet file"),
    ),
    "wrong-types": Broken(
        _data("text.parquet", _as_text), DataValidationError, "validate_data",
        ("tenure_months", "coerce_dtype('int64')", "5 bad rows", "twelve"),
    ),
    "missing-column": Broken(
        _data("no-age.parquet", lambda r: r.drop(columns=["age"])), DataValidationError,
        "load_data", ("missing columns: ['age']",),
    ),
    "extra-column": Broken(
        _data("extra.parquet", lambda r: r.assign(shoe_size=42)), DataValidationError,
        "load_data", ("extra columns not in the spec: ['shoe_size']", "data.extra_columns"),
    ),
    "all-null-column": Broken(
        _data("null.parquet", lambda r: r.assign(monthly_charges=float("nan"))),
        DataValidationError, "validate_data",
        ("monthly_charges: not_entirely_null", "all 1500 values null"),
    ),
    "one-class-target": Broken(
        _data("one-class.parquet", lambda r: r.assign(churned=0)), DataValidationError,
        "validate_data", ("churned: target_min_classes(2)", "only 1 class"),
    ),
    "unparsable-spec": Broken(
        _spec("name: churn\ncolumns: [{name: age\n"), SpecError, "read_spec",
        ("unparsable.yaml", "is not valid YAML"),
    ),
    "invalid-spec-field": Broken(
        _spec(**{"split.test_size": 1.5}), SpecError, "read_spec",
        ("bad-field.yaml", "split.test_size", "less than 1"),
    ),
}


@pytest.mark.parametrize("case", BROKEN.values(), ids=BROKEN.keys())
def test_bad_input_stops_with_one_error_naming_it(case, tmp_path, churn_rows, state_dir):
    spec_path, url = case.make(tmp_path, churn_rows)
    stages = Stages()
    with pytest.raises(MlopsError) as info:
        run_stages(spec_path, url, run_dir=str(tmp_path / "run"), stages=stages)
    assert type(info.value) is case.error
    assert STAGE_NAMES[len(stages.done)] == case.stage, stages.done
    message = str(info.value)
    for name in case.names:
        assert name in message
    assert not (state_dir / "registry").exists()
    assert not (tmp_path / "run").exists()


def test_locate_data_refuses_a_folder_without_data(tmp_path):
    (tmp_path / "notes.txt").write_text("no data here")
    spec = load_spec(CHURN_YAML, {"data.url": str(tmp_path)})
    with pytest.raises(DataLoadError, match=f"no parquet or csv data files at {tmp_path}"):
        locate_data(spec)


def test_an_estimator_that_cannot_fit_stops_the_load_before_it_reads(
    tmp_path, churn_dir, state_dir, monkeypatch
):
    # read_spec only checks the import path; load_data imports the estimator before any read.
    spec_path = write_spec(tmp_path, "dict", {"model.estimator": "collections.OrderedDict"})
    calls = _count_reads(monkeypatch)
    stages = Stages()
    with pytest.raises(SpecError, match="'collections.OrderedDict' has no fit/predict"):
        run_stages(spec_path, churn_dir, run_dir=str(tmp_path / "run"), stages=stages)
    assert STAGE_NAMES[len(stages.done)] == "load_data"
    assert calls == []


def test_read_spec_does_not_import_the_estimator():
    probe = (
        "import sys\n"
        "from tasks.data import read_spec\n"
        f"read_spec.fn({CHURN_YAML!r})\n"
        "print('sklearn' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == "False"  # scikit-learn takes 1-2 s; a cached run needs none


def test_read_spec_names_a_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="spec file not found: .*nope.yaml"):
        read_spec(str(tmp_path / "nope.yaml"))


# ---------------------------------------------------------------- retries


def _count_reads(monkeypatch: pytest.MonkeyPatch, fail_first: Exception | None = None) -> list:
    """Count load_data's reads; optionally the first one fails with `fail_first`."""
    real, calls = tasks.data.load_table, []

    def load_table(files, spec):
        calls.append(files)
        if fail_first is not None and len(calls) == 1:
            raise fail_first
        return real(files, spec)

    monkeypatch.setattr(tasks.data, "load_table", load_table)
    return calls


def test_io_tasks_retry_only_transient_errors():
    for io_task in (read_spec, locate_data, load_data):
        assert io_task.retries == len(IO_RETRY_DELAYS)
        assert io_task.retry_condition_fn is retry_transient
    assert validate_data.retries == 0  # computation: the same rows fail the same way


def test_a_data_load_error_is_not_retried(tmp_path, monkeypatch):
    bad = tmp_path / "corrupt.parquet"
    bad.write_bytes(b"not parquet")
    spec = load_spec(CHURN_YAML, {"data.url": str(bad)})
    calls = _count_reads(monkeypatch)
    state = load_data.with_options(retry_delay_seconds=0)(
        locate_data(spec), spec, return_state=True
    )
    assert state.is_failed()
    with pytest.raises(DataLoadError, match="corrupt.parquet"):
        state.result()
    assert len(calls) == 1
    run, history = task_run(state)
    assert run.run_count == 1
    assert "AwaitingRetry" not in history and "Retrying" not in history


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda tmp: read_spec.with_options(retry_delay_seconds=0)(
            _write(tmp / "broken.yaml", "columns: [{name: age\n"), return_state=True), SpecError),
        (lambda tmp: locate_data.with_options(retry_delay_seconds=0)(
            load_spec(CHURN_YAML, {"data.url": str(tmp / "nowhere")}), return_state=True),
         DataLoadError),
    ],
    ids=["read_spec", "locate_data"],
)
def test_our_errors_are_not_retried_by_any_io_task(call, error, tmp_path):
    state = call(tmp_path)
    with pytest.raises(error):
        state.result()
    run, history = task_run(state)
    assert run.run_count == 1
    assert "AwaitingRetry" not in history and "Retrying" not in history


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_a_transient_os_error_is_retried(stages, monkeypatch):
    calls = _count_reads(monkeypatch, fail_first=OSError("connection reset by peer"))
    retrying = load_data.with_options(retry_delay_seconds=0, refresh_cache=True)
    state = retrying(stages.data, stages.spec, return_state=True)
    assert state.is_completed(), state
    assert state.result().rows == 1500
    assert len(calls) == 2
    run, history = task_run(state)
    assert run.run_count == 2
    assert history.count("Retrying") == 1  # a zero delay skips AwaitingRetry


# ---------------------------------------------------------------- cache


@flow(name="load-twice")
def _load_twice(url: str) -> tuple[str, str, str]:
    spec = read_spec(CHURN_YAML, url)
    data = locate_data(spec)
    first = load_data(data, spec, return_state=True)
    second = load_data(data, spec, return_state=True)
    return data.fingerprint, first.name, second.name


def test_load_is_cached_until_a_data_file_changes(tmp_path, churn_dir, monkeypatch):
    folder = tmp_path / "churn"
    shutil.copytree(churn_dir, folder)
    before, first, second = _load_twice(str(folder))
    assert (first, second) == ("Completed", "Cached")

    part = sorted(folder.glob("*.parquet"))[0]
    stat = part.stat()
    os.utime(part, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    calls = _count_reads(monkeypatch)
    after, first, second = _load_twice(str(folder))
    assert after != before
    assert (first, second) == ("Completed", "Cached")
    assert len(calls) == 1  # read again once, for the new fingerprint
