"""Read data files into one table and line its columns up with the spec.

Reading and naming are kept apart from validation: `read_table` only fails when the bytes cannot
be turned into a table, `conform_columns` only when the columns cannot be matched to the spec,
and `mlops.validation` judges the values. `read_arrow` and `conform_table` do the same for an
Arrow table, which the load stage writes to its checkpoint without ever making a DataFrame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlops.errors import DataLoadError, DataValidationError
from mlops.spec import PipelineSpec, normalize_name
from mlops.storage import FileInfo, format_of, url_to_fs

logger = logging.getLogger(__name__)


def _format(files: list[FileInfo], fmt: str) -> str:
    """The one format all files share; partitions of mixed formats are refused."""
    if fmt != "auto":
        if fmt not in ("parquet", "csv"):
            raise DataLoadError(f"unknown data format '{fmt}'; use auto, parquet or csv")
        return fmt
    formats: dict[str, str] = {}
    for f in files:
        found = format_of(f.url)
        if found is None:
            raise DataLoadError(f"cannot tell the format of {f.url}: expected .parquet or .csv")
        formats.setdefault(found, f.url)
    if len(formats) > 1:
        examples = ", ".join(f"{k}: {v}" for k, v in sorted(formats.items()))
        raise DataLoadError(f"mixed data formats in one dataset ({examples}); keep one format")
    return next(iter(formats))


def _read_parquet(f: FileInfo) -> pa.Table:
    fs, path = url_to_fs(f.url)
    try:
        return pq.read_table(path, filesystem=fs)
    except (pa.ArrowException, OSError) as exc:
        raise DataLoadError(f"cannot read parquet file {f.url}: {exc}") from exc


def _read_csv(f: FileInfo) -> pd.DataFrame:
    fs, path = url_to_fs(f.url)
    try:
        with fs.open(path, "rb") as handle:
            return pd.read_csv(handle)
    except pd.errors.EmptyDataError as exc:
        raise DataLoadError(f"csv file {f.url} is empty: {exc}") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise DataLoadError(f"cannot read csv file {f.url}: {exc}") from exc


def _nonempty(parts: Iterable[tuple[FileInfo, pa.Table | pd.DataFrame]]) -> list:
    """The parts that hold rows; a file with a header and no rows is an error, not data."""
    kept = []
    for f, part in parts:
        if part.shape[0] == 0:
            raise DataLoadError(f"data file {f.url} has 0 rows")
        kept.append(part)
    return kept


def _concat_parquet(files: list[FileInfo]) -> pa.Table:
    tables = _nonempty((f, _read_parquet(f)) for f in files)
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataLoadError(
            f"parquet partitions under {files[0].url} have incompatible columns: {exc}"
        ) from exc


def _concat_csv(files: list[FileInfo]) -> pd.DataFrame:
    frames = _nonempty((f, _read_csv(f)) for f in files)
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _checked_format(files: list[FileInfo], fmt: str) -> str:
    if not files:
        raise DataLoadError("no data files to read")
    for f in files:
        if f.size == 0:
            raise DataLoadError(f"data file {f.url} is empty (0 bytes)")
    return _format(files, fmt)


def read_arrow(files: list[FileInfo], fmt: str = "auto") -> pa.Table:
    """Read data files into one Arrow table: `read_table` without the pandas copy.

    Parquet stays in Arrow from the file to the table; CSV is parsed by pandas, as in
    `read_table`, and handed over. Same arguments and errors as `read_table`.
    """
    fmt = _checked_format(files, fmt)
    if fmt == "parquet":
        table = _concat_parquet(files)
    else:
        table = pa.Table.from_pandas(_concat_csv(files), preserve_index=False)
    logger.info(
        "read %d rows x %d columns from %d %s file(s)",
        table.num_rows, table.num_columns, len(files), fmt,
    )
    return table


def read_table(files: list[FileInfo], fmt: str = "auto") -> pd.DataFrame:
    """Read data files (usually from `mlops.storage.list_data_files`) into one DataFrame.

    Parquet goes through pyarrow with the file's fsspec filesystem, so abfs:// reads stream from
    Blob Storage; CSV goes through pandas. Partitions are concatenated in the order given.

    Args:
        files: The files to read; all must share one format.
        fmt: 'parquet', 'csv' or 'auto' (by extension).

    Raises:
        DataLoadError: no files, a file that is empty (0 bytes or 0 rows), corrupt or
            unreadable, or files of mixed formats; the message names the file and the cause.
    """
    fmt = _checked_format(files, fmt)
    df = _concat_parquet(files).to_pandas() if fmt == "parquet" else _concat_csv(files)
    logger.info(
        "read %d rows x %d columns from %d %s file(s)", len(df), df.shape[1], len(files), fmt
    )
    return df


def _match_columns(columns: Iterable[str], spec: PipelineSpec) -> tuple[dict[str, str], list[str]]:
    """Map data column -> spec column (ignoring case and separators), and list the problems."""
    by_key = {normalize_name(c.name): c.name for c in spec.columns}
    mapping: dict[str, str] = {}
    problems: list[str] = []
    for column in columns:
        target = by_key.get(normalize_name(column))
        if target is None:
            continue
        clash = next((src for src, dst in mapping.items() if dst == target), None)
        if clash is not None:
            problems.append(f"columns '{clash}' and '{column}' both match spec column '{target}'")
            continue
        mapping[column] = target
    return mapping, problems


def _column_sources(columns: list[str], spec: PipelineSpec) -> list[str]:
    """The data column behind each spec column, in spec order.

    Raises:
        DataValidationError: see `conform_columns`.
    """
    mapping, problems = _match_columns(columns, spec)
    matched = set(mapping.values())
    missing = [c.name for c in spec.columns if c.name not in matched]
    if missing:
        problems.append(f"missing columns: {missing}")
    extra = [
        str(c)
        for c in columns
        if c not in mapping and normalize_name(c) not in {normalize_name(m) for m in matched}
    ]
    if extra and spec.data.extra_columns == "error":
        problems.append(
            f"extra columns not in the spec: {extra} (set data.extra_columns: drop to ignore them)"
        )
    if problems:
        raise DataValidationError(
            f"columns do not match spec '{spec.name}': " + "; ".join(problems)
        )
    if extra:
        logger.info("dropping %d column(s) the spec does not name: %s", len(extra), extra)
    source = {target: column for column, target in mapping.items()}
    return [source[c.name] for c in spec.columns]


def conform_columns(df: pd.DataFrame, spec: PipelineSpec) -> pd.DataFrame:
    """Rename the data's columns to the spec's names and return them in spec order.

    'Tenure Months', 'TENURE_MONTHS' and 'tenuremonths' all match `tenure_months`, because data
    exported by different tools spells headers differently while meaning the same column.

    Raises:
        DataValidationError: every problem at once: spec columns missing from the data, two data
            columns matching one spec column, and extra columns when `data.extra_columns` is
            'error'.
    """
    sources = _column_sources(list(df.columns), spec)
    names = [c.name for c in spec.columns]
    return df[sources].rename(columns=dict(zip(sources, names, strict=True)))


def conform_table(table: pa.Table, spec: PipelineSpec) -> pa.Table:
    """`conform_columns` for an Arrow table, with each column cast to its spec type where
    that is lossless (see `ARROW_TYPES`); the same errors.

    Casting here means the table is written, read and validated in the types it will keep.
    A column that does not cast cleanly keeps its type, and validation reports its bad values.
    The schema's pandas metadata is dropped: it describes the file's columns, not these.
    """
    sources = _column_sources(table.column_names, spec)
    columns = [_cast(table.column(s), c.dtype) for s, c in zip(sources, spec.columns, strict=True)]
    return pa.table(columns, names=[c.name for c in spec.columns])


def _is_text(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t)


# The Arrow type each spec dtype is read into, and the types it may be cast from losslessly.
ARROW_TYPES: dict[str, tuple[pa.DataType, Callable[[pa.DataType], bool]]] = {
    "int": (pa.int64(), pa.types.is_integer),
    "float": (pa.float64(), lambda t: pa.types.is_floating(t) or pa.types.is_integer(t)),
    "category": (pa.large_string(), _is_text),
    "string": (pa.large_string(), _is_text),
    "bool": (pa.bool_(), pa.types.is_boolean),
    "datetime": (pa.timestamp("ns"), lambda t: pa.types.is_timestamp(t) and t.tz is None),
}


def _cast(column: pa.ChunkedArray, dtype: str) -> pa.ChunkedArray:
    target, castable = ARROW_TYPES[dtype]
    if column.type == target or not castable(column.type):
        return column
    try:
        return column.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return column  # out of range for the target: validation names the values
