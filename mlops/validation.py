"""Judge a table against the spec's column rules and say everything that is wrong at once.

The pandera schema is built from the spec, never written by hand, so a new dataset needs only a
new YAML file. `validate_frame` turns pandera's failure table into one readable message (through
`failures_from`, the only code that knows that table's layout) and adds the checks a schema
cannot express per column: enough rows, no empty column, a usable target.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from mlops.errors import DataValidationError
from mlops.spec import ColumnSpec, PipelineSpec

logger = logging.getLogger(__name__)

MAX_EXAMPLES = 5
# Categories and strings use pandas' default string dtype ("str"): missing values stay NaN,
# which scikit-learn's imputers and encoders understand (pd.NA would not be).
PANDAS_DTYPES: dict[str, str] = {
    "int": "int64",
    "float": "float64",
    "category": "str",
    "string": "str",
    "bool": "boolean",
    "datetime": "datetime64[ns]",
}
NULL_FRACTION_CHECK = "max_null_fraction"
# Failures that only restate that a column could not be converted; the conversion failure says it.
_AFTER_COERCION = ("coerce_dtype", "not_nullable")


@dataclass(frozen=True)
class Failure:
    """One broken rule on one column, ready to be shown to a person.

    Attributes:
        column: The column, or '(table)' for rules about the whole table.
        rule: What was required, with its limit: `greater_than_or_equal_to(0)`, `min_rows(500)`.
        count: How many rows broke it (0 for rules about the whole table or column).
        examples: Up to five distinct offending values.
        detail: Extra words for rules whose count alone does not explain them.
    """

    column: str
    rule: str
    count: int
    examples: tuple[Any, ...] = ()
    detail: str = ""

    def describe(self) -> str:
        parts = [f"{self.count} bad row{'s' * (self.count != 1)}"] if self.count else []
        if self.detail:
            parts.append(self.detail)
        text = f"{self.column}: {self.rule}: {'; '.join(parts)}"
        if self.examples:
            text += f", e.g. {list(self.examples)}"
        return text


def pandas_dtype(column: ColumnSpec) -> str:
    """The pandas dtype a spec column is coerced to; ints with allowed nulls become 'Int64'."""
    if column.dtype == "int" and column.rules.max_null_fraction > 0:
        return "Int64"
    return PANDAS_DTYPES[column.dtype]


def _null_share_check(limit: float) -> pa.Check:
    """Fails each null when the column's null share exceeds the limit, so counts mean rows."""
    return pa.Check(
        lambda s: s.notna() | (s.isna().mean() <= limit),
        ignore_na=False,
        name=NULL_FRACTION_CHECK,
        error=f"{NULL_FRACTION_CHECK}({limit})",
    )


def _checks(column: ColumnSpec) -> list[pa.Check]:
    rules = column.rules
    checks: list[pa.Check] = []
    if column.dtype in ("int", "float"):
        if rules.min is not None:
            checks.append(pa.Check.ge(rules.min))
        if rules.max is not None:
            checks.append(pa.Check.le(rules.max))
    if rules.allowed is not None:
        checks.append(pa.Check.isin(rules.allowed))
    if 0 < rules.max_null_fraction < 1:
        checks.append(_null_share_check(rules.max_null_fraction))
    return checks


def build_schema(spec: PipelineSpec) -> pa.DataFrameSchema:
    """The pandera schema for the spec's columns: types (coerced), ranges, allowed values, nulls.

    A column may hold nulls when its `max_null_fraction` is above 0; the share is then checked
    against that limit.
    """
    columns = {
        c.name: pa.Column(
            pandas_dtype(c),
            checks=_checks(c),
            nullable=c.rules.max_null_fraction > 0,
            coerce=True,
            required=True,
        )
        for c in spec.columns
    }
    return pa.DataFrameSchema(columns, coerce=True, strict=False, name=spec.name)


def _examples(values: pd.Series) -> tuple[Any, ...]:
    seen = values.dropna().drop_duplicates().head(MAX_EXAMPLES)
    return tuple(v.item() if hasattr(v, "item") else v for v in seen)


def failures_from(errors: SchemaErrors, n_rows: int) -> list[Failure]:
    """pandera's failure table as `Failure`s: one per (column, rule), in the table's order.

    This is the one place that reads pandera's `failure_cases` columns (`column`, `check`,
    `failure_case`).
    """
    cases = errors.failure_cases
    failures: list[Failure] = []
    grouped = cases.groupby(["column", "check"], sort=False, dropna=False)
    for (column, check), group in grouped:
        failure = _failure(str(column) if pd.notna(column) else "(table)", str(check), group)
        if failure is not None:
            if failure.rule.startswith(NULL_FRACTION_CHECK) and n_rows:
                share = f"null share {failure.count / n_rows:.1%}"
                failure = Failure(failure.column, failure.rule, failure.count, (), share)
            failures.append(failure)
    return failures


def _failure(column: str, check: str, group: pd.DataFrame) -> Failure | None:
    """One (column, check) group of pandera's failure cases; None when it adds nothing."""
    values = group["failure_case"]
    if check == "column_in_dataframe":
        missing = ", ".join(str(v) for v in values)
        return Failure(missing, "column_in_dataframe", 0, detail="the column is missing")
    if check.startswith("dtype("):
        return None  # restates a coercion failure, reported on its own
    if check.startswith("coerce_dtype"):
        # Nulls that a non-nullable type cannot hold are reported by `not_nullable`.
        count = int(values.notna().sum())
        return Failure(column, check, count, _examples(values)) if count else None
    return Failure(column, check or "schema", len(group), _examples(values))


def _drop_redundant(
    failures: list[Failure], entirely_null: set[str], null_target: str | None
) -> list[Failure]:
    """Keep the failures that add information.

    A column that could not be converted is reported by its conversion failure only (range
    checks on unconverted values say nothing), and what a table rule already said (a column
    entirely null, nulls in the target) is not repeated.
    """
    coerce_failed = {f.column for f in failures if f.rule.startswith("coerce_dtype")}
    kept = []
    for f in failures:
        if f.column in entirely_null:
            continue
        if f.column == null_target and f.rule.startswith(("not_nullable", NULL_FRACTION_CHECK)):
            continue
        if f.column in coerce_failed and not f.rule.startswith(_AFTER_COERCION):
            continue
        kept.append(f)
    return kept


def _table_failures(df: pd.DataFrame, spec: PipelineSpec) -> list[Failure]:
    """Rules about the whole table, which a per-column schema cannot express."""
    failures: list[Failure] = []
    if len(df) < spec.min_rows:
        failures.append(
            Failure("(table)", f"min_rows({spec.min_rows})", 0, detail=f"only {len(df)} rows")
        )
    if len(df):
        for c in spec.columns:
            if c.name in df.columns and df[c.name].isna().all():
                failures.append(
                    Failure(c.name, "not_entirely_null", 0, detail=f"all {len(df)} values null")
                )
    failures.extend(_target_failures(df, spec))
    return failures


def _target_failures(df: pd.DataFrame, spec: PipelineSpec) -> list[Failure]:
    if spec.target not in df.columns or not len(df):
        return []
    target = df[spec.target]
    nulls = int(target.isna().sum())
    if nulls == len(df):
        return []  # reported as entirely null
    failures = []
    if nulls:
        failures.append(
            Failure(spec.target, "target_not_null", nulls, detail="the target must be complete")
        )
    classes = target.dropna().unique()
    if spec.task == "classification" and len(classes) < 2:
        failures.append(
            Failure(
                spec.target,
                "target_min_classes(2)",
                0,
                detail=f"only {len(classes)} class: {list(_examples(pd.Series(classes)))}",
            )
        )
    return failures


def validate_frame(df: pd.DataFrame, spec: PipelineSpec) -> pd.DataFrame:
    """Check the table against the spec and return it with the spec's dtypes.

    Args:
        df: Data whose columns already carry the spec's names (see `mlops.data.conform_columns`).
        spec: The pipeline spec.

    Returns:
        The same table, coerced in place to the spec's dtypes (no second copy of big data).

    Raises:
        DataValidationError: one error listing every failure: column, rule with its limit,
            number of bad rows and a few offending values.
    """
    table = _table_failures(df, spec)
    entirely_null = {f.column for f in table if f.rule == "not_entirely_null"}
    null_target = spec.target if any(f.rule == "target_not_null" for f in table) else None
    try:
        validated = build_schema(spec).validate(df, lazy=True, inplace=True)
        column_failures: list[Failure] = []
    except SchemaErrors as exc:
        validated = None
        column_failures = _drop_redundant(failures_from(exc, len(df)), entirely_null, null_target)
    failures = table + column_failures
    if failures:
        lines = "\n".join(f"  - {f.describe()}" for f in failures)
        raise DataValidationError(
            f"data for '{spec.name}' broke {len(failures)} rule(s) "
            f"({len(df)} rows checked):\n{lines}"
        )
    logger.info("validated %d rows x %d columns for '%s'", len(df), df.shape[1], spec.name)
    return validated
