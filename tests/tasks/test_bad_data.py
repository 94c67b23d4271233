"""A corpus of bad (and merely unusual) data files through the data stages as real task runs.

Each variant says what a person would expect: a clear error from a named stage, naming the
file, column or rule; or success, with the rows that reach the split. A failing variant
writes nothing to the registry. `tests/flows/test_bad_data_flow.py` runs a subset through the
whole training flow with a champion serving.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops.core.errors import DataLoadError, DataValidationError, MlopsError
from serving.errors import BundleLoadError
from tasks._options import retry_transient
from tasks.data import load_data, locate_data, read_spec
from tests.tasks._stages import STAGE_NAMES, Stages, run_stages, task_run, write_spec

pytestmark = [pytest.mark.service, pytest.mark.usefixtures("prefect_server")]

ROWS = 1500
Make = Callable[[Path, pd.DataFrame], tuple[str, str]]  # (folder, rows) -> (spec path, data url)


@dataclass(frozen=True)
class Fails:
    error: type[MlopsError]
    stage: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class Passes:
    rows: int = ROWS  # rows that reach the split
    read: int | None = None  # rows read, when some are dropped (default: `rows`)


def _csv_text(rows: pd.DataFrame, **options) -> str:
    return rows.to_csv(index=False, **options)


def write(name: str, change: Callable[[pd.DataFrame], pd.DataFrame] = lambda r: r,
          spec: dict | None = None, **csv_options) -> Make:
    """One file `name` of the changed rows (by extension: parquet, csv, csv.gz...)."""
    def make(folder: Path, rows: pd.DataFrame) -> tuple[str, str]:
        frame, path = change(rows.copy()), folder / name
        if name.endswith(".parquet"):
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False, **csv_options)
        return write_spec(folder, "spec", spec or {}), str(path)

    return make


def raw(name: str, content: Callable[[pd.DataFrame], bytes | None], spec: dict | None = None
        ) -> Make:
    """One file `name` with the given bytes (None: no file at all)."""
    def make(folder: Path, rows: pd.DataFrame) -> tuple[str, str]:
        data = content(rows.copy())
        if data is not None:
            (folder / name).write_bytes(data)
        return write_spec(folder, "spec", spec or {}), str(folder / name)

    return make


def partitions(*changes: Callable[[pd.DataFrame], pd.DataFrame], ext: str = "parquet",
               spec: dict | None = None) -> Make:
    """A folder of partitions part-0, part-1...: the rows split evenly, each one changed."""
    def make(folder: Path, rows: pd.DataFrame) -> tuple[str, str]:
        out = folder / "parts"
        out.mkdir()
        size = -(-len(rows) // len(changes))
        for i, change in enumerate(changes):
            frame = change(rows.iloc[i * size:(i + 1) * size].copy())
            path = out / f"part-{i}.{ext}"
            frame.to_parquet(path, index=False) if ext == "parquet" else frame.to_csv(
                path, index=False)
        return write_spec(folder, "spec", spec or {}), str(out)

    return make


def at(column: str, value, rows: int = 1) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        if not (isinstance(value, float) and frame[column].dtype.kind == "f"):
            frame[column] = frame[column].astype(object)
        frame.loc[frame.index[:rows], column] = value
        return frame

    return change


def same(frame: pd.DataFrame) -> pd.DataFrame:
    return frame


def dates_as(fmt: str, rows: int | None = None) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        text = frame["signup_date"].dt.strftime("%Y-%m-%d").astype(object)
        head = frame.index[: rows if rows is not None else len(frame)]
        text[head] = frame.loc[head, "signup_date"].dt.strftime(fmt)
        frame["signup_date"] = text
        return frame

    return change


def _huge_int(frame: pd.DataFrame) -> bytes:
    text = _csv_text(frame).splitlines()
    header = text[0].split(",")
    cells = text[1].split(",")
    cells[header.index("support_calls")] = str(10**20)
    return "\n".join([text[0], ",".join(cells), *text[2:]]).encode()


def _duplicate_header(frame: pd.DataFrame) -> bytes:
    frame.insert(3, "age_copy", frame["age"])
    return _csv_text(frame).replace("age_copy", "age", 1).encode()


def _ragged(frame: pd.DataFrame) -> bytes:
    lines = _csv_text(frame).splitlines()
    lines[5] += ",surplus"
    return "\n".join(lines).encode()


def _latin1(frame: pd.DataFrame) -> bytes:
    frame["customer_id"] = frame["customer_id"].astype(object)
    frame.loc[frame.index[3], "customer_id"] = "Ren\u00e9e"
    return _csv_text(frame).encode("latin-1")


def _mixed_folder(folder: Path, rows: pd.DataFrame) -> tuple[str, str]:
    out = folder / "mixed"
    out.mkdir()
    rows.iloc[:700].to_parquet(out / "a.parquet", index=False)
    rows.iloc[700:].to_csv(out / "b.csv", index=False)
    return write_spec(folder, "spec", {}), str(out)


def _no_target(rows: int) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame["churned"] = frame["churned"].astype("float64")
        frame.loc[frame.index[:rows], "churned"] = np.nan
        return frame

    return change


DROP_TARGET = {"data.missing_target": "drop"}
BIG = "z" * 200_000

CORPUS: dict[str, tuple[Make, Fails | Passes]] = {
    # files and formats
    "missing-path": (raw("nowhere.parquet", lambda r: None),
                     Fails(DataLoadError, "locate_data", ("nowhere.parquet", "does not exist"))),
    "zero-byte-parquet": (raw("empty.parquet", lambda r: b""),
                          Fails(DataLoadError, "load_data", ("empty.parquet", "0 bytes"))),
    "zero-byte-csv": (raw("empty.csv", lambda r: b""),
                      Fails(DataLoadError, "load_data", ("empty.csv", "0 bytes"))),
    "header-only-csv": (raw("header.csv", lambda r: _csv_text(r.head(0)).encode()),
                        Fails(DataLoadError, "load_data", ("header.csv", "0 rows"))),
    "corrupt-parquet": (raw("bad.parquet", lambda r: b"PAR1 not really"),
                        Fails(DataLoadError, "load_data", ("bad.parquet", "cannot read parquet"))),
    "unknown-extension": (raw("data.txt", lambda r: _csv_text(r).encode()),
                          Fails(DataLoadError, "locate_data", ("data.txt", ".csv.gz",
                                                               "data.format"))),
    "unknown-extension-with-format": (raw("data.txt", lambda r: _csv_text(r).encode(),
                                          {"data.format": "csv"}), Passes()),
    "mixed-formats-folder": (_mixed_folder,
                             Fails(DataLoadError, "load_data", ("mixed data formats",))),
    "csv-gzip": (write("data.csv.gz"), Passes()),
    "csv-bz2": (write("data.csv.bz2"), Passes()),
    "csv-zip": (write("data.csv.zip"), Passes()),
    "csv-xz": (write("data.csv.xz"), Passes()),
    "gzip-named-csv": (raw("data.csv", lambda r: gzip.compress(_csv_text(r).encode())),
                       Passes()),
    "csv-gzip-format-csv": (write("data.csv.gz", spec={"data.format": "csv"}), Passes()),
    "semicolon-csv": (write("semi.csv", sep=";"),
                      Fails(DataLoadError, "load_data", ("semi.csv", "data.separator: ';'"))),
    "semicolon-csv-with-separator": (write("semi.csv", spec={"data.separator": ";"}, sep=";"),
                                     Passes()),
    "tab-csv-with-separator": (write("tab.csv", spec={"data.separator": "\t"}, sep="\t"),
                               Passes()),
    "comma-csv-with-semicolon-spec": (write("comma.csv", spec={"data.separator": ";"}),
                                      Fails(DataLoadError, "load_data",
                                            ("comma.csv", "data.separator: ','"))),
    "duplicate-csv-header": (raw("dup.csv", _duplicate_header),
                             Fails(DataLoadError, "load_data", ("dup.csv", "repeats",
                                                                "['age']"))),
    "ragged-csv-row": (raw("ragged.csv", _ragged),
                       Fails(DataLoadError, "load_data", ("ragged.csv", "cannot read csv"))),
    "latin1-csv": (raw("latin.csv", _latin1),
                   Fails(DataLoadError, "load_data", ("latin.csv", "utf-8"))),
    "utf8-bom-csv": (raw("bom.csv", lambda r: _csv_text(r).encode("utf-8-sig")), Passes()),
    # partitions
    "partition-missing-a-column": (
        partitions(same, lambda p: p.drop(columns=["age"]), same),
        Fails(DataValidationError, "load_data", ("part-1.parquet", "missing columns: ['age']"))),
    "csv-partition-missing-a-column": (
        partitions(same, same, lambda p: p.drop(columns=["region"]), ext="csv"),
        Fails(DataValidationError, "load_data", ("part-2.csv", "missing columns: ['region']"))),
    "partition-with-extra-column": (
        partitions(same, lambda p: p.assign(shoe_size=42)),
        Fails(DataValidationError, "load_data", ("part-1.parquet", "['shoe_size']"))),
    "partitions-spelling-headers-differently": (
        partitions(same, lambda p: p.rename(columns={"tenure_months": "Tenure Months"})),
        Passes()),
    "partitions-with-int-and-float-column": (
        partitions(same, lambda p: p.assign(tenure_months=p["tenure_months"].astype(float))),
        Passes()),
    "partition-with-extra-column-dropped": (
        partitions(same, lambda p: p.assign(shoe_size=42), spec={"data.extra_columns": "drop"}),
        Passes()),
    # values
    "int-beyond-int64": (raw("huge.csv", _huge_int),
                         Fails(DataValidationError, "load_data",
                               ("huge.csv", "support_calls", "100000000000000000000", "int64"))),
    "plus-inf-min-only": (write("inf.parquet", at("total_charges", np.inf)),
                          Fails(DataValidationError, "validate_data",
                                ("total_charges: finite", "inf"))),
    "plus-inf-in-csv": (write("inf.csv", at("avg_session_minutes", np.inf, 3)),
                        Fails(DataValidationError, "validate_data",
                              ("avg_session_minutes: finite: 3 bad rows",))),
    "minus-inf-with-min": (write("minf.parquet", at("age", -np.inf)),
                           Fails(DataValidationError, "validate_data", ("age: finite",))),
    "plus-inf-allowed-by-spec": (write("inf-ok.parquet", at("total_charges", np.inf),
                                       {"data.allow_nonfinite": True}), Passes()),
    "null-where-none-allowed": (write("null.parquet", at("tenure_months", None, 2)),
                                Fails(DataValidationError, "validate_data",
                                      ("tenure_months", "2 bad rows"))),
    "null-share-over-limit": (write("nulls.parquet", at("age", np.nan, 300)),
                              Fails(DataValidationError, "validate_data",
                                    ("age: max_null_fraction(0.1)",))),
    "null-share-under-limit": (write("fewnulls.parquet", at("age", np.nan, 50)), Passes()),
    "mixed-date-formats": (write("dates.csv", dates_as("%d/%m/%Y", 4)),
                           Fails(DataValidationError, "validate_data",
                                 ("signup_date: coerce_dtype", "4 bad rows", "date formats"))),
    "one-other-date-format": (write("dates.csv", dates_as("%d/%m/%Y")), Passes()),
    "not-a-date": (write("nodate.csv", at("signup_date", "soon")),
                   Fails(DataValidationError, "validate_data", ("signup_date", "soon"))),
    "text-in-int-column": (write("text.csv", at("support_calls", "three", 2)),
                           Fails(DataValidationError, "validate_data",
                                 ("support_calls: coerce_dtype('int64')", "three"))),
    "fraction-in-int-column": (write("frac.csv", at("num_products", 2.5)),
                               Fails(DataValidationError, "validate_data",
                                     ("num_products: integral", "2.5"))),
    "bool-column-with-text": (write("bool.csv", at("paperless_billing", "maybe")),
                              Fails(DataValidationError, "validate_data",
                                    ("paperless_billing", "1 bad row", "['maybe']"))),
    "bool-column-as-text": (write("booltext.csv", lambda r: r.assign(
        paperless_billing=r["paperless_billing"].map({True: "true", False: "FALSE"}))),
        Passes()),
    "category-not-allowed": (write("cat.parquet", at("contract", "weekly", 3)),
                             Fails(DataValidationError, "validate_data",
                                   ("contract: isin", "weekly"))),
    "category-with-padding": (write("pad.csv", at("internet_service", " dsl")),
                              Fails(DataValidationError, "validate_data",
                                    ("internet_service: isin", "' dsl'"))),
    "int-target-not-allowed": (write("target.parquet", at("churned", 2)),
                               Fails(DataValidationError, "validate_data",
                                     ("churned: isin([0, 1])", "e.g. [2]"))),
    "int-at-max-edge": (write("edge.parquet", at("tenure_months", 120)), Passes()),
    "int-over-max-edge": (write("over.parquet", at("tenure_months", 121)),
                          Fails(DataValidationError, "validate_data",
                                ("tenure_months: less_than_or_equal_to(120", "121"))),
    "target-missing-on-some-rows": (write("notarget.csv", _no_target(8)),
                                    Fails(DataValidationError, "validate_data",
                                          ("churned: target_not_null: 8 bad rows",))),
    "target-missing-dropped": (write("notarget.csv", _no_target(8), DROP_TARGET),
                               Passes(ROWS - 8, read=ROWS)),
    "target-one-class": (write("oneclass.parquet", lambda r: r.assign(churned=1)),
                         Fails(DataValidationError, "validate_data",
                               ("churned: target_min_classes(2)",))),
    "column-entirely-null": (write("allnull.parquet", lambda r: r.assign(total_charges=np.nan)),
                             Fails(DataValidationError, "validate_data",
                                   ("total_charges: not_entirely_null",))),
    "too-few-rows": (write("few.parquet", lambda r: r.head(499)),
                     Fails(DataValidationError, "validate_data", ("min_rows(500)", "only 499"))),
    "huge-bad-value": (write("huge.parquet", at("region", BIG)),
                       Fails(DataValidationError, "validate_data", ("region: isin", "\u2026"))),
    "headers-in-other-spelling": (
        write("loose.csv", lambda r: r.rename(columns={"days_since_last_login": "Days Since Last "
                                                        "Login", "age": "AGE"})), Passes()),
    "duplicate-rows": (write("dupes.parquet", lambda r: pd.concat([r, r.head(100)])),
                       Passes(ROWS + 100)),
}


@pytest.mark.parametrize(("make", "expected"), CORPUS.values(), ids=CORPUS.keys())
def test_bad_data_corpus(make, expected, tmp_path, churn_rows, state_dir):
    spec_path, url = make(tmp_path, churn_rows)
    stages = Stages()
    if isinstance(expected, Passes):
        run_stages(spec_path, url, until="build_features", stages=stages)
        assert stages.split.train.rows + stages.split.test.rows == expected.rows
        assert stages.raw.rows == (expected.read or expected.rows)
        return
    with pytest.raises(MlopsError) as info:
        run_stages(spec_path, url, run_dir=str(tmp_path / "run"), stages=stages)
    assert type(info.value) is expected.error, info.value
    assert STAGE_NAMES[len(stages.done)] == expected.stage, (stages.done, info.value)
    message = str(info.value)
    for name in expected.names:
        assert name in message, message
    assert len(message) < 2000, len(message)  # values shortened, no table dumped
    assert not (state_dir / "registry").exists()
    assert not (tmp_path / "run").exists()


def test_the_corpus_is_big_enough():
    assert len(CORPUS) >= 40
    assert sum(isinstance(e, Fails) for _, e in CORPUS.values()) >= 30


def test_an_error_about_the_data_is_raised_after_one_attempt(tmp_path, churn_rows, monkeypatch):
    """An integer beyond int64 fails the load once: no retries, no 2 + 5 + 15 s of waiting."""
    import tasks.data

    spec_path, _ = raw("huge.csv", _huge_int)(tmp_path, churn_rows)
    spec = read_spec(spec_path, str(tmp_path / "huge.csv"))
    real, calls = tasks.data.load_table, []
    monkeypatch.setattr(tasks.data, "load_table",
                        lambda files, spec: calls.append(files) or real(files, spec))
    state = load_data.with_options(retry_delay_seconds=0)(locate_data(spec), spec,
                                                           return_state=True)
    with pytest.raises(DataValidationError, match="huge.csv, column 'support_calls'"):
        state.result()
    assert len(calls) == 1
    run, history = task_run(state)
    assert run.run_count == 1
    assert "Retrying" not in history and "AwaitingRetry" not in history


@pytest.mark.parametrize("error", [
    DataLoadError("x"), DataValidationError("x"), OverflowError("x"), ValueError("x"),
    TypeError("x"), KeyError("x"), UnicodeDecodeError("utf-8", b"\x8b", 0, 1, "x"),
    BundleLoadError("model.skops does not match the manifest"),
])
def test_errors_about_data_or_code_are_not_retried(error):
    assert retry_transient(None, None, _Failed(error)) is False


@pytest.mark.parametrize("error", [OSError("reset"), ConnectionError("x"), TimeoutError("x")])
def test_io_errors_are_retried(error):
    assert retry_transient(None, None, _Failed(error)) is True


class _Failed:
    """The one thing `retry_transient` asks of a state: its exception."""

    def __init__(self, exc: BaseException):
        self.exc = exc

    def result(self, raise_on_failure: bool = True) -> BaseException:
        return self.exc
