"""Refusals in the customer's language: the API's ``message`` and field messages in Polish or English.

The services refuse in English (their RPC callers read English); the gateway, the door a customer
comes through, says it in the language of ``Accept-Language`` (``pl``, ``en``), else in the
customer's profile language, else English. The Polish texts are a gettext catalogue
(``gateway/locale/pl/LC_MESSAGES/api.po``, read with Babel through services/common/wording.py),
its message ids the English texts:

- an entry without a context translates one ``message`` as the services write it; a message id
  with ``{placeholders}`` is a template, matching the English text it formats;
- an entry with the context ``field:<code>`` is a field problem: its English text (or template)
  is what a service writes in ``fields``, and ``<code>`` the stable code the HTTP answer gives
  next to it in ``field_codes`` (with the placeholders' values as ``params``), for a client that
  says it in words of its own (docs/CONTRACTS.md, Errors);
- an entry with the context ``code`` is the customer's text for an error code, said when the
  service's own message has no entry.
"""
from __future__ import annotations

import functools
from pathlib import Path

from services.common.wording import CUSTOMER_TEXTS, ENGLISH, LANGUAGES, Wording

DEFAULT_LANGUAGE = ENGLISH
FIELD_CONTEXT = "field:"
CODE_CONTEXT = "code"
# A field message no entry describes: its code, so that `field_codes` always has one.
UNKNOWN_PROBLEM = "invalid"
API = Wording(Path(__file__).parent / "locale", "api")


def catalogue(language: str) -> dict:
    return API.catalogue(language)


@functools.cache
def _problem_contexts() -> tuple[str, ...]:
    return tuple({text.context for text in API.texts() if text.context and text.context.startswith(FIELD_CONTEXT)}
                 - {f"{FIELD_CONTEXT}{UNKNOWN_PROBLEM}"})


def field_problem(text: str, language: str) -> tuple[dict, str]:
    """One field message -> (``{code, params}``, the message in ``language``)."""
    text = str(text)
    known, params = API.find(text, _problem_contexts())
    if known is None:  # said in general words rather than in another language
        general = API.catalogue(language).get((f"{FIELD_CONTEXT}{UNKNOWN_PROBLEM}", UNKNOWN_PROBLEM))
        return {"code": UNKNOWN_PROBLEM, "params": {}}, general or text
    problem = {"code": known.context[len(FIELD_CONTEXT):], "params": params}
    return problem, API.said(known, params, language) or text


def message(code: str, text: str, language: str) -> str:
    """A refusal's ``message`` in ``language``: its own translation, else its code's, else as written."""
    if language == DEFAULT_LANGUAGE:
        return text
    known, params = API.find(text)
    said = API.said(known, params, language) if known is not None else None
    return said or API.catalogue(language).get((CODE_CONTEXT, code)) or text


def _walk(fields, language: str):
    """``fields`` as they came (lists, possibly nested by name) -> (codes, messages), the same shape."""
    if isinstance(fields, dict):
        pairs = {name: _walk(value, language) for name, value in fields.items()}
        return ({name: pair[0] for name, pair in pairs.items()}, {name: pair[1] for name, pair in pairs.items()})
    if isinstance(fields, (list, tuple)):
        said = [field_problem(item, language) for item in fields]
        return [problem for problem, _ in said], [text for _, text in said]
    problem, text = field_problem(fields, language)
    return [problem], [text]


def localised_body(body: dict, language: str) -> dict:
    """The API's error body with ``message`` and ``fields`` in ``language`` and ``field_codes`` added."""
    error = body["error"]
    codes, fields = _walk(error.get("fields") or {}, language)
    return {"error": {**error, "message": message(error["code"], error["message"], language), "fields": fields,
                      "field_codes": codes}}


def requested_language(request) -> str | None:
    """The language ``Accept-Language`` asks for among :data:`LANGUAGES`, or None when it names neither."""
    if not request.headers.get("Accept-Language"):
        return None
    return request.accept_languages.best_match(LANGUAGES)


def lines_in(answer: dict, language: str) -> dict:
    """A quote with its lines' descriptions in ``language`` (the orders service writes them in English)."""
    lines = [{**line, "description": CUSTOMER_TEXTS.say(line.get("description"), language)}
             for line in answer.get("lines") or []]
    return {**answer, "lines": lines} if "lines" in answer else answer
