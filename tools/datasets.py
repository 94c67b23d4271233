"""Deterministic sample data: a customer-churn table (with optional drift) and sklearn's diabetes.

The churn table matches `configs/churn.yaml`. Rows are generated in fixed blocks, each from its
own seed, so a row's values depend only on the seed and its position: the same arguments give
the same data whether it is written as one file or many, in big chunks or small ones. Drift,
extra columns and missing values draw from streams of their own, so drifting one column leaves
every other column (and the target) exactly as it was.

Run `mlops data --help` for the command line.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem

from mlops.data.storage import path_to_url, url_to_fs

logger = logging.getLogger(__name__)

BLOCK_ROWS = 16_384
MAX_ROWS = 10_000_000
TARGET = "churned"

CONTRACTS = ("month-to-month", "one-year", "two-year")
PAYMENT_METHODS = ("electronic-check", "mailed-check", "bank-transfer", "credit-card")
INTERNET_SERVICES = ("dsl", "fiber", "none")
REGIONS = ("north", "south", "east", "west", "central")
CATEGORIES: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "contract": (CONTRACTS, (0.55, 0.25, 0.20)),
    "payment_method": (PAYMENT_METHODS, (0.34, 0.18, 0.22, 0.26)),
    "internet_service": (INTERNET_SERVICES, (0.35, 0.45, 0.20)),
    "region": (REGIONS, (0.25, 0.20, 0.20, 0.20, 0.15)),
}
# Bounds of configs/churn.yaml; drifted values are clipped into them so drifted data still loads.
NUMERIC_BOUNDS: dict[str, tuple[float, float]] = {
    "tenure_months": (0, 120),
    "monthly_charges": (0, 500),
    "total_charges": (0, np.inf),
    "age": (18, 100),
    "support_calls": (0, 50),
    "num_products": (1, 10),
    "avg_session_minutes": (0, np.inf),
    "days_since_last_login": (0, 3650),
}
INT_COLUMNS = ("tenure_months", "support_calls", "num_products", "days_since_last_login")
# Share of missing values per column, well under each column's max_null_fraction in the spec.
NULL_SHARES = {
    "monthly_charges": 0.01,
    "total_charges": 0.015,
    "age": 0.04,
    "avg_session_minutes": 0.015,
    "payment_method": 0.015,
}
# The logistic model behind the target (log-odds); tuned for ~25% churn and ROC AUC ~0.85.
INTERCEPT = -2.7
COLUMN_ORDER = (
    "customer_id",
    "signup_date",
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "age",
    "support_calls",
    "num_products",
    "avg_session_minutes",
    "days_since_last_login",
    "contract",
    "payment_method",
    "internet_service",
    "region",
    "paperless_billing",
    TARGET,
)
_STREAM_BASE, _STREAM_DRIFT, _STREAM_EXTRA, _STREAM_NULLS = 0, 1, 2, 3


@dataclass(frozen=True)
class ChurnOptions:
    """Everything that shapes generated churn rows besides their positions."""

    seed: int = 0
    start: str = "2024-01-01"
    drift: Mapping[str, float] | None = None
    extra_numeric: int = 0


def _rng(seed: int, block: int, stream: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, block, stream, *key]))


def _choice(rng: np.random.Generator, column: str, n: int) -> np.ndarray:
    levels, probs = CATEGORIES[column]
    return np.asarray(levels, dtype=object)[rng.choice(len(levels), size=n, p=probs)]


def _base_columns(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """The undrifted features, drawn in a fixed order (the order is part of the data)."""
    cols: dict[str, np.ndarray] = {}
    cols["tenure_months"] = np.minimum(rng.exponential(26.0, n), 120).astype(np.int64)
    cols["contract"] = _choice(rng, "contract", n)
    cols["internet_service"] = _choice(rng, "internet_service", n)
    cols["payment_method"] = _choice(rng, "payment_method", n)
    cols["region"] = _choice(rng, "region", n)
    cols["num_products"] = np.clip(1 + rng.poisson(0.9, n), 1, 10).astype(np.int64)
    fiber = cols["internet_service"] == "fiber"
    dsl = cols["internet_service"] == "dsl"
    monthly = 20 + 8 * cols["num_products"] + 35 * fiber + 18 * dsl + rng.normal(0, 10, n)
    cols["monthly_charges"] = np.round(np.clip(monthly, 5, 300), 2)
    spread = rng.uniform(0.9, 1.1, n)
    cols["total_charges"] = np.round(cols["monthly_charges"] * cols["tenure_months"] * spread, 2)
    cols["age"] = np.round(np.clip(rng.normal(45, 14, n), 18, 95), 1)
    cols["support_calls"] = np.clip(rng.poisson(1.2 + 0.8 * fiber), 0, 50).astype(np.int64)
    cols["avg_session_minutes"] = np.round(rng.gamma(2.0, 10.0, n), 2)
    logins = rng.exponential(15.0, n)
    cols["days_since_last_login"] = np.clip(logins, 0, 3650).astype(np.int64)
    cols["paperless_billing"] = rng.random(n) < 0.6
    return cols


def churn_log_odds(cols: Mapping[str, np.ndarray]) -> np.ndarray:
    """The log-odds of churn: short contracts, little tenure, support trouble and disuse churn."""
    contract = cols["contract"]
    return (
        INTERCEPT
        + 1.75 * (contract == "month-to-month")
        - 1.25 * (contract == "two-year")
        - 0.05 * cols["tenure_months"]
        + 0.019 * (cols["monthly_charges"] - 70)
        + 0.44 * cols["support_calls"]
        + 0.62 * (cols["internet_service"] == "fiber")
        - 0.38 * (cols["internet_service"] == "none")
        + 0.62 * (cols["payment_method"] == "electronic-check")
        - 0.25 * (cols["num_products"] - 1)
        + 0.038 * cols["days_since_last_login"]
        - 0.031 * (cols["avg_session_minutes"] - 20)
        + 0.31 * cols["paperless_billing"]
        - 0.0125 * (cols["age"] - 45)
    )


def _drift_numeric(
    rng: np.random.Generator, column: str, x: np.ndarray, strength: float
) -> np.ndarray:
    """Shift by `strength` standard deviations and widen the spread, inside the spec's bounds."""
    values = x.astype(np.float64)
    mean, std = float(np.mean(values)), float(np.std(values)) or 1.0
    noise = rng.normal(0, 0.05 * std * abs(strength), len(values))
    drifted = mean + (values - mean) * (1 + 0.25 * abs(strength)) + strength * std + noise
    low, high = NUMERIC_BOUNDS.get(column, (-np.inf, np.inf))
    drifted = np.clip(drifted, low, high)
    if column in INT_COLUMNS:
        return np.round(drifted).astype(np.int64)
    return np.round(drifted, 4)


def _drift_categorical(
    rng: np.random.Generator, column: str, x: np.ndarray, strength: float
) -> np.ndarray:
    """Move rows to the rarest level; from strength 1 on, also to a level the spec never saw."""
    levels, _ = CATEGORIES[column]
    out = x.copy()
    draw = rng.random(len(x))
    moved = draw < min(0.5 * strength, 0.8)
    out[moved] = levels[-1]
    if strength >= 1:
        out[draw > 1 - min(0.05 * strength, 0.3)] = f"{column}-new"
    return out


def _drift_bool(rng: np.random.Generator, x: np.ndarray, strength: float) -> np.ndarray:
    return x | (rng.random(len(x)) < min(0.5 * strength, 0.8))


def drift_columns(extra_numeric: int = 0) -> list[str]:
    """Columns that `drift` may name: every feature of the table."""
    numeric = [*NUMERIC_BOUNDS, *(f"extra_{i}" for i in range(extra_numeric))]
    return [*numeric, *CATEGORIES, "paperless_billing"]


def _check_drift(drift: Mapping[str, float], extra_numeric: int) -> None:
    unknown = sorted(set(drift) - set(drift_columns(extra_numeric)))
    if unknown:
        raise ValueError(
            f"cannot drift {unknown}: drift names feature columns, one of "
            f"{drift_columns(extra_numeric)}"
        )


def _apply_drift(cols: dict, drift: Mapping[str, float], seed: int, block: int) -> None:
    names = drift_columns(len([c for c in cols if c.startswith("extra_")]))
    for column, strength in drift.items():
        rng = _rng(seed, block, _STREAM_DRIFT, names.index(column))
        if column in CATEGORIES:
            cols[column] = _drift_categorical(rng, column, cols[column], strength)
        elif column == "paperless_billing":
            cols[column] = _drift_bool(rng, cols[column], strength)
        else:
            cols[column] = _drift_numeric(rng, column, cols[column], strength)


def _null_masks(seed: int, block: int, n: int) -> dict[str, np.ndarray]:
    rng = _rng(seed, block, _STREAM_NULLS)
    return {column: rng.random(n) < share for column, share in NULL_SHARES.items()}


def _ids(seed: int, first_row: int, n: int) -> np.ndarray:
    rows = np.arange(first_row, first_row + n).astype(str)
    return np.char.add(f"C{seed}-", np.char.zfill(rows, 9)).astype(object)


def _signup_dates(rng: np.random.Generator, start: str, n: int) -> np.ndarray:
    seconds = rng.integers(0, 730 * 86_400, n)
    return (np.datetime64(start, "s") + seconds.astype("timedelta64[s]")).astype("datetime64[ns]")


def _block_frame(block: int, options: ChurnOptions) -> pd.DataFrame:
    """One full block of rows; the unit of determinism."""
    n, first_row = BLOCK_ROWS, block * BLOCK_ROWS
    rng = _rng(options.seed, block, _STREAM_BASE)
    dates = _signup_dates(rng, options.start, n)
    cols = _base_columns(rng, n)
    target = (rng.random(n) < 1 / (1 + np.exp(-churn_log_odds(cols)))).astype(np.int64)
    extra_rng = _rng(options.seed, block, _STREAM_EXTRA)
    for i in range(options.extra_numeric):
        cols[f"extra_{i}"] = np.round(extra_rng.normal(i, 1 + i % 3, n), 4)
    _apply_drift(cols, options.drift or {}, options.seed, block)
    frame = {"customer_id": _ids(options.seed, first_row, n), "signup_date": dates, **cols}
    frame[TARGET] = target
    return _to_frame(frame, _null_masks(options.seed, block, n), options.extra_numeric)


def _to_frame(cols: dict, nulls: Mapping[str, np.ndarray], extra_numeric: int) -> pd.DataFrame:
    order = [*COLUMN_ORDER[:-1], *(f"extra_{i}" for i in range(extra_numeric)), TARGET]
    df = pd.DataFrame({name: cols[name] for name in order})
    for column in ("customer_id", *CATEGORIES):
        df[column] = df[column].astype("str")
    for column, mask in nulls.items():
        df[column] = df[column].mask(mask)
    return df


def _rows(first: int, stop: int, options: ChurnOptions) -> pd.DataFrame:
    """Rows [first, stop) of the table the options describe."""
    blocks = range(first // BLOCK_ROWS, (stop - 1) // BLOCK_ROWS + 1)
    df = pd.concat([_block_frame(b, options) for b in blocks], ignore_index=True)
    offset = first - blocks[0] * BLOCK_ROWS
    return df.iloc[offset : offset + stop - first].reset_index(drop=True)


def _options(
    seed: int, start: str, drift: Mapping[str, float] | None, extra_numeric: int
) -> ChurnOptions:
    if extra_numeric < 0:
        raise ValueError(f"extra_numeric must be >= 0, got {extra_numeric}")
    _check_drift(drift or {}, extra_numeric)
    return ChurnOptions(seed, start, dict(drift or {}), extra_numeric)


def make_churn(
    n_rows: int,
    seed: int = 0,
    start: str = "2024-01-01",
    drift: Mapping[str, float] | None = None,
    extra_numeric: int = 0,
) -> pd.DataFrame:
    """A customer table matching configs/churn.yaml, with a learnable 0/1 target `churned`.

    Args:
        n_rows: Number of rows.
        seed: Picks the table; the same seed gives the same rows.
        start: First possible signup date; signups spread over the two years after it.
        drift: Column -> strength. Numeric columns shift by `strength` standard deviations and
            widen; categorical ones move rows to their rarest level and, from strength 1 on, to
            a new level the spec does not allow. The target is drawn before drift, so only the
            named columns change.
        extra_numeric: Adds float columns extra_0 ... extra_{N-1} (noise; for benchmarks).

    Raises:
        ValueError: a negative row count or a drift column that is not a feature.
    """
    if n_rows < 0:
        raise ValueError(f"n_rows must be >= 0, got {n_rows}")
    options = _options(seed, start, drift, extra_numeric)
    if n_rows == 0:
        return _rows(0, 1, options).iloc[:0]
    return _rows(0, n_rows, options)


def _partition_bounds(n_rows: int, partitions: int) -> list[tuple[int, int]]:
    size, rest = divmod(n_rows, partitions)
    bounds, first = [], 0
    for i in range(partitions):
        stop = first + size + (i < rest)
        bounds.append((first, stop))
        first = stop
    return bounds


def _chunks(first: int, stop: int, chunk_rows: int) -> Iterator[tuple[int, int]]:
    for start in range(first, stop, chunk_rows):
        yield start, min(start + chunk_rows, stop)


class _Progress:
    """Logs how far a big write has come, about every 10%."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.next_report = total, 0, 0.1

    def add(self, rows: int) -> None:
        self.done += rows
        if self.total and self.done / self.total >= self.next_report:
            logger.info(
                "wrote %d of %d rows (%.0f%%)", self.done, self.total, 100 * self.done / self.total
            )
            self.next_report = self.done / self.total + 0.1


@dataclass
class _WriteJob:
    options: ChurnOptions
    fmt: str
    chunk_rows: int
    progress: _Progress


def _write_partition(
    fs: AbstractFileSystem, path: str, bounds: tuple[int, int], job: _WriteJob
) -> None:
    """One partition file, chunk by chunk, under a temporary name readers skip until done."""
    tmp = f"{path}.tmp"
    with fs.open(tmp, "wb") as handle:
        writer = None
        for first, stop in _chunks(*bounds, job.chunk_rows):
            chunk = _rows(first, stop, job.options)
            if job.fmt == "csv":
                chunk.to_csv(handle, header=first == bounds[0], index=False, encoding="utf-8")
            else:
                table = pa.Table.from_pandas(chunk, preserve_index=False)
                writer = writer or pq.ParquetWriter(handle, table.schema)
                writer.write_table(table.cast(writer.schema))
            job.progress.add(stop - first)
        if writer is not None:
            writer.close()
    fs.mv(tmp, path)


_PART_NAME = re.compile(r"part-\d{5}\.(parquet|csv)$")


def _remove_stale_parts(fs: AbstractFileSystem, folder: str, written: set[str]) -> None:
    """Drop part files of an earlier, bigger write, so the folder holds exactly this table."""
    for path in fs.ls(folder, detail=False):
        if _PART_NAME.search(path) and path.rstrip("/") not in written:
            logger.info("removing stale partition %s", path)
            fs.rm(path)


def write_churn(
    out_url: str,
    n_rows: int,
    partitions: int = 1,
    seed: int = 0,
    drift: Mapping[str, float] | None = None,
    extra_numeric: int = 0,
    fmt: str = "parquet",
    chunk_rows: int = 500_000,
    start: str = "2024-01-01",
) -> list[str]:
    """Write the churn table as part-00000.<fmt> ... files into a folder, any fsspec URL.

    Memory stays bounded by `chunk_rows` (each chunk is a parquet row group or a run of csv
    lines). Each file appears under its final name only when complete, so a watcher never reads
    half a file. The data depend only on the table's arguments, not on `partitions` or
    `chunk_rows`.

    Args:
        out_url: The folder (created if needed); stale part files in it are removed.
        n_rows: Rows in total, up to 10 million.
        partitions: Number of files.
        seed: See `make_churn`.
        drift: See `make_churn`.
        extra_numeric: See `make_churn`.
        fmt: 'parquet' or 'csv'.
        chunk_rows: Rows generated and written at a time.
        start: See `make_churn`.

    Returns:
        The URLs of the files written.
    """
    _check_write_args(n_rows, partitions, fmt, chunk_rows)
    job = _WriteJob(_options(seed, start, drift, extra_numeric), fmt, chunk_rows, _Progress(n_rows))
    fs, folder = url_to_fs(out_url)
    folder = folder.rstrip("/")
    fs.makedirs(folder, exist_ok=True)
    written = []
    for i, bounds in enumerate(_partition_bounds(n_rows, partitions)):
        path = f"{folder}/part-{i:05d}.{fmt}"
        _write_partition(fs, path, bounds, job)
        written.append(path)
    _remove_stale_parts(fs, folder, set(written))
    logger.info("wrote %d rows in %d %s file(s) to %s", n_rows, partitions, fmt, out_url)
    return [path_to_url(fs, p) for p in written]


def _check_write_args(n_rows: int, partitions: int, fmt: str, chunk_rows: int) -> None:
    if not 1 <= n_rows <= MAX_ROWS:
        raise ValueError(f"n_rows must be between 1 and {MAX_ROWS:,}, got {n_rows}")
    if not 1 <= partitions <= n_rows:
        raise ValueError(f"partitions must be between 1 and n_rows ({n_rows}), got {partitions}")
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', got '{fmt}'")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")


def write_diabetes(out_url: str) -> str:
    """Write scikit-learn's bundled diabetes data (442 rows, features and `target`) as parquet.

    The data ship with scikit-learn, so this needs no network.
    """
    from sklearn.datasets import load_diabetes  # noqa: PLC0415 - only this dataset needs it

    df = load_diabetes(as_frame=True).frame
    fs, path = url_to_fs(out_url)
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent:
        fs.makedirs(parent, exist_ok=True)
    with fs.open(f"{path}.tmp", "wb") as handle:
        df.to_parquet(handle, index=False)
    fs.mv(f"{path}.tmp", path)
    logger.info("wrote %d diabetes rows to %s", len(df), out_url)
    return out_url


def _strength(text: str) -> tuple[str, float]:
    column, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return column.strip(), float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected COLUMN=STRENGTH, got '{text}'") from exc


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlops data", description=__doc__)
    sub = parser.add_subparsers(dest="dataset", required=True)
    churn = sub.add_parser("churn", help="the generated customer-churn table")
    churn.add_argument("--rows", type=int, default=5000, help="rows in total (up to 10M)")
    churn.add_argument("--out", default="data/generated/churn", help="folder URL to write")
    churn.add_argument("--partitions", type=int, default=1, help="number of files")
    churn.add_argument("--seed", type=int, default=0)
    churn.add_argument("--start", default="2024-01-01", help="first signup date")
    churn.add_argument("--drift", type=_strength, nargs="*", default=[], metavar="COL=STRENGTH")
    churn.add_argument("--extra-numeric", type=int, default=0, help="extra float columns")
    churn.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    churn.add_argument("--chunk-rows", type=int, default=500_000)
    diabetes = sub.add_parser("diabetes", help="scikit-learn's diabetes data")
    diabetes.add_argument("--out", default="data/generated/diabetes.parquet", help="file URL")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDK logs each request at INFO
    if args.dataset == "diabetes":
        write_diabetes(args.out)
        return 0
    try:
        _write_churn_from(args)
    except ValueError as exc:
        parser.error(str(exc))
    return 0


def _write_churn_from(args: argparse.Namespace) -> None:
    write_churn(
        args.out,
        args.rows,
        partitions=args.partitions,
        seed=args.seed,
        drift=dict(args.drift),
        extra_numeric=args.extra_numeric,
        fmt=args.format,
        chunk_rows=args.chunk_rows,
        start=args.start,
    )
