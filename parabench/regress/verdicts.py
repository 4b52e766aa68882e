"""The one rule for "is this a regression": used by compare's exit code, the alert
renderers, the report's comparison section and the HTML colouring alike."""
from __future__ import annotations

__all__ = ["IMPROVEMENT_VERDICTS", "REGRESSION_VERDICTS", "is_regression"]

#: Verdicts that make `compare` exit 1: got slower beyond the rule, or broke.
REGRESSION_VERDICTS = ("slower", "failed")
#: Verdicts that are good news: faster beyond the rule, or a failure that now runs.
IMPROVEMENT_VERDICTS = ("faster", "fixed")


def is_regression(row: dict) -> bool:
    """A compared benchmark (a row of `compare`'s result) that regressed."""
    return row.get("verdict") in REGRESSION_VERDICTS
