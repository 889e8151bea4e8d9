"""Refusals in the customer's language: the API's ``message`` and field messages in Polish or English.

The services refuse in English (their RPC callers read English); the gateway, the door a customer
comes through, says it in the language of ``Accept-Language`` (``pl``, ``en``), else in the
customer's profile language, else English. The Polish texts are a gettext catalogue
(``gateway/locale/pl/LC_MESSAGES/api.po``, read with Babel), its message ids the English texts:

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
import re
from dataclasses import dataclass
from pathlib import Path

from babel.messages.pofile import read_po

LANGUAGES = ("en", "pl")
DEFAULT_LANGUAGE = "en"
CATALOGUES = Path(__file__).parent / "locale"
FIELD_CONTEXT = "field:"
CODE_CONTEXT = "code"
# A field message no entry describes: its code, so that `field_codes` always has one.
UNKNOWN_PROBLEM = "invalid"
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class Text:
    """One English text the services write (or a template of many) and its code if it is a field problem."""

    english: str
    code: str | None
    pattern: re.Pattern

    def match(self, text: str) -> dict | None:
        """The placeholders' values when ``text`` is this one, else None."""
        found = self.pattern.fullmatch(text)
        return None if found is None else {name: _number(value) for name, value in found.groupdict().items()}


def _number(value: str):
    return int(value) if value.isdigit() and len(value) < 10 else value


def _pattern(english: str) -> re.Pattern:
    parts, at, named = [], 0, set()
    for placeholder in _PLACEHOLDER.finditer(english):
        name = placeholder.group(1)
        parts.append(re.escape(english[at:placeholder.start()]))
        parts.append(f"(?P={name})" if name in named else f"(?P<{name}>.+?)")
        named.add(name)
        at = placeholder.end()
    parts.append(re.escape(english[at:]))
    return re.compile("".join(parts), re.DOTALL)


@functools.cache
def catalogue(language: str) -> dict[tuple[str | None, str], str]:
    """(context, English) -> the text in ``language``: the catalogue as Babel reads it."""
    if language == DEFAULT_LANGUAGE:
        return {}
    with (CATALOGUES / language / "LC_MESSAGES" / "api.po").open("rb") as po:
        read = read_po(po, locale=language)
    return {(message.context, message.id): message.string for message in read if message.id and message.string}


@functools.cache
def texts() -> tuple[list[Text], list[Text]]:
    """The known English texts, (messages, field problems); exact texts before templates."""
    messages, problems = [], []
    for context, english in catalogue("pl"):
        if context in (CODE_CONTEXT, f"{FIELD_CONTEXT}{UNKNOWN_PROBLEM}"):
            continue
        code = context[len(FIELD_CONTEXT):] if context and context.startswith(FIELD_CONTEXT) else None
        (problems if code else messages).append(Text(english, code, _pattern(english)))
    def templates_last(text: Text):
        return "{" in text.english, -len(text.english)
    return sorted(messages, key=templates_last), sorted(problems, key=templates_last)


def _find(text: str, known: list[Text]) -> tuple[Text, dict] | tuple[None, dict]:
    for candidate in known:
        params = candidate.match(text)
        if params is not None:
            return candidate, params
    return None, {}


def _say(language: str, context: str | None, english: str, params: dict) -> str | None:
    translated = catalogue(language).get((context, english))
    if translated is None:
        return None
    return translated.format(**params) if params else translated


def field_problem(text: str, language: str) -> tuple[dict, str]:
    """One field message -> (``{code, params}``, the message in ``language``)."""
    known, params = _find(str(text), texts()[1])
    if known is None:  # said in general words rather than in another language
        general = _say(language, f"{FIELD_CONTEXT}{UNKNOWN_PROBLEM}", UNKNOWN_PROBLEM, {})
        return {"code": UNKNOWN_PROBLEM, "params": {}}, general if language != DEFAULT_LANGUAGE and general else str(text)
    problem = {"code": known.code, "params": params}
    if language == DEFAULT_LANGUAGE:
        return problem, str(text)
    said = _say(language, f"{FIELD_CONTEXT}{known.code}", known.english, params)
    return problem, said or str(text)


def message(code: str, text: str, language: str) -> str:
    """A refusal's ``message`` in ``language``: its own translation, else its code's, else as written."""
    if language == DEFAULT_LANGUAGE:
        return text
    known, params = _find(text, texts()[0])
    said = _say(language, None, known.english, params) if known is not None else None
    return said or catalogue(language).get((CODE_CONTEXT, code)) or text


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
