"""Read data files into one table and line its columns up with the spec.

Reading and naming are kept apart from validation: `read_table` only fails when the bytes cannot
be turned into a table, `conform_columns` only when the columns cannot be matched to the spec,
and `mlops.data.validation` judges the values. `read_arrow` and `conform_table` do the same for an
Arrow table, which the load stage writes to its checkpoint without ever making a DataFrame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlops.core.errors import DataLoadError, DataValidationError, shorten
from mlops.core.spec import PipelineSpec
from mlops.data.storage import FileInfo, format_of, known_extensions, url_to_fs
from serving.columns import match_columns, normalize_name

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
            raise DataLoadError(
                f"cannot tell the format of {f.url}: expected {known_extensions()}, "
                "or set data.format"
            )
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


# The first bytes of the compressed formats pandas reads; sniffed, so that neither the
# extension nor `data.format` has to say a file is compressed.
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"PK\x03\x04", "zip"),
          (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"))


def compression_of(head: bytes) -> str | None:
    return next((name for magic, name in _MAGIC if head.startswith(magic)), None)


def _read_csv(f: FileInfo, sep: str = ",", header: bool = False) -> pd.DataFrame:
    """One CSV file (plain or compressed); with `header`, only its header row, unparsed."""
    fs, path = url_to_fs(f.url)
    options: dict = {"header": None, "nrows": 1, "dtype": str} if header else {}
    compression = None
    try:
        with fs.open(path, "rb") as handle:
            compression = compression_of(handle.read(6))
            handle.seek(0)
            return pd.read_csv(handle, sep=sep, compression=compression, **options)
    except pd.errors.EmptyDataError as exc:
        raise DataLoadError(f"csv file {f.url} is empty: {exc}") from exc
    except ImportError as exc:
        raise DataLoadError(
            f"cannot read csv file {f.url}: reading {compression} needs the module {exc.name}"
        ) from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError, EOFError) as exc:
        raise DataLoadError(f"cannot read csv file {f.url}: {shorten(str(exc), 300)}") from exc


def _checked_header(f: FileInfo, df: pd.DataFrame, sep: str) -> None:
    """Refuse a header pandas would silently rename or could not split.

    pandas renames a repeated header `age` to `age.1`, a column the file does not hold; and
    a file with another separator arrives as one column named by the whole header line.
    """
    names = [str(c) for c in df.columns]
    if len(names) == 1:
        found = [s for s in (",", ";", "\t", "|") if s != sep and s in names[0]]
        if found:
            raise DataLoadError(
                f"csv file {f.url} reads as one column {shorten(names[0])!r} with separator "
                f"{sep!r}; its header looks separated by {found[0]!r}: set data.separator: "
                f"{found[0]!r}"
            )
    if not any(n.rpartition(".")[0] in names for n in names):
        return  # no `x.1` beside an `x`: nothing was renamed
    raw = [str(v) for v in _read_csv(f, sep, header=True).iloc[0].tolist()]
    repeated = sorted({n for n in raw if raw.count(n) > 1})
    if repeated:
        raise DataLoadError(
            f"csv file {f.url} repeats column header(s) {repeated}: each column needs its own name"
        )


def _csv_to_arrow(f: FileInfo, df: pd.DataFrame) -> pa.Table:
    """The CSV's frame as Arrow; a value no Arrow type holds is named with its file and column.

    pandas keeps an integer beyond the int64 range as a Python int in an object column,
    which Arrow refuses.
    """
    try:
        return pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowException, OverflowError) as exc:
        for column in df.columns:
            try:
                pa.array(df[column], from_pandas=True)
            except (pa.ArrowException, OverflowError):
                bad = next((v for v in df[column] if isinstance(v, int)
                            and not -(2**63) <= v < 2**64), None)
                seen = f"e.g. {shorten(str(bad))}, " if bad is not None else ""
                raise DataValidationError(
                    f"csv file {f.url}, column '{column}': values no column type can hold "
                    f"({seen}integers must lie within the int64 range "
                    f"[{-(2**63)}, {2**63 - 1}]): {shorten(str(exc), 300)}"
                ) from exc
        raise DataLoadError(f"cannot convert csv file {f.url}: {shorten(str(exc), 300)}") from exc


def _checked_csv(f: FileInfo, sep: str) -> pd.DataFrame:
    df = _read_csv(f, sep)
    _checked_header(f, df, sep)
    return df


def _read_csv_arrow(f: FileInfo, sep: str) -> pa.Table:
    return _csv_to_arrow(f, _checked_csv(f, sep))


def _nonempty(parts: Iterable[tuple[FileInfo, pa.Table | pd.DataFrame]]) -> list:
    """The parts that hold rows; a file with a header and no rows is an error, not data."""
    kept = []
    for f, part in parts:
        if part.shape[0] == 0:
            raise DataLoadError(f"data file {f.url} has 0 rows")
        kept.append((f, part))
    return kept


def _names(part: pa.Table | pd.DataFrame) -> set[str]:
    return set(part.column_names) if isinstance(part, pa.Table) else {str(c) for c in part}


def _same_columns(parts: list[tuple[FileInfo, Any]]) -> list:
    """The partitions' tables, all with the first one's columns; else the file that differs.

    Concatenating partitions with different columns would fill the missing ones with nulls.
    """
    first, table = parts[0]
    for f, part in parts[1:]:
        if _names(part) != _names(table):
            missing = sorted(_names(table) - _names(part))
            extra = sorted(_names(part) - _names(table))
            raise DataLoadError(
                f"partition {f.url} has other columns than {first.url}: missing {missing}, "
                f"extra {extra}; every partition must hold the same columns"
            )
    return [t for _, t in parts]


def _concat(tables: list[pa.Table], files: list[FileInfo]) -> pa.Table:
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataLoadError(
            f"partitions under {files[0].url} have incompatible column types: "
            f"{shorten(str(exc), 300)}"
        ) from exc


def _read_part(f: FileInfo, fmt: str, sep: str) -> pa.Table:
    return _read_parquet(f) if fmt == "parquet" else _read_csv_arrow(f, sep)


def _checked_format(files: list[FileInfo], fmt: str) -> str:
    if not files:
        raise DataLoadError("no data files to read")
    for f in files:
        if f.size == 0:
            raise DataLoadError(f"data file {f.url} is empty (0 bytes)")
    return _format(files, fmt)


def read_arrow(files: list[FileInfo], fmt: str = "auto", sep: str = ",") -> pa.Table:
    """Read data files into one Arrow table: `read_table` without the pandas copy.

    Parquet stays in Arrow from the file to the table; CSV is parsed by pandas, as in
    `read_table`, and handed over. Same arguments and errors as `read_table`.
    """
    fmt = _checked_format(files, fmt)
    parts = _nonempty((f, _read_part(f, fmt, sep)) for f in files)
    table = _concat(_same_columns(parts), files)
    logger.info(
        "read %d rows x %d columns from %d %s file(s)",
        table.num_rows, table.num_columns, len(files), fmt,
    )
    return table


def read_table(files: list[FileInfo], fmt: str = "auto", sep: str = ",") -> pd.DataFrame:
    """Read data files (usually from `mlops.data.storage.list_data_files`) into one DataFrame.

    Parquet goes through pyarrow with the file's fsspec filesystem, so abfs:// reads stream from
    Blob Storage; CSV (plain, or compressed as gzip, bz2, zip, xz or zstd, told by its first
    bytes) goes through pandas. Partitions are concatenated in the order given.

    Args:
        files: The files to read; all must share one format and one set of columns.
        fmt: 'parquet', 'csv' or 'auto' (by extension).
        sep: The CSV field separator.

    Raises:
        DataLoadError: no files, a file that is empty (0 bytes or 0 rows), corrupt or
            unreadable, files of mixed formats, a partition whose columns differ from the
            first one's, a CSV header that repeats a name or does not split with `sep`;
            the message names the file and the cause.
        DataValidationError: a CSV value no column type can hold (an integer beyond int64).
    """
    fmt = _checked_format(files, fmt)
    if fmt == "parquet":
        df = _concat(_same_columns(_nonempty((f, _read_parquet(f)) for f in files)),
                     files).to_pandas()
    else:
        frames = _same_columns(_nonempty((f, _checked_csv(f, sep)) for f in files))
        df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    logger.info(
        "read %d rows x %d columns from %d %s file(s)", len(df), df.shape[1], len(files), fmt
    )
    return df


def load_table(files: list[FileInfo], spec: PipelineSpec) -> pa.Table:
    """Read every file and conform it to the spec on its own, then concatenate.

    Each partition must hold the spec's columns: a partition lacking one is refused by name,
    where concatenating first would fill the column with nulls for its rows.

    Raises:
        DataLoadError: as `read_table`.
        DataValidationError: as `conform_table`, naming the file; or as `read_table`.
    """
    fmt = _checked_format(files, spec.data.format)
    parts = _nonempty((f, _read_part(f, fmt, spec.data.separator)) for f in files)
    tables = [conform_table(part, spec, source=f.url) for f, part in parts]
    table = _concat(tables, files)
    logger.info(
        "loaded %d rows x %d columns from %d %s file(s)",
        table.num_rows, table.num_columns, len(files), fmt,
    )
    return table


def _match_columns(columns: Iterable[str], spec: PipelineSpec) -> tuple[dict[str, str], list[str]]:
    """Map data column -> spec column (ignoring case and separators, strictly: two data columns
    for one spec column are a problem), and list the problems."""
    match = match_columns(columns, [c.name for c in spec.columns], strict=True)
    mapping = {column: target for target, column in match.found.items()}
    problems = [f"columns '{chosen}' and '{column}' both match spec column '{target}'"
                for chosen, column, target in match.clashes]
    return mapping, problems


def _column_sources(
    columns: list[str], spec: PipelineSpec, source: str | None = None
) -> list[str]:
    """The data column behind each spec column, in spec order.

    Raises:
        DataValidationError: see `conform_columns`.
    """
    mapping, problems = _match_columns(columns, spec)
    matched = set(mapping.values())
    missing = [c.name for c in spec.columns if c.name not in matched]
    if missing:
        holds = shorten(str([str(c) for c in columns]), 400)
        problems.append(f"missing columns: {missing} (the data holds {holds})")
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
        where = f" in {source}" if source else ""
        raise DataValidationError(
            f"columns{where} do not match spec '{spec.name}': " + "; ".join(problems)
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


def conform_table(table: pa.Table, spec: PipelineSpec, source: str | None = None) -> pa.Table:
    """`conform_columns` for an Arrow table, with each column cast to its spec type where
    that is lossless (see `ARROW_TYPES`); the same errors.

    Casting here means the table is written, read and validated in the types it will keep.
    A column that does not cast cleanly keeps its type, and validation reports its bad values.
    The schema's pandas metadata is dropped: it describes the file's columns, not these.
    """
    sources = _column_sources(table.column_names, spec, source)
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
