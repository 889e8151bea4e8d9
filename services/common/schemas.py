"""marshmallow at every boundary: strict types, unknown fields refused, errors in the API shape."""
from __future__ import annotations

import functools
import unicodedata

import marshmallow as ma
from marshmallow import RAISE, Schema, fields, validate

from services.common.errors import ValidationError
from services.common.money import Money

MESSAGES = {"required": "required", "null": "must not be null", "invalid": "wrong type"}


class StrictSchema(Schema):
    """Unknown fields are an error; every error message is short and stable."""

    class Meta:
        unknown = RAISE

    @ma.pre_load
    def _refuse_nul_characters(self, data, **kwargs):
        # PostgreSQL cannot store U+0000 in text: refuse it as bad input instead of failing later.
        if isinstance(data, dict):
            bad = {name: ["must not contain NUL characters"] for name, value in data.items() if _has_nul(value)}
            if bad:
                raise ma.ValidationError(bad)
        return data


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


class TrimmedString(fields.String):
    """A string with surrounding whitespace removed before it is validated."""

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).strip()


def text(max_length: int, *, required: bool = False, allow_none: bool = False, min_length: int = 1,
         **kwargs) -> fields.String:
    """A string that must not be blank (after trimming) and has a length limit."""
    return TrimmedString(
        required=required, allow_none=allow_none, error_messages=MESSAGES,
        validate=validate.Length(min=min_length, max=max_length,
                                 error=f"must be {min_length} to {max_length} characters"),
        **kwargs)


# Zero-width joiners shape letters in Persian, the Indic scripts and emoji: the only format
# characters a name may need. Every other one (bidi overrides and isolates above all, which
# reorder what a reader sees around them) has no place in one line of text.
_JOINERS = frozenset("\u200c\u200d")
_NOT_PRINTABLE = frozenset(("Cc", "Cf", "Cs", "Zl", "Zp"))


def printable_line(value: str) -> bool:
    """Whether ``value`` is one line of printable text: no line breaks, control or bidi characters."""
    return not any(unicodedata.category(char) in _NOT_PRINTABLE and char not in _JOINERS for char in value)


class OneLineText(TrimmedString):
    """Text shown as one line on a page, an invoice or in an e-mail (names, city, address, company
    name, reasons): a line break there would let a customer write a paragraph of their own into
    a genuine Introserv mail, and a bidi override would show a reader something else."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if not printable_line(text):
            raise ma.ValidationError("must be one line of printable text: no line breaks, control "
                                     "characters or bidi controls")
        return text


def one_line(max_length: int, *, required: bool = False, allow_none: bool = False, min_length: int = 1,
             **kwargs) -> fields.String:
    """Like :func:`text`, and one line of printable text (:class:`OneLineText`)."""
    return OneLineText(
        required=required, allow_none=allow_none, error_messages=MESSAGES,
        validate=validate.Length(min=min_length, max=max_length,
                                 error=f"must be {min_length} to {max_length} characters"),
        **kwargs)


class StrictBoolean(fields.Boolean):
    """Only JSON true/false: "yes", 1 or "true" are wrong types."""

    def __init__(self, **kwargs):
        kwargs.setdefault("error_messages", MESSAGES)
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class StrictInteger(fields.Integer):
    """Only JSON integers: 1.0, "1" and true are wrong types."""

    def __init__(self, **kwargs):
        kwargs.setdefault("error_messages", MESSAGES)
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class MoneyField(fields.Field):
    """``{"amount": "12.50", "currency": "EUR"}`` <-> :class:`Money`; a float is refused."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return Money.from_wire(value, attr or "amount")
        except ValidationError as exc:
            raise ma.ValidationError(next(iter(exc.fields.values()))) from None

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else value.to_wire()


def flatten(messages, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages -> ``{"postal_address.city": ["required"]}``."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "_schema":
                name = prefix or "_schema"
            flat.update(flatten(value, name))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        flat[prefix] = [("unknown field" if m == "Unknown field." else m) for m in messages]
    elif isinstance(messages, list):
        for item in messages:
            flat.update(flatten(item, prefix))
    else:
        flat[prefix] = [str(messages)]
    return flat


def load(schema: type[Schema], data, *, partial: bool = False):
    """Validate ``data`` with the schema (a class) or raise the API's ``validation_error``."""
    if not isinstance(data, dict):
        raise ValidationError({"_body": ["must be a JSON object"]})
    try:
        return built_once(schema).load(data, partial=partial)
    except ma.ValidationError as exc:
        raise ValidationError(flatten(exc.messages)) from None


@functools.cache
def built_once(schema: type[Schema]) -> Schema:
    """The one instance of a schema class. Building one copies every declared field (about 0.1 ms,
    most of a small load); loading keeps nothing on the instance, so green threads share it."""
    return schema()
