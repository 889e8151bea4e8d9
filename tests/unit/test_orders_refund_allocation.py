"""How a refund or credit is spread over the order's ledger charges (the ledger refuses more than a charge took)."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.errors import DomainError
from services.common.money import Money
from services.orders.domain import allocate_refund


def eur(minor: int) -> Money:
    return Money(minor, "EUR")


def test_a_credit_after_an_upgrade_draws_on_the_upgrade_charge_first():
    parts = allocate_refund(eur(700), [("activate", eur(990)), ("upgrade", eur(464))])
    assert parts == [("upgrade", eur(464)), ("activate", eur(236))]


def test_a_refund_that_fits_the_newest_charge_touches_no_other():
    assert allocate_refund(eur(100), [("a", eur(990)), ("b", eur(990))]) == [("b", eur(100))]


def test_fully_refunded_charges_are_skipped():
    assert allocate_refund(eur(50), [("a", eur(990)), ("b", eur(0))]) == [("a", eur(50))]


def test_more_than_was_charged_is_refused():
    with pytest.raises(DomainError) as excinfo:
        allocate_refund(eur(2000), [("a", eur(990)), ("b", eur(990))])
    assert excinfo.value.error_code == "refund_exceeds_charge"


@given(st.lists(st.integers(min_value=0, max_value=100_000), min_size=1, max_size=6), st.data())
def test_parts_add_up_and_none_exceeds_its_charge(available, data):
    charges = [(f"c{i}", eur(minor)) for i, minor in enumerate(available)]
    amount = data.draw(st.integers(min_value=1, max_value=max(1, sum(available))))
    if amount > sum(available):
        return
    parts = allocate_refund(eur(amount), charges)
    assert sum(part.minor for _, part in parts) == amount
    left = dict(charges)
    assert all(0 < part.minor <= left[charge_id].minor for charge_id, part in parts)
    assert len({charge_id for charge_id, _ in parts}) == len(parts)
