"""Orders' daily forecast (docs/requirements.md N2): only accounts with an alert in days, each once a day.

The orders application in this process on a real database, the ledger stand-in in-process
(tests/fakes.py), as in test_orders_interrupted.py.
"""
from __future__ import annotations

import uuid

from services.orders import forecast
from services.orders.forecast import Forecasts
from tests.integration.test_orders_interrupted import VPS, world  # noqa: F401 (fixture)

RENEWING = {**VPS, "auto_renew": True}


def test_the_daily_check_forecasts_only_the_accounts_with_an_alert_in_days_once_a_day(world, monkeypatch):
    orders, ledger, clock = world
    monkeypatch.setattr(forecast, "ALERTED_PAGE", 2)   # three pages of the ledger's list
    quiet = [str(uuid.uuid4()) for _ in range(3)]
    alerted = [str(uuid.uuid4()) for _ in range(5)]
    for account in quiet + alerted:
        ledger.fund(account, "50.00")
        orders.place_order(account, RENEWING)
    no_orders = str(uuid.uuid4())   # alerted, but nothing renews: nothing to forecast
    for account in alerted + [no_orders]:
        ledger.alert_in_days[account] = 30
    daily = Forecasts(orders.uow, orders.catalogue, ledger, clock)

    assert daily.check_daily() == 5
    assert sorted(ledger.forecasts_asked) == sorted(alerted)
    assert daily.check_daily() == 0   # once a day
    clock.seconds += 86_400
    assert daily.check_daily() == 5 and len(ledger.forecasts_asked) == 10


def test_a_run_checks_at_most_its_share_and_the_next_run_the_rest(world, monkeypatch):
    orders, ledger, clock = world
    monkeypatch.setattr(forecast, "CHECKS_PER_RUN", 2)
    alerted = [str(uuid.uuid4()) for _ in range(3)]
    for account in alerted:
        ledger.fund(account, "50.00")
        orders.place_order(account, RENEWING)
        ledger.alert_in_days[account] = 7
    daily = Forecasts(orders.uow, orders.catalogue, ledger, clock)
    assert daily.check_daily() == 2
    assert daily.check_daily() == 1
    assert sorted(ledger.forecasts_asked) == sorted(alerted)
