"""Validation failures: pandera's failure table read into `Failure`s, one per column and rule.

`failures_from` is the only code that knows that table's layout (`column`, `check`,
`failure_case`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from pandera.errors import SchemaErrors

from mlops.core.errors import shorten
from mlops.data.schema import FINITE_CHECK, INTEGRAL_CHECK, NULL_FRACTION_CHECK

MAX_EXAMPLES = 5


# Failures that only restate that a column could not be converted; the conversion failure says it.
_AFTER_COERCION = ("coerce_dtype", INTEGRAL_CHECK, "not_nullable")


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
            text += f", e.g. [{', '.join(shorten(repr(v)) for v in self.examples)}]"
        return text


def _examples(values: pd.Series) -> tuple[Any, ...]:
    seen = values.dropna().drop_duplicates().head(MAX_EXAMPLES)
    return tuple(v.item() if hasattr(v, "item") else v for v in seen)


def failures_from(errors: SchemaErrors, data: pd.DataFrame | None = None) -> list[Failure]:
    """pandera's failure table as `Failure`s: one per (column, rule), in the table's order.

    This is the one place that reads pandera's `failure_cases` columns (`column`, `check`,
    `failure_case`). A conversion that failed for the column as a whole comes with a null
    failure case (pandas' datetime parser refuses mixed formats so); its bad values are then
    found in `data`, the batch that was checked.
    """
    cases = errors.failure_cases
    failures: list[Failure] = []
    grouped = cases.groupby(["column", "check"], sort=False, dropna=False)
    for (column, check), group in grouped:
        name = str(column) if pd.notna(column) else "(table)"
        failure = _failure(name, str(check), group)
        if failure is None and str(check).startswith("coerce_dtype") and group[
                "failure_case"].isna().all():
            failure = _unconvertible(name, str(check), data)
        if failure is not None:
            failures.append(failure)
    return failures


def _unconvertible(column: str, check: str, data: pd.DataFrame | None) -> Failure | None:
    """A column pandera could not convert as a whole: the values that do not convert.

    None when every value converts: the failure was about nulls, which `not_nullable` reports.
    """
    if data is None or column not in data.columns:
        return Failure(column, check, 0, detail="the column could not be converted")
    values = data[column]
    if "datetime" in check:
        # Read with the first value's format, or ISO 8601: whichever reads more values.
        converted = min((pd.to_datetime(values, errors="coerce", format=f) for f in (
            None, "ISO8601")), key=lambda c: int(c.isna().sum()))
        detail = "mixed or unknown date formats (other than most values')"
    else:
        converted = pd.to_numeric(values, errors="coerce")
        detail = "values that do not convert"
    bad = values[converted.isna() & values.notna()]
    return Failure(column, check, len(bad), _examples(bad), detail=detail) if len(bad) else None


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
    if check == FINITE_CHECK:
        return Failure(column, check, len(group), _examples(values),
                       detail="+inf/-inf (allowed only with rules.allow_nonfinite)")
    return Failure(column, check or "schema", len(group), _examples(values))


def _drop_redundant(
    failures: list[Failure], entirely_null: set[str], null_target: str | None
) -> list[Failure]:
    """Keep the failures that add information.

    A column that could not be converted is reported by its conversion failure only (range
    checks on unconverted values say nothing), and what a table rule already said (a column
    entirely null, nulls in the target) is not repeated.
    """
    coerce_failed = {
        f.column for f in failures if f.rule.startswith(("coerce_dtype", INTEGRAL_CHECK))
    }
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
