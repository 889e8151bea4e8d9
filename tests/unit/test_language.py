"""The API's refusals in the customer's language: every text a service writes has its Polish and its code."""
from __future__ import annotations

import ast
import re
import string

import pytest

from gateway.language import (CODE_CONTEXT, FIELD_CONTEXT, UNKNOWN_PROBLEM, catalogue, field_problem,
                              localised_body, message)
from services.common.config import ROOT
from services.common.errors import HTTP_STATUS, DomainError, ValidationError
from services.common.wording import CUSTOMER_TEXTS

# Texts no customer meets: the operators' plan catalogue file, the support desk's, payments' and
# operators' RPC arguments.
NOT_A_CUSTOMERS = {"gateway/language.py", "services/orders/catalogue.py", "services/notifier/schemas.py",
                   "services/notifier/application.py", "services/ledger/application.py"}
RAISERS = {"ValidationError", "FieldError", "_BadRule"}
VALIDATORS = {"Length", "Range", "OneOf", "Regexp", "Email"}


def _text(node) -> str | None:
    """A string expression as the customer would read it, each value it formats as "7"."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value if isinstance(part, ast.Constant) else "7" for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left), _text(node.right)
        return None if left is None else left + (right if right is not None else "7")
    return None


def _listed(node) -> list[str]:
    """The texts of ``{"field": ["text", ...]}``."""
    if not isinstance(node, ast.Dict):
        return []
    return [text for value in node.values if isinstance(value, ast.List)
            for text in map(_text, value.elts) if text is not None]


def _written(call: ast.Call) -> list[str]:
    name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
    found = []
    if name in RAISERS and call.args:
        text = _text(call.args[0])
        found += [f"line 7: '7' {text}"] if name == "_BadRule" and text else [text] if text else _listed(call.args[0])
    if name in VALIDATORS:
        found += [text for keyword in call.keywords if keyword.arg == "error" for text in [_text(keyword.value)] if text]
    if name == "append" and call.args and isinstance(call.args[0], ast.JoinedStr):
        found += [text for text in [_text(call.args[0])] if text.startswith("line ") and text != "line 7: '7' 7"]
    found += [text for keyword in call.keywords if keyword.arg == "fields" for text in _listed(keyword.value)]
    return found


def field_texts_in_the_code() -> set[tuple[str, str]]:
    """(file, text) of every field problem the services and the gateway write."""
    found = set()
    for path in [*ROOT.glob("services/**/*.py"), *ROOT.glob("gateway/**/*.py")]:
        name = str(path.relative_to(ROOT))
        if name in NOT_A_CUSTOMERS or "/migrations/" in name:
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Call):
                found |= {(name, text) for text in _written(node)}
            elif isinstance(node, ast.Assign) and any(getattr(t, "id", "").endswith("_PROBLEM") for t in node.targets):
                found |= {(name, text) for text in [_text(node.value)] if text}
    return found


def test_the_scan_finds_the_field_texts():
    texts = {text for _, text in field_texts_in_the_code()}
    assert {"required", "must be 7 to 7 characters", "enter the 4 digits"} <= texts


@pytest.mark.parametrize("where, text", sorted(field_texts_in_the_code()))
def test_every_field_problem_a_customer_can_meet_has_a_code_and_polish(where, text):
    problem, polish = field_problem(text, "pl")
    assert problem["code"] != UNKNOWN_PROBLEM, f"{where}: {text!r} has no entry in gateway/locale/pl"
    assert polish != text


def test_every_error_code_has_its_polish_text():
    polish = catalogue("pl")
    assert sorted(code for code in HTTP_STATUS if (CODE_CONTEXT, code) not in polish) == []


def test_a_translation_uses_only_the_values_its_english_text_has():
    for (context, english), polish in catalogue("pl").items():
        names = {name for _, name, _, _ in string.Formatter().parse(polish) if name}
        if "{amount, currency}" in english:
            continue
        assert names <= {name for _, name, _, _ in string.Formatter().parse(english) if name}, english


def test_a_field_problem_has_a_stable_code_with_its_values_in_both_languages():
    body = ValidationError({"last_name": ["must be 1 to 100 characters"],
                            "postal_address": {"city": ["Missing data for required field."]},
                            "rules": ["line 3: '10.0.0.300' is not an IP address, range or CIDR block"]}).to_body()
    english, polish = localised_body(body, "en")["error"], localised_body(body, "pl")["error"]
    assert english["fields"] == body["error"]["fields"]  # English as the services wrote it
    assert english["field_codes"] == polish["field_codes"] == {
        "last_name": [{"code": "length", "params": {"min": 1, "max": 100}}],
        "postal_address": {"city": [{"code": "required", "params": {}}]},
        "rules": [{"code": "ip_rule", "params": {"line": 3, "rule": "10.0.0.300"}}]}
    assert polish["message"] == "Popraw zaznaczone pola."
    assert polish["fields"]["last_name"] == ["Wpisz od 1 do 100 znaków."]
    assert polish["fields"]["postal_address"] == {"city": ["To pole jest obowiązkowe."]}
    assert polish["fields"]["rules"] == ["wiersz 3: „10.0.0.300” nie jest adresem IP, zakresem ani blokiem CIDR"]


def test_a_field_text_without_an_entry_is_said_in_general_words_not_in_english():
    problem, polish = field_problem("is odd in a way no entry says", "pl")
    assert problem == {"code": UNKNOWN_PROBLEM, "params": {}} and polish == "Nieprawidłowa wartość."
    assert field_problem("is odd in a way no entry says", "en")[1] == "is odd in a way no entry says"


def test_a_message_is_translated_whole_by_template_or_by_its_code():
    assert message("wrong_code", "That code is not right. 3 tries left.", "pl") == "Kod jest nieprawidłowy. Pozostało prób: 3."
    assert message("ip_not_allowed", "This account may not be used from 10.0.0.1.", "pl") == \
        "Z tego konta nie można korzystać z adresu 10.0.0.1."
    assert message("out_of_stock", "VPS L is out of stock in WAW1.", "pl").startswith("Ten serwer jest chwilowo")
    assert message("out_of_stock", "VPS L is out of stock in WAW1.", "en") == "VPS L is out of stock in WAW1."


def test_the_shape_only_grows():
    error = localised_body(DomainError("not_found", "No such order.").to_body(), "pl")["error"]
    assert set(error) == {"code", "message", "fields", "details", "field_codes"}
    assert error["code"] == "not_found" and error["message"] == "Nie ma takiego zamówienia."


# ---- what the services write for a customer beyond refusals (services/common/wording.py)

@pytest.mark.parametrize("english, polish", [
    ("VPS L, 3 months", "VPS L, 3 mies."),
    ("VPS L, renewal for 1 months", "VPS L, odnowienie na 1 mies."),
    ("Plan change from VPS S to VPS M", "Zmiana planu z VPS S na VPS M"),
    ("Plan change from VPS M to VPS S: unused days", "Zmiana planu z VPS M na VPS S: niewykorzystane dni"),
    ("Upgrade from VPS S to VPS M: 20 days (2026-12-06 to 2026-12-25)",
     "Zmiana na wyższy plan z VPS S na VPS M: 20 dni (od 2026-12-06 do 2026-12-25)"),
    ("Downgrade from VPS M to VPS S: 3 days (2026-12-06 to 2026-12-08)",
     "Zmiana na niższy plan z VPS M na VPS S: 3 dni (od 2026-12-06 do 2026-12-08)"),
    ("Dedicated E3: refund of unused days", "Dedicated E3: zwrot za niewykorzystane dni"),
    ("Refund for invoice 2026/000123", "Zwrot do faktury 2026/000123"),
    ("Payment received", "Wpłata"),
])
def test_the_lines_the_services_write_are_said_in_polish_and_kept_in_english(english, polish):
    assert CUSTOMER_TEXTS.say(english, "pl") == polish
    assert CUSTOMER_TEXTS.say(english, "en") == english


def test_a_text_without_an_entry_is_kept_as_written_and_numbers_match_only_digits():
    assert CUSTOMER_TEXTS.say("Bank transfer 2026-12-01", "pl") == "Bank transfer 2026-12-01"
    assert CUSTOMER_TEXTS.say("VPS L, many months", "pl") == "VPS L, many months"   # {months} is a number
    assert CUSTOMER_TEXTS.say(None, "pl") is None


def test_the_orders_service_still_writes_the_texts_the_catalogue_knows():
    """The catalogue's keys are the English texts orders writes; a reworded text would go out in English."""
    def shape(text: str) -> str:       # the text with each {placeholder} emptied, whatever its variable's name
        return re.sub(r"\{[^{}]*\}", "{}", text)
    source = shape("".join(path.read_text("utf-8") for path in (ROOT / "services" / "orders").glob("*.py")))
    for written in ['f"{}, {} months"', 'f"{}, renewal for {} months"', 'f"Plan change from {} to {}"',
                    'f"{}: refund of unused days"', 'f"{} from {} to {}: {} days "']:
        assert written in source, f"the orders service no longer writes {written}: update services/common/locale"
