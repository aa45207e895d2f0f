"""The one rule for inline or S3 (resources/clients/results_store.py): both budgets, both limits inclusive."""

from __future__ import annotations

import pytest

from resources.clients.results_store import JOB_ITEM, RESPONSE_BODY, InlineBudget, stays_inline

BUDGET = InlineBudget(max_rows=3, max_bytes=100)


@pytest.mark.parametrize(
    ("rows", "size", "inline"),
    [
        (3, 100, True),
        (0, 0, True),
        (4, 100, False),
        (3, 101, False),
        (4, 101, False),
    ],
)
def test_a_result_stays_inline_within_both_limits(rows: int, size: int, inline: bool) -> None:
    assert stays_inline(rows, lambda: size, BUDGET) is inline


def test_the_size_is_not_measured_when_the_rows_already_exceed() -> None:
    def measure() -> int:
        raise AssertionError("measured")

    assert stays_inline(4, measure, BUDGET) is False


def test_the_two_budgets_are_a_dynamodb_item_and_a_response_body() -> None:
    assert (JOB_ITEM.max_rows, JOB_ITEM.max_bytes) == (1000, 350_000)
    assert (RESPONSE_BODY.max_rows, RESPONSE_BODY.max_bytes) == (1000, 5 * 1024 * 1024)
