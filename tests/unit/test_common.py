"""services/common and the gateway's plumbing, without I/O."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from marshmallow import fields as ma_fields
from nameko.exceptions import deserialize, serialize

from gateway.http import client_ip, to_openapi_path, trusted_proxies
from services.common.clock import FrozenClock, Clock, iso, move_clock
from services.common.errors import HTTP_STATUS, DomainError, NotFound, ValidationError
from services.common.money import Money
from services.common.schemas import MoneyField, StrictBoolean, StrictInteger, StrictSchema, load, text


def test_money_parses_decimal_strings_exactly_and_refuses_floats():
    assert Money.from_wire({"amount": "12.50", "currency": "EUR"}) == Money(1250, "EUR")
    assert Money.of("-0.05", "EUR").minor == -5
    with pytest.raises(DomainError) as refused:
        Money.from_wire({"amount": 12.5, "currency": "EUR"})
    assert refused.value.error_code == "validation_error"
    for bad in ({"amount": "1.234", "currency": "EUR"}, {"amount": "12", "currency": "XXX"},
                {"amount": "1e3", "currency": "EUR"}, {"amount": "12"}, "12.50"):
        with pytest.raises(DomainError):
            Money.from_wire(bad)


def test_money_arithmetic_stays_in_one_currency():
    assert (Money(1000, "EUR") - Money(1, "EUR")).amount == "9.99"
    assert Money(-150, "PLN").to_wire() == {"amount": "-1.50", "currency": "PLN"}
    with pytest.raises(ValueError):
        Money(1, "EUR") + Money(1, "PLN")
    assert Money(1000, "EUR").times("0.333").minor == 333


def test_domain_errors_cross_rpc_with_their_code_message_and_types():
    original = DomainError("wrong_code", "Wrong code.", details={"attempts_left": 4})
    wire = serialize(original)
    assert wire["exc_args"][:2] == ["wrong_code", "Wrong code."]
    assert wire["exc_args"][3] == {"attempts_left": 4}  # an int stays an int
    back = deserialize(wire)
    assert isinstance(back, DomainError) and back.status == 422 and back.details["attempts_left"] == 4
    for subclass_error in (NotFound("order"), ValidationError({"a": ["required"]})):
        rebuilt = deserialize(serialize(subclass_error))
        assert isinstance(rebuilt, DomainError) and rebuilt.error_code == subclass_error.error_code


def test_every_error_code_maps_to_an_http_status():
    assert HTTP_STATUS["insufficient_funds"] == 422 and HTTP_STATUS["not_found"] == 404
    assert DomainError("invalid_otp", status=401).status == 401
    assert DomainError("no_such_code_in_the_table").status == 422
    assert DomainError("x", "m").to_body() == {"error": {"code": "x", "message": "m", "fields": {}, "details": {}}}


def test_client_ip_is_the_peer_unless_the_peer_is_a_trusted_proxy():
    proxies = [__import__("ipaddress").ip_network("10.0.0.0/8")]
    assert client_ip("203.0.113.9", "1.2.3.4", []) == "203.0.113.9"
    assert client_ip("203.0.113.9", "1.2.3.4", proxies) == "203.0.113.9"   # untrusted peer: ignore XFF
    assert client_ip("10.0.0.2", "6.6.6.6, 1.2.3.4, 10.0.0.7", proxies) == "1.2.3.4"  # right-most untrusted
    assert client_ip("10.0.0.2", "not-an-ip", proxies) == "10.0.0.2"
    assert client_ip("10.0.0.2", "1.2.3.4, garbage, 10.0.0.3", proxies) == "10.0.0.3"
    assert client_ip("10.0.0.2", None, proxies) == "10.0.0.2"


def test_trusted_proxies_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8")
    assert [str(n) for n in trusted_proxies()] == ["127.0.0.1/32", "10.0.0.0/8"]
    monkeypatch.delenv("TRUSTED_PROXIES")
    assert trusted_proxies() == []


def test_openapi_paths_use_braces():
    assert to_openapi_path("/api/v1/orders/<order_id>/renew") == "/api/v1/orders/{order_id}/renew"


class Sample(StrictSchema):
    name = text(5, required=True)
    count = StrictInteger()
    flag = StrictBoolean()
    price = MoneyField()


def test_schemas_refuse_wrong_types_unknown_fields_and_blank_text():
    with pytest.raises(DomainError) as refused:
        load(Sample, {"name": "   ", "count": "3", "flag": "true", "price": {"amount": 1.5, "currency": "EUR"},
                        "extra": 1})
    fields = refused.value.fields
    assert set(fields) == {"name", "count", "flag", "price", "extra"}
    assert fields["extra"] == ["unknown field"]
    assert load(Sample, {"name": " ok ", "count": 3})["name"] == "ok"
    with pytest.raises(DomainError):
        load(Sample, ["not", "an", "object"])


def test_clock_offset_file_moves_time_for_every_reader(tmp_path):
    path = tmp_path / "clock"
    reader = Clock(str(path))
    before = reader.now()
    move_clock(str(path), 3 * 86400)
    assert (reader.now() - before).days == 3
    frozen = FrozenClock(datetime(2026, 11, 29, 10, tzinfo=timezone.utc))
    frozen.advance(days=1)
    assert iso(frozen.now()) == "2026-11-30T10:00:00Z"


def test_a_nul_character_anywhere_in_a_request_is_a_validation_error_naming_its_field():
    class Address(StrictSchema):
        city = text(50)

    class Body(StrictSchema):
        name = text(50)
        tags = ma_fields.List(text(10))
        address = ma_fields.Nested(Address)

    for body, field in (({"name": "Anna\x00"}, "name"), ({"name": "Anna", "tags": ["a", "b\x00"]}, "tags"),
                        ({"name": "Anna", "address": {"city": "Kra\x00ków"}}, "address")):
        with pytest.raises(ValidationError) as refused:
            load(Body, body)
        assert refused.value.fields == {field: ["must not contain NUL characters"]}
    assert load(Body, {"name": "Anna"}) == {"name": "Anna"}


# --- RPC timeouts ----------------------------------------------------------------------------

def test_an_order_write_waits_three_rpc_timeouts_unless_configured(monkeypatch):
    from services.common.config import order_write_timeout
    monkeypatch.setenv("RPC_TIMEOUT", "4")
    assert order_write_timeout() == 12.0   # profile, the ledger's price, the ledger's charge
    monkeypatch.setenv("ORDER_WRITE_TIMEOUT", "20")
    assert order_write_timeout() == 20.0


def test_a_proxy_reads_its_timeout_for_each_worker_and_the_request_expires_with_it(monkeypatch):
    from services.common.rpc import ServiceRpc
    monkeypatch.setenv("RPC_TIMEOUT", "4")
    plain, longer = ServiceRpc("orders"), ServiceRpc("orders", timeout=lambda: 12.0)
    for proxy in (plain, longer):
        proxy.rpc_reply_listener = None
    assert (plain.get_dependency(None)._timeout, plain.get_dependency(None)._options["expiration"]) == (4.0, 4.0)
    assert (longer.get_dependency(None)._timeout, longer.get_dependency(None)._options["expiration"]) == (12.0, 12.0)
