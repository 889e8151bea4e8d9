"""Money as the services speak it: a ``Decimal`` with two places and a currency, never a float.

On the wire it is ``{"amount": "12.50", "currency": "EUR"}``; every answer of the facades has
such values turned into :class:`Money`, and every argument is turned back.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

CENT = Decimal("0.01")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class Money:
    """``Money(Decimal("12.50"), "EUR")`` or ``Money("12.50", "EUR")``; a float is a TypeError."""

    amount: Decimal
    currency: str

    def __post_init__(self):
        amount = self.amount
        if isinstance(amount, (float, bool)):
            raise TypeError("money is never a float: pass a Decimal or a string such as \"12.50\"")
        if isinstance(amount, (str, int)):
            try:
                amount = Decimal(amount.strip() if isinstance(amount, str) else amount)
            except InvalidOperation:
                raise ValueError(f"not a money amount: {self.amount!r}") from None
        if not isinstance(amount, Decimal):
            raise TypeError(f"not a money amount: {self.amount!r}")
        if not amount.is_finite() or amount.quantize(CENT) != amount:
            raise ValueError(f"a money amount has at most two decimal places: {self.amount!r}")
        if not isinstance(self.currency, str) or not _CURRENCY.match(self.currency):
            raise ValueError(f"not a currency code: {self.currency!r}")
        object.__setattr__(self, "amount", amount.quantize(CENT))

    @classmethod
    def from_wire(cls, value: dict) -> Money:
        return cls(Decimal(value["amount"]), value["currency"])

    def to_wire(self) -> dict:
        return {"amount": f"{self.amount:.2f}", "currency": self.currency}

    def _same_currency(self, other: Money) -> None:
        if not isinstance(other, Money) or other.currency != self.currency:
            raise ValueError(f"cannot add {other!r} to {self}")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __str__(self) -> str:
        return f"{self.amount:.2f} {self.currency}"


def is_money(value) -> bool:
    """Whether a JSON value is a money value of the contract."""
    return (isinstance(value, dict) and set(value) == {"amount", "currency"}
            and isinstance(value["amount"], str) and isinstance(value["currency"], str))


def money_in(value):
    """An answer with every ``{amount, currency}`` in it turned into :class:`Money`."""
    if is_money(value):
        return Money.from_wire(value)
    if isinstance(value, dict):
        return {key: money_in(item) for key, item in value.items()}
    if isinstance(value, list):
        return [money_in(item) for item in value]
    return value


def to_json(value):
    """``json.dumps(..., default=to_json)``: Money back to its wire shape."""
    if isinstance(value, Money):
        return value.to_wire()
    if isinstance(value, Decimal):
        raise TypeError("a bare Decimal has no currency: pass Money")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
