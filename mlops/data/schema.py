"""The pandera schema built from the spec's columns, never written by hand.

A new dataset needs only a new YAML file: each column's dtype and rules become pandera checks
here, named so that a failure says which rule a value broke.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa

from mlops.core.spec import PipelineSpec
from mlops.core.spec.columns import ColumnSpec

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
FINITE_CHECK = "finite"
INTEGRAL_CHECK = "integral"


def pandas_dtype(column: ColumnSpec) -> str:
    """The pandas dtype a spec column is coerced to; ints with allowed nulls become 'Int64'."""
    if column.dtype == "int" and column.rules.max_null_fraction > 0:
        return "Int64"
    return PANDAS_DTYPES[column.dtype]


def nonfinite_allowed(column: ColumnSpec, spec: PipelineSpec) -> bool:
    """Whether +inf and -inf may appear: the column's rule, else the spec's `data` default."""
    own = column.rules.allow_nonfinite
    return spec.data.allow_nonfinite if own is None else own


def _finite(values: pd.Series) -> pd.Series:
    return ~np.isinf(values.astype("float64"))


def _checks(column: ColumnSpec, spec: PipelineSpec) -> list[pa.Check]:
    rules = column.rules
    checks: list[pa.Check] = []
    if column.dtype == "float" and not nonfinite_allowed(column, spec):
        # A range with one side open does not exclude infinity, and the fit fails on it.
        checks.append(pa.Check(_finite, name=FINITE_CHECK))
    if column.dtype in ("int", "float"):
        if rules.min is not None:
            checks.append(pa.Check.ge(rules.min))
        if rules.max is not None:
            checks.append(pa.Check.le(rules.max))
    if rules.allowed is not None:
        checks.append(pa.Check.isin(rules.allowed))
    return checks


def _has_null_share_rule(column: ColumnSpec) -> bool:
    return 0 < column.rules.max_null_fraction < 1


def build_schema(spec: PipelineSpec) -> pa.DataFrameSchema:
    """The pandera schema for the spec's columns: types (coerced), ranges, allowed values, nulls.

    A column may hold nulls when its `max_null_fraction` is above 0. The share itself is a rule
    about the whole column, so `BatchValidator` checks it from its counts, not the schema.
    """
    columns = {
        c.name: pa.Column(
            pandas_dtype(c),
            checks=_checks(c, spec),
            nullable=c.rules.max_null_fraction > 0,
            coerce=True,
            required=True,
        )
        for c in spec.columns
    }
    return pa.DataFrameSchema(columns, coerce=True, strict=False, name=spec.name)
