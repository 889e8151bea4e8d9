"""The panel without a browser: every text in both catalogues, pages outside the OpenAPI document."""
from __future__ import annotations

import re

import pytest
import yaml
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from gateway.openapi import openapi_document
from gateway.panel.routes import HERE, _flatten, catalogue, qr_svg, render

TEMPLATE_KEY = re.compile(r"""\bt\('([a-z_.]+)'""")
SCRIPT_KEY = re.compile(r"""\bt\("([a-z_.]+)"|MESSAGES\[`([a-z_.]+)\.\$\{|\bt\(`([a-z_.]+)\.\$\{""")
# What the API answers in the fields the panel names through the catalogue.
ENUMS = {
    "orders.state": ["pending_payment", "active", "overdue", "suspended", "cancelled", "closed"],
    "orders.action": ["renew", "change_plan", "cancel"],
    "plans.kind": ["dedicated", "vps"],
    "balance.kinds": ["payment", "charge", "refund", "adjustment"],
    "invoices.kinds": ["invoice", "credit_note"],
    "invoice.treatment": ["standard", "reverse_charge", "outside_scope"],
    "verify.hint": ["flash_call", "voice", "sms"],
    "profile.company_state": ["none", "pending", "verified", "rejected"],
}


def used_keys() -> tuple[set[str], set[str]]:
    keys, prefixes = set(), set()
    for template in (HERE / "templates").glob("*.html"):
        keys |= set(TEMPLATE_KEY.findall(template.read_text("utf-8")))
    for key, prefix, literal in SCRIPT_KEY.findall((HERE / "static" / "panel.js").read_text("utf-8")):
        keys |= {key} - {""}
        prefixes |= {prefix or literal} - {""}
    return keys, prefixes


@pytest.mark.parametrize("language", ["en", "pl"])
def test_every_text_the_pages_use_is_in_the_catalogue(language):
    messages = catalogue(language)
    keys, prefixes = used_keys()
    assert keys and not sorted(keys - set(messages))
    for prefix in prefixes:
        assert any(key.startswith(f"{prefix}.") for key in messages), prefix
    for prefix, values in ENUMS.items():
        assert not [value for value in values if f"{prefix}.{value}" not in messages], prefix


def test_polish_and_english_catalogues_have_the_same_keys():
    english = _flatten(yaml.safe_load((HERE / "messages" / "en.yml").read_text("utf-8")))
    polish = _flatten(yaml.safe_load((HERE / "messages" / "pl.yml").read_text("utf-8")))
    assert sorted(set(english) ^ set(polish)) == []


def page_request(cookies: str = "", accept_language: str = "") -> Request:
    headers = {"Cookie": cookies} if cookies else {}
    if accept_language:
        headers["Accept-Language"] = accept_language
    return Request(EnvironBuilder(path="/profile", headers=headers).get_environ())


def test_the_language_is_the_profiles_then_the_browsers():
    assert 'lang="pl"' in render(page_request(accept_language="pl-PL,pl;q=0.9"), "login.html", "login").get_data(True)
    assert 'lang="en"' in render(page_request(cookies="panel_lang=en", accept_language="pl"), "login.html",
                                 "login").get_data(True)
    polish = render(page_request(cookies="panel_lang=pl"), "profile.html", "profile").get_data(True)
    assert "Dane osobowe" in polish and "Weryfikuj" in polish and "Niemcy" in polish


def test_pages_load_nothing_from_another_origin():
    response = render(page_request(), "security.html", "security")
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert not re.search(r"""(src|href)=["']https?://""", response.get_data(True))


def test_pages_and_static_files_stay_out_of_the_openapi_document():
    import gateway.service  # noqa: F401  (declares every route, the panel's too)
    paths = set(openapi_document()["paths"])
    assert paths and all(path.startswith("/api/v1/") or path == "/health" for path in paths)


def test_the_qr_code_is_an_svg_drawn_on_the_server():
    svg = qr_svg("otpauth://totp/Introserv:anna?secret=JBSWY3DPEHPK3PXP&issuer=Introserv")
    assert svg.startswith("<svg") and "<path" in svg


@pytest.mark.parametrize("template", sorted(p.name for p in (HERE / "templates").glob("*.html") if not p.name.startswith("_")))
def test_every_field_has_its_own_label(template):
    html = render(page_request(), template, template.removesuffix(".html"), order_id="1", invoice_id="1").get_data(True)
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    for field_id in re.findall(r'<(?:input|select|textarea)[^>]*\sid="([^"]+)"', html):
        assert re.search(rf'<label[^>]*for="{field_id}"', html) or re.search(
            rf'<label[^>]*>\s*<input[^>]*id="{field_id}"', html), field_id
