"""The journal's rules without a database: double entry, limits, refunds, alerts."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.errors import DomainError, ValidationError
from services.common.money import Money
from services.ledger import domain


def eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


@given(kind=st.sampled_from(domain.KINDS), minor=st.integers(-10**9, 10**9).filter(bool))
def test_every_movement_posts_legs_that_sum_to_zero(kind, minor):
    legs = domain.legs_for(kind, "a1", Money(minor, "EUR"))
    assert sum(leg.amount.minor for leg in legs) == 0
    assert legs[0].ledger_account == "customer:a1"
    assert legs[1].ledger_account.startswith("house:")


def test_unbalanced_postings_are_refused():
    with pytest.raises(ValueError):
        domain.check_balanced([domain.Leg("customer:a", eur("1.00")), domain.Leg("house:revenue:EUR", eur("-0.99"))])


def test_a_charge_takes_and_a_payment_gives():
    assert domain.signed_amount(domain.CHARGE, eur("4.00")) == eur("-4.00")
    assert domain.signed_amount(domain.PAYMENT, eur("4.00")) == eur("4.00")
    assert domain.signed_amount(domain.ADJUSTMENT, eur("-4.00")) == eur("-4.00")


@pytest.mark.parametrize("kind,amount", [(domain.CHARGE, "0.00"), (domain.PAYMENT, "-1.00"),
                                         (domain.REFUND, "0.00"), (domain.ADJUSTMENT, "0.00")])
def test_empty_or_backwards_amounts_are_invalid(kind, amount):
    with pytest.raises(ValidationError):
        domain.signed_amount(kind, eur(amount))


def test_a_charge_beyond_the_balance_is_insufficient_funds():
    with pytest.raises(DomainError) as refused:
        domain.balance_after(eur("3.00"), eur("-3.01"), eur("0.00"))
    assert refused.value.error_code == "insufficient_funds"
    assert refused.value.details["available"] == {"amount": "3.00", "currency": "EUR"}


def test_a_credit_limit_allows_that_much_overdraft_and_no_more():
    assert domain.balance_after(eur("1.00"), eur("-6.00"), eur("5.00")) == eur("-5.00")
    with pytest.raises(DomainError):
        domain.balance_after(eur("1.00"), eur("-6.01"), eur("5.00"))


def test_money_in_is_accepted_even_below_the_limit():
    assert domain.balance_after(eur("-10.00"), eur("1.00"), eur("0.00")) == eur("-9.00")


def test_a_refund_cannot_exceed_the_charge_net_of_earlier_refunds():
    domain.check_refund(eur("10.00"), eur("4.00"), eur("6.00"))
    with pytest.raises(DomainError) as refused:
        domain.check_refund(eur("10.00"), eur("4.00"), eur("6.01"))
    assert refused.value.error_code == "refund_exceeds_charge"


def test_another_currency_is_refused():
    with pytest.raises(DomainError) as refused:
        domain.check_currency("EUR", Money.of("1.00", "PLN"))
    assert refused.value.error_code == "currency_mismatch"


def test_balance_low_is_sent_once_per_crossing():
    threshold = eur("5.00")
    first = domain.low_balance_alert(threshold, False, eur("-6.00"), eur("4.00"))
    assert first == domain.AlertDecision(True, True)
    again = domain.low_balance_alert(threshold, True, eur("-1.00"), eur("3.00"))
    assert again == domain.AlertDecision(False, True)
    back_up = domain.low_balance_alert(threshold, True, eur("10.00"), eur("13.00"))
    assert back_up == domain.AlertDecision(False, False)
    crossing_again = domain.low_balance_alert(threshold, False, eur("-9.00"), eur("4.00"))
    assert crossing_again.send_low_balance


def test_a_payment_that_leaves_the_balance_below_the_threshold_sends_nothing():
    assert not domain.low_balance_alert(eur("5.00"), False, eur("1.00"), eur("2.00")).send_low_balance


def test_no_threshold_no_alert():
    assert domain.low_balance_alert(None, False, eur("-1.00"), eur("-1.00")) == domain.AlertDecision(False, False)


def test_raising_the_threshold_above_the_balance_arms_the_next_charge_only_when_it_was_armed():
    assert domain.below_after_threshold_change(eur("5.00"), eur("10.00"), True) is False
    assert domain.below_after_threshold_change(eur("50.00"), eur("10.00"), False) is False
    assert domain.below_after_threshold_change(None, eur("10.00"), True) is False


def test_audit_finds_an_unbalanced_transaction_and_a_wrong_stored_balance():
    unbalanced = domain.transaction_discrepancies(
        {"t1": [("customer:a", 500, "EUR"), ("house:payments_received:EUR", -500, "EUR")],
         "t2": [("customer:a", -100, "EUR"), ("house:revenue:EUR", 90, "EUR")],
         "t3": []})
    assert [(p["transaction_id"], p["sum_minor"], p["postings"]) for p in unbalanced] == [("t2", -10, 2), ("t3", 0, 0)]
    assert domain.account_discrepancies("a", iter([(500, 500), (-100, 400)]), 450, 400) == [
        {"kind": "stored_balance_mismatch", "account_id": "a", "journal_minor": 400, "stored_minor": 450}]


def test_audit_reports_a_broken_balance_after_once_and_a_last_transaction_that_disagrees():
    problems = domain.account_discrepancies("a", iter([(500, 500), (100, 7), (100, 700)]), 700, 650)
    assert [(p["kind"], p.get("expected_minor")) for p in problems] == [
        ("balance_after_mismatch", 600), ("balance_after_mismatch", 107), ("transaction_balance_mismatch", None)]


def test_audit_of_sound_books_is_empty():
    assert domain.transaction_discrepancies(
        {"t1": [("customer:a", 500, "EUR"), ("house:payments_received:EUR", -500, "EUR")]}) == []
    assert domain.account_discrepancies("a", iter([(500, 500)]), 500, 500) == []
