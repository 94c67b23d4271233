"""The two sides of a drift check, as Arrow tables holding only the columns to judge.

Reference: the sample of training rows stored with the champion's bundle. Current: the
endpoint's inference log for a time window (``serving.collect`` writes it), or any data URL.
Mirror traffic copies in the log are left out: they repeat the inputs of live requests the log
already holds, and would count those rows twice.
Parquet files are read column-projected, so a wide table costs only the columns judged. Column
names match the spec's ignoring case and separators, as in ``mlops.data``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlops.core.errors import DataLoadError, DataValidationError
from mlops.data.loading import read_table
from mlops.data.storage import FileInfo, format_of, list_data_files, url_to_fs
from serving.bundle import REFERENCE_FILE
from serving.columns import match_columns

logger = logging.getLogger(__name__)

# Context columns the collector writes next to the features (see serving.collect).
MODEL_NAME, SCORED_AT, MIRRORED = "model_name", "scored_at", "mirrored"


@dataclass(frozen=True)
class CurrentData:
    table: pa.Table
    source: str
    files: int

    @property
    def rows(self) -> int:
        return self.table.num_rows


def _matches(available: list[str], names: list[str]) -> dict[str, str]:
    """Data column -> spec name for each spec name found; an exact name wins over a spelling
    that only matches ignoring case and separators."""
    return {column: name for name, column in match_columns(available, names).found.items()}


def project_columns(table: pa.Table, names: list[str]) -> pa.Table:
    """The spec columns `table` has, renamed to the spec's names; dictionaries decoded."""
    found = _matches(table.column_names, names)
    table = table.select(list(found)).rename_columns(list(found.values()))
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(field.type.value_type))
    return table


def require_columns(table: pa.Table, names: list[str], source: str) -> pa.Table:
    """`table` if it holds every one of `names`, in that order.

    Raises:
        DataValidationError: naming the source, every missing column and the columns it has.
    """
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise DataValidationError(
            f"{source} lacks columns {missing} that the drift check needs "
            f"(it has {sorted(table.column_names)})"
        )
    return table.select(names)


def _read_parquet(url: str, names: list[str], context: tuple[str, ...] = ()) -> pa.Table:
    """The file's columns among `names`, plus the collector's `context` columns it has."""
    fs, path = url_to_fs(url)
    try:
        available = pq.read_schema(path, filesystem=fs).names
        extra = [_context_column(available, c) for c in context]
        wanted = [*_matches(available, names), *(c for c in extra if c is not None)]
        return pq.read_table(path, columns=wanted, filesystem=fs)
    except (pa.ArrowException, OSError) as exc:
        raise DataLoadError(f"cannot read parquet file {url}: {exc}") from exc


def _read_file(info: FileInfo, names: list[str], fmt: str) -> pa.Table:
    fmt = format_of(info.url) if fmt == "auto" else fmt
    if fmt == "parquet":
        return project_columns(_read_parquet(info.url, names), names)
    frame = read_table([info], "csv")
    return project_columns(pa.Table.from_pandas(frame, preserve_index=False), names)


def concat_tables(tables: list[pa.Table], where: str) -> pa.Table:
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataLoadError(f"files under {where} have incompatible columns: {exc}") from exc


def read_reference(version_url: str, names: list[str]) -> pa.Table:
    """The reference sample stored in a registered bundle, with the columns it has of `names`."""
    url = f"{version_url.rstrip('/')}/{REFERENCE_FILE}"
    return project_columns(_read_parquet(url, names), names)


def read_current(url: str, names: list[str], fmt: str = "auto") -> CurrentData:
    """Every row at a data URL (a file, a folder of partitions or a glob)."""
    files = list_data_files(url, fmt)
    table = concat_tables([_read_file(f, names, fmt) for f in files], url)
    logger.info("current data %s: %d rows from %d file(s)", url, table.num_rows, len(files))
    return CurrentData(table, f"data at {url}", len(files))


def _context_column(available: list[str], name: str) -> str | None:
    """The collector prefixes a context column with '_' while a feature uses its name, so the
    context column is the most-prefixed spelling present."""
    spellings = [c for c in available if c.lstrip("_") == name]
    return max(spellings, key=len) if spellings else None


def _window_rows(table: pa.Table, model_name: str, start: datetime) -> pa.Table:
    names = table.column_names
    model, scored = _context_column(names, MODEL_NAME), _context_column(names, SCORED_AT)
    if model is None or scored is None:
        raise DataLoadError(f"inference file lacks its '{MODEL_NAME}' or '{SCORED_AT}' column")
    since = pa.scalar(start, type=table.schema.field(scored).type)
    keep = pc.and_(pc.equal(table[model], model_name), pc.greater_equal(table[scored], since))
    mirrored = _context_column(names, MIRRORED)  # files written before copies have none
    if mirrored is not None:
        keep = pc.and_(keep, pc.invert(table[mirrored]))
    return table.filter(keep).drop_columns([c for c in (model, scored, mirrored) if c])


def window_dates(start: datetime, end: datetime) -> list[str]:
    """The collector's date partitions (UTC days) that rows scored in [start, end] fall in."""
    day, last, days = start.date(), end.date(), []
    while day <= last:
        days.append(day.isoformat())
        day += timedelta(days=1)
    return days


def read_inference_window(
    root_url: str, model_name: str, names: list[str], start: datetime, end: datetime
) -> CurrentData:
    """Rows the endpoint scored for `model_name` since `start` (UTC), from its inference log.

    Args:
        root_url: The endpoint's folder of the inference log (``<collect url>/<endpoint>``).
        model_name: Only requests served by this registered model count.
        names: The feature columns wanted.
        start: Oldest scoring time included (timezone-aware).
        end: Now; date partitions after it are not listed.
    """
    fs, root = url_to_fs(root_url)
    tables, files = [], 0
    for day in window_dates(start, end):
        folder = f"{root.rstrip('/')}/date={day}"
        if not fs.exists(folder):
            continue
        try:
            found = list_data_files(f"{root_url.rstrip('/')}/date={day}", "parquet")
        except DataLoadError:
            continue  # an empty partition: nothing was scored that day
        for info in found:
            raw = _read_parquet(info.url, names, context=(MODEL_NAME, SCORED_AT, MIRRORED))
            tables.append(project_columns(_window_rows(raw, model_name, start), names))
        files += len(found)
    return window_data(tables, root_url, f"inference log {root_url} ({model_name}",
                       (start, end), files)


def window_data(tables: list[pa.Table], root_url: str, what: str,
                window: tuple[datetime, datetime], files: int) -> CurrentData:
    """The rows found in a time window, one table, named by where and when they come from."""
    table = concat_tables(tables, root_url) if tables else pa.table({})
    start, end = window
    source = f"{what}, {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC)"
    logger.info("%s: %d rows from %d file(s)", source, table.num_rows, files)
    return CurrentData(table, source, files)



def endpoint_log_url(endpoint: str | None = None) -> str:
    """Where the local endpoint server writes the inference log of `endpoint` (a named one,
    ``serving.endpoints``), or of its default endpoint, from the settings it reads itself
    (``MLOPS_STATE_DIR``, ``MLOPS_ENDPOINT_NAME``, ``MLOPS_ENDPOINT_COLLECT_URL``)."""
    from serving.config import EndpointConfig  # noqa: PLC0415 - reads the environment

    config = EndpointConfig()
    return f"{config.inference_url.rstrip('/')}/{endpoint or config.name}"
