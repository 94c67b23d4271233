"""serving/columns.py: the one column matcher, tolerant for scoring and drift, strict for
training data."""

from __future__ import annotations

from serving.columns import match_columns, normalize_name


def test_names_match_ignoring_case_and_separators():
    assert normalize_name("Period ID") == normalize_name("period_id") == "periodid"
    match = match_columns(["TENURE-months", "Plan", "noise"], ["tenure_months", "plan", "x"])
    assert match.found == {"tenure_months": "TENURE-months", "plan": "Plan"}
    assert match.missing == ["x"] and match.extra == ["noise"] and match.clashes == []


def test_tolerant_matching_prefers_the_exact_spelling_then_the_first():
    match = match_columns(["Tenure Months", "tenure_months", "PLAN", "plan "], ["tenure_months",
                                                                               "plan"])
    assert match.found == {"tenure_months": "tenure_months", "plan": "PLAN"}
    assert match.clashes == [] and match.extra == []


def test_strict_matching_takes_the_first_and_reports_every_other_as_a_clash():
    match = match_columns(["Tenure Months", "tenure_months", "x", "TENURE_MONTHS"],
                          ["tenure_months"], strict=True)
    assert match.found == {"tenure_months": "Tenure Months"}
    assert match.clashes == [("Tenure Months", "tenure_months", "tenure_months"),
                             ("Tenure Months", "TENURE_MONTHS", "tenure_months")]
    assert match.extra == ["x"]
    repeated = match_columns(["a", "a"], ["a"], strict=True)
    assert repeated.clashes == [("a", "a", "a")]
