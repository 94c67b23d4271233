"""Judge a table against the spec's column rules and say everything that is wrong at once.

The pandera schema is built from the spec, never written by hand, so a new dataset needs only a
new YAML file. `validate_frame` turns pandera's failure table into one readable message (through
`failures_from`, the only code that knows that table's layout) and adds the checks a schema
cannot express per column: enough rows, no empty column, a usable target, the share of nulls.

A big table need not be in memory at once: `BatchValidator` checks it a batch of rows at a time
and keeps only counts between batches (rows, nulls per column, failures with their first
examples), so its one message is the one `validate_frame` would give for the whole table.
`validate_checkpoint` runs it over a stage checkpoint and writes the coerced batches to the next.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandera.errors import SchemaErrors

from mlops.core.errors import DataValidationError, shorten
from mlops.core.spec import PipelineSpec
from mlops.data.failures import MAX_EXAMPLES, Failure, _drop_redundant, _examples, failures_from
from mlops.data.frames import FrameRef, FrameWriter, iter_frames, release_memory
from mlops.data.schema import (
    INTEGRAL_CHECK,
    NULL_FRACTION_CHECK,
    _checks,
    _has_null_share_rule,
    build_schema,
)

logger = logging.getLogger(__name__)

_BOOLEAN_WORDS = {"true": True, "false": False}


def _read_text_booleans(df: pd.DataFrame, spec: PipelineSpec) -> None:
    """'true' and 'false' (any case) as booleans in the bool columns, in place.

    A CSV column of True and False that holds one other word arrives as text throughout; read
    so, only the other word fails the conversion, not every row.
    """
    for c in spec.columns:
        if c.dtype != "bool" or c.name not in df.columns or df[c.name].dtype.kind in "bf":
            continue
        values = df[c.name]
        words = values.map(lambda v: _BOOLEAN_WORDS.get(v.strip().lower(), v)
                           if isinstance(v, str) else v, na_action="ignore")
        df[c.name] = words.astype(object)


class BatchValidator:
    """Checks a table against the spec a batch of rows at a time; one verdict for the whole.

    Per-row rules (types, ranges, allowed values, nulls where none are allowed) are checked by
    the schema on each batch; their failures are summed, keeping the first few examples. Rules
    about the whole table (enough rows, no column entirely null, the share of nulls, a complete
    target with two classes) are decided from counts at the end. Feeding the whole table as one
    batch is `validate_frame`.
    """

    def __init__(self, spec: PipelineSpec):
        self.spec = spec
        self.rows = 0
        self.dropped = 0  # rows without a target, when `data.missing_target` is 'drop'
        self._schema = build_schema(spec)
        self._present: set[str] = set()
        self._nulls: Counter[str] = Counter()
        self._classes: dict[Any, None] = {}  # the target's first two distinct values
        self._failures: dict[tuple[str, str], Failure] = {}

    def check(self, df: pd.DataFrame) -> pd.DataFrame | None:
        """Coerce one batch in place to the spec's dtypes and check it.

        Returns:
            The coerced batch, or None once this or an earlier batch broke a per-row rule.
        """
        df = self._without_missing_target(df)
        _read_text_booleans(df, self.spec)
        self._count(df)
        fractional = self._fractional(df)
        for failure in fractional:
            self._add(failure)
        try:
            validated = self._schema.validate(df, lazy=True, inplace=True)
        except SchemaErrors as exc:
            failures = failures_from(exc, df)
            if not failures and not fractional:  # a failed batch never passes: say why
                failures = [Failure("(table)", "schema", 0, detail=shorten(str(exc), 300))]
            for failure in failures:
                self._add(failure)
            return None
        return None if self._failures else validated

    def _fractional(self, df: pd.DataFrame) -> list[Failure]:
        """Fractions in integer columns, which the conversion to int64 would cut silently."""
        failures = []
        for c in self.spec.columns:
            if c.dtype != "int" or c.name not in df.columns or df[c.name].dtype.kind in "iub":
                continue
            values = pd.to_numeric(df[c.name], errors="coerce")
            finite = values[np.isfinite(values.astype("float64"))]
            bad = df[c.name][finite.index[finite != np.round(finite)]]
            if len(bad):
                failures.append(Failure(c.name, INTEGRAL_CHECK, len(bad), _examples(bad),
                                        detail="fractions in an integer column"))
        return failures

    def _without_missing_target(self, df: pd.DataFrame) -> pd.DataFrame:
        """The batch without the rows whose target is missing, when the spec drops them."""
        target = self.spec.target
        if self.spec.data.missing_target != "drop" or target not in df.columns:
            return df
        missing = df[target].isna()
        count = int(missing.sum())
        if not count:
            return df
        self.dropped += count
        return df.loc[~missing]

    def finish(self) -> None:
        """Decide the whole-table rules; raise one error listing every failure, if any.

        Raises:
            DataValidationError: column, rule with its limit, number of bad rows and a few
                offending values, for every rule the table broke.
        """
        table = self._table_failures()
        entirely_null = {f.column for f in table if f.rule == "not_entirely_null"}
        null_target = self.spec.target if any(
            f.rule == "target_not_null" for f in table) else None
        columns = sorted([*self._failures.values(), *self._null_share_failures()], key=self._rank)
        failures = table + _drop_redundant(columns, entirely_null, null_target)
        if self.dropped:
            logger.info("dropped %d row(s) whose target '%s' is missing (data.missing_target: "
                        "drop)", self.dropped, self.spec.target)
        if failures:
            lines = "\n".join(f"  - {f.describe()}" for f in failures)
            raise DataValidationError(
                f"data for '{self.spec.name}' broke {len(failures)} rule(s) "
                f"({self.rows} rows checked):\n{lines}"
            )

    def _count(self, df: pd.DataFrame) -> None:
        self.rows += len(df)
        for c in self.spec.columns:
            if c.name in df.columns:
                self._present.add(c.name)
                self._nulls[c.name] += int(df[c.name].isna().sum())
        if self.spec.task == "classification" and self.spec.target in df.columns:
            for value in df[self.spec.target].dropna().unique()[:2]:
                if len(self._classes) < 2:
                    self._classes.setdefault(value.item() if hasattr(value, "item") else value)

    def _add(self, failure: Failure) -> None:
        key = (failure.column, failure.rule)
        seen = self._failures.get(key)
        if seen is None:
            self._failures[key] = failure
            return
        examples = list(seen.examples)
        examples += [v for v in failure.examples if v not in examples]
        self._failures[key] = replace(
            seen, count=seen.count + failure.count, examples=tuple(examples[:MAX_EXAMPLES])
        )

    def _null_share_failures(self) -> list[Failure]:
        failures = []
        for c in self.spec.columns:
            nulls = self._nulls[c.name]
            limit = c.rules.max_null_fraction
            if _has_null_share_rule(c) and self.rows and nulls / self.rows > limit:
                failures.append(Failure(
                    c.name, f"{NULL_FRACTION_CHECK}({limit})", nulls,
                    detail=f"null share {nulls / self.rows:.1%}",
                ))
        return failures

    def _rank(self, failure: Failure) -> tuple[int, int]:
        """pandera's order for one table: by column, then coercion, nulls, then the checks."""
        names = [c.name for c in self.spec.columns]
        if failure.column not in names:
            return (-1, 0)  # missing columns and rules about the table come first
        column = self.spec.columns[names.index(failure.column)]
        checks = [c.name for c in _checks(column, self.spec)]
        rules = ["coerce_dtype", INTEGRAL_CHECK, "not_nullable", *checks, NULL_FRACTION_CHECK]
        rule = failure.rule.split("(")[0]
        return (names.index(failure.column), rules.index(rule) if rule in rules else len(rules))

    def _table_failures(self) -> list[Failure]:
        """Rules about the whole table, which a per-column schema cannot express."""
        spec, rows = self.spec, self.rows
        failures: list[Failure] = []
        if rows < spec.min_rows:
            dropped = f" ({self.dropped} dropped for a missing target)" if self.dropped else ""
            failures.append(Failure(
                "(table)", f"min_rows({spec.min_rows})", 0, detail=f"only {rows} rows{dropped}"
            ))
        if rows:
            for c in spec.columns:
                if c.name in self._present and self._nulls[c.name] == rows:
                    failures.append(
                        Failure(c.name, "not_entirely_null", 0, detail=f"all {rows} values null")
                    )
        failures.extend(self._target_failures())
        return failures

    def _target_failures(self) -> list[Failure]:
        spec, rows = self.spec, self.rows
        if spec.target not in self._present or not rows:
            return []
        nulls = self._nulls[spec.target]
        if nulls == rows:
            return []  # reported as entirely null
        failures = []
        if nulls:
            failures.append(
                Failure(spec.target, "target_not_null", nulls, detail="the target must be complete")
            )
        if spec.task == "classification" and len(self._classes) < 2:
            failures.append(
                Failure(
                    spec.target,
                    "target_min_classes(2)",
                    0,
                    detail=f"only {len(self._classes)} class: {list(self._classes)}",
                )
            )
        return failures


def validate_frame(df: pd.DataFrame, spec: PipelineSpec) -> pd.DataFrame:
    """Check the table against the spec and return it with the spec's dtypes.

    Args:
        df: Data whose columns already carry the spec's names
            (see `mlops.data.loading.conform_columns`).
        spec: The pipeline spec.

    Returns:
        The same table, coerced in place to the spec's dtypes (no second copy of big data).

    Raises:
        DataValidationError: one error listing every failure: column, rule with its limit,
            number of bad rows and a few offending values.
    """
    validator = BatchValidator(spec)
    validated = validator.check(df)
    validator.finish()
    logger.info("validated %d rows x %d columns for '%s'", len(df), df.shape[1], spec.name)
    return validated


def validate_batches(
    batches: Iterable[pd.DataFrame], spec: PipelineSpec, writer: FrameWriter
) -> None:
    """Validate a table given as batches of rows; write the coerced batches to `writer`.

    Every batch is checked, so the error lists every failure of the whole table; once one
    failed, nothing more is written (the writer's file is discarded with the error).

    Raises:
        DataValidationError: as `validate_frame`, for the whole table.
    """
    validator = BatchValidator(spec)
    for batch in batches:
        validated = validator.check(batch)
        if validated is not None:
            writer.write(validated)
        del batch, validated  # one batch in memory at a time
    validator.finish()
    logger.info("validated %d rows for '%s' in batches", validator.rows, spec.name)


def validate_checkpoint(raw: FrameRef, spec: PipelineSpec, path: Path) -> FrameRef:
    """Validate a stage checkpoint a batch at a time into a new one, with the spec's dtypes.

    Raises:
        DataValidationError: as `validate_frame`; no checkpoint is written then.
    """
    try:
        with FrameWriter(path) as writer:
            validate_batches(iter_frames(raw), spec, writer)
    finally:
        release_memory()
    return writer.ref
