"""Money: integer minor units inside, ``{"amount": "12.50", "currency": "EUR"}`` outside."""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from services.common.errors import ValidationError

CURRENCIES = {"EUR", "PLN", "USD", "GBP", "CZK", "SEK", "DKK", "HUF", "CHF", "NOK", "RON", "BGN"}
# ASCII digits only: Python's \d and Decimal would also take "１２.５０" (full-width) or Arabic-Indic digits.
_AMOUNT = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,2})?")


@dataclass(frozen=True, order=True)
class Money:
    """An amount in integer minor units (cents) of one currency."""

    minor: int
    currency: str

    def __post_init__(self):
        if isinstance(self.minor, bool) or not isinstance(self.minor, int):
            raise TypeError("Money.minor must be an int")
        if self.currency not in CURRENCIES:
            raise ValueError(f"unknown currency {self.currency!r}")

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def of(cls, amount: str, currency: str) -> Money:
        """``Money.of("12.50", "EUR")``: from a decimal string, exactly."""
        if not isinstance(amount, str) or not _AMOUNT.fullmatch(amount):
            raise ValueError(f"not a money amount: {amount!r}")
        return cls(int(Decimal(amount) * 100), currency)

    @classmethod
    def from_wire(cls, value, field: str = "amount") -> Money:
        """Parse ``{"amount": "12.50", "currency": "EUR"}``; a float or a bad shape is a validation error."""
        if not isinstance(value, dict) or set(value) != {"amount", "currency"}:
            raise ValidationError({field: ["must be {amount, currency}"]})
        amount, currency = value["amount"], value["currency"]
        if not isinstance(amount, str):
            raise ValidationError({field: ["amount must be a decimal string such as \"12.50\", not a number"]})
        if not isinstance(currency, str) or currency not in CURRENCIES:
            raise ValidationError({field: ["unknown currency"]})
        try:
            return cls.of(amount, currency)
        except ValueError:
            raise ValidationError({field: ["amount must be digits 0-9 with at most two decimal places, "
                                           "such as \"12.50\""]}) from None

    def to_wire(self) -> dict:
        return {"amount": self.amount, "currency": self.currency}

    @property
    def amount(self) -> str:
        sign = "-" if self.minor < 0 else ""
        whole, cents = divmod(abs(self.minor), 100)
        return f"{sign}{whole}.{cents:02d}"

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError("Money arithmetic needs Money")
        if other.currency != self.currency:
            raise ValueError(f"currency mismatch: {self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __abs__(self) -> Money:
        return Money(abs(self.minor), self.currency)

    def __bool__(self) -> bool:
        return self.minor != 0

    def is_negative(self) -> bool:
        return self.minor < 0

    def times(self, factor, rounding=ROUND_HALF_UP) -> Money:
        """Multiply by an int, Decimal or Fraction-like, rounding to the cent."""
        value = (Decimal(self.minor) * Decimal(factor)).quantize(Decimal(1), rounding=rounding)
        return Money(int(value), self.currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"
