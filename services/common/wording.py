"""Texts written for a customer in the customer's language, from gettext catalogues read with Babel.

The code writes English; a catalogue (``<folder>/<language>/LC_MESSAGES/<domain>.po``) gives each
English text its translation. A message id with ``{placeholders}`` is a template: it matches the
English texts it formats (``{plan}, renewal for {months} months`` matches "VPS L, renewal for
3 months"), and the translation is formatted with the values taken from the text. A placeholder
named in :data:`NUMBERS` matches digits only. Entries may have a context (``msgctxt``): the gateway
keeps field problems and error codes apart that way (gateway/language.py).
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from babel.messages.pofile import read_po

LANGUAGES = ("en", "pl")
ENGLISH = "en"
NUMBERS = frozenset({"months", "days", "line", "min", "max", "left", "first_day", "last_day"})
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class Text:
    """One English text (or template of many) of a catalogue, with its context."""

    context: str | None
    english: str
    pattern: re.Pattern

    def match(self, text: str) -> dict | None:
        """The placeholders' values when ``text`` is this one, else None."""
        found = self.pattern.fullmatch(text)
        if found is None:
            return None
        return {name: int(value) if name in NUMBERS else value for name, value in found.groupdict().items()}

    @property
    def is_template(self) -> bool:
        return bool(_PLACEHOLDER.search(self.english))


def _pattern(english: str) -> re.Pattern:
    parts, at, named = [], 0, set()
    for placeholder in _PLACEHOLDER.finditer(english):
        name = placeholder.group(1)
        parts.append(re.escape(english[at:placeholder.start()]))
        if name in named:
            parts.append(f"(?P={name})")
        else:
            parts.append(f"(?P<{name}>-?\\d+)" if name in NUMBERS else f"(?P<{name}>.+?)")
        named.add(name)
        at = placeholder.end()
    parts.append(re.escape(english[at:]))
    return re.compile("".join(parts), re.DOTALL)


class Wording:
    """One gettext domain's catalogues: English in, the customer's language out."""

    def __init__(self, folder: Path, domain: str):
        self.folder = folder
        self.domain = domain

    @functools.cache
    def catalogue(self, language: str) -> dict[tuple[str | None, str], str]:
        """(context, English) -> the text in ``language``; empty for English and unknown languages."""
        path = self.folder / language / "LC_MESSAGES" / f"{self.domain}.po"
        if language == ENGLISH or not path.is_file():
            return {}
        with path.open("rb") as po:
            read = read_po(po, locale=language)
        return {(message.context, message.id): message.string for message in read if message.id and message.string}

    @functools.cache
    def texts(self, language: str = "pl") -> tuple[Text, ...]:
        """The catalogue's English texts: exact ones first, then templates, the longest first."""
        known = [Text(context, english, _pattern(english)) for context, english in self.catalogue(language)]
        return tuple(sorted(known, key=lambda text: (text.is_template, -len(text.english))))

    def find(self, text: str, contexts=(None,)) -> tuple[Text | None, dict]:
        """The entry ``text`` is (within ``contexts``) and the values it carries, else (None, {})."""
        for known in self.texts():
            if known.context in contexts:
                params = known.match(text)
                if params is not None:
                    return known, params
        return None, {}

    def said(self, known: Text, params: dict, language: str) -> str | None:
        """An entry in ``language``, formatted with ``params``; None without a translation."""
        translated = self.catalogue(language).get((known.context, known.english))
        if translated is None:
            return None
        return translated.format(**params) if params else translated

    def say(self, text: str | None, language: str) -> str | None:
        """``text`` (written in English) in ``language``, or as written when the catalogue has no entry."""
        if text is None or language == ENGLISH:
            return text
        known, params = self.find(text)
        return (self.said(known, params, language) if known is not None else None) or text


# What the services write for a customer beyond refusals: transaction descriptions, invoice and
# quote lines (the orders service's and the ledger's), in services/common/locale/<language>/texts.po.
CUSTOMER_TEXTS = Wording(Path(__file__).parent / "locale", "texts")
