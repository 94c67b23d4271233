"""Column names that match ignoring case and separators: the one matcher of the project.

Data exported by different tools spells the same header differently ('Tenure Months',
'TENURE_MONTHS', 'tenure-months'), so a column matches a wanted name when both have the same
`normalize_name` key. The scoring core, training's data loading (``mlops.data``) and the
drift check (``mlops.drift.data``) all match through `match_columns`; they differ only in what
happens when several columns share a key, which is the `strict` parameter:

- tolerant (``strict=False``, scoring and drift): a column spelled exactly as wanted wins,
  else the first one with the key; the others are ignored;
- strict (``strict=True``, training data): the first column with the key is used and every
  other one is a clash the caller reports, because training on the wrong one of two
  look-alike columns would go unnoticed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_SEPARATORS = re.compile(r"[\s_\-.]+")


def normalize_name(name: object) -> str:
    """Column key that ignores case and separators: 'Period ID' == 'period_id' == 'periodid'."""
    return _SEPARATORS.sub("", str(name)).lower()


@dataclass(frozen=True)
class ColumnMatch:
    """Which available column stands for each wanted name.

    Attributes:
        found: wanted name -> available column, in the order of the wanted names.
        missing: wanted names no column matches.
        clashes: (chosen column, other column, wanted name) for each further column with a
            wanted name's key, in the order of the available columns; strict matching only.
        extra: available columns whose key matches no wanted name.
    """

    found: dict[str, str]
    missing: list[str]
    clashes: list[tuple[str, str, str]]
    extra: list[str]


def match_columns(available: Iterable[str], wanted: Sequence[str],
                  strict: bool = False) -> ColumnMatch:
    """Match `available` columns to `wanted` names ignoring case and separators.

    Args:
        available: the columns the data or request holds, in their order.
        wanted: the names looked for; their keys are distinct (a spec or a manifest
            guarantees it).
        strict: report every further column sharing a wanted name's key as a clash instead
            of letting an exact spelling win (see the module docstring).
    """
    available = list(available)
    wanted_keys = {normalize_name(name): name for name in wanted}
    first: dict[str, int] = {}  # key -> position of the first column with it
    extra = []
    for position, column in enumerate(available):
        key = normalize_name(column)
        if key in wanted_keys:
            first.setdefault(key, position)
        else:
            extra.append(column)
    by_key = {key: available[position] for key, position in first.items()}
    exact = set() if strict else set(available)
    found: dict[str, str] = {}
    missing = []
    for name in wanted:
        column = name if name in exact else by_key.get(normalize_name(name))
        if column is None:
            missing.append(name)
        else:
            found[name] = column
    clashes = []
    if strict:
        for position, column in enumerate(available):
            key = normalize_name(column)
            if key in first and first[key] != position:
                clashes.append((by_key[key], column, wanted_keys[key]))
    return ColumnMatch(found, missing, clashes, extra)
