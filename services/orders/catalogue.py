"""The plans customers can order, loaded from the versioned file ``data/catalogue.yml``.

Loading checks the whole file and refuses it with :class:`CatalogueError` (the service
must not start on a broken catalogue); the format is described in ``data/README.md``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import yaml

from services.common.errors import DomainError, ValidationError
from services.common.money import CURRENCIES, Money
from services.orders.ip_pools import IpPool

DEFAULT_PATH = Path(__file__).parent / "data" / "catalogue.yml"
KINDS = ("dedicated", "vps")
FIELD_TYPES = ("string", "choice")
# Every string field has a bound, so no customer text of unlimited size reaches a column.
DEFAULT_MAX_LENGTH = 255
_PLAN_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")
_DATACENTER_CODE = re.compile(r"^[A-Z0-9]{2,10}$")


class CatalogueError(ValueError):
    """The catalogue file is malformed."""


@dataclass(frozen=True)
class OrderField:
    """A field the customer fills in to order a plan: free text with a pattern, or a choice."""

    name: str
    type: str
    options: tuple[str, ...] = ()
    pattern: str | None = None
    max_length: int = DEFAULT_MAX_LENGTH
    from_stock: bool = False   # a choice of the plan's datacenters (``options_from: stock``)

    def problem_with(self, value: Any) -> str | None:
        """What is wrong with a customer's value, in words, or None when it is fine."""
        if value is None:
            return "required"
        if not isinstance(value, str):
            return "must be a string"
        if not value.strip():
            return "must not be empty"
        if self.type == "choice":
            return None if value in self.options else f"must be one of: {', '.join(self.options)}"
        if len(value) > self.max_length:
            return f"must be at most {self.max_length} characters long"
        if self.pattern is not None and re.fullmatch(self.pattern, value) is None:
            return "is not in the required format"
        return None

    def to_wire(self, room: Mapping[str, bool] | None = None) -> dict:
        """A Plan's required field (docs/CONTRACTS.md): {name, type, options} or {name, type, pattern?}.

        A choice of datacenters names each option with whether it has stock now (``room``):
        ``{"value": "WAW1", "available": false}``.
        """
        wire: dict = {"name": self.name, "type": self.type}
        if self.from_stock:
            wire["options"] = [{"value": option, "available": bool((room or {}).get(option, room is None))}
                               for option in self.options]
        elif self.type == "choice":
            wire["options"] = list(self.options)
        elif self.pattern is not None:
            wire["pattern"] = self.pattern
        return wire


@dataclass(frozen=True)
class PeriodOffer:
    months: int
    discount_percent: Decimal = Decimal(0)


@dataclass(frozen=True)
class Plan:
    """A plan of the catalogue. ``stock``: datacenter -> servers in total (None: only the IP pool limits it)."""

    id: str
    kind: str
    name: str
    description: str
    monthly_price: Money
    periods: tuple[PeriodOffer, ...]
    required_fields: tuple[OrderField, ...]
    stock: Mapping[str, int | None] = field(default_factory=dict, hash=False)

    @property
    def period_months(self) -> tuple[int, ...]:
        return tuple(offer.months for offer in self.periods)

    @property
    def datacenters(self) -> tuple[str, ...]:
        return tuple(self.stock)

    def offers(self, period_months: Any) -> bool:
        """Whether the plan is sold for periods of this many months."""
        return (isinstance(period_months, int) and not isinstance(period_months, bool)
                and period_months in self.period_months)

    def price_for(self, period_months: int) -> Money:
        """The whole period's price, VAT included, its discount applied, rounded half up to the cent."""
        if not self.offers(period_months):
            raise ValidationError({"period_months": [
                "must be one of " + ", ".join(str(months) for months in self.period_months)]})
        offer = next(offer for offer in self.periods if offer.months == period_months)
        return self.monthly_price.times(period_months * (100 - offer.discount_percent) / 100)

    def validate_fields(self, fields: Any) -> dict:
        """The customer's fields for this plan, checked; ValidationError keyed ``fields.<name>`` lists every problem."""
        if not isinstance(fields, Mapping):
            raise ValidationError({"fields": ["must be an object"]})
        problems: dict[str, list[str]] = {}
        for spec in self.required_fields:
            problem = spec.problem_with(fields.get(spec.name))
            if problem:
                problems[f"fields.{spec.name}"] = [problem]
        known = {spec.name for spec in self.required_fields}
        for name in fields:
            if name not in known:
                problems[f"fields.{name}"] = ["unknown field"]
        if problems:
            raise ValidationError(problems)
        return {spec.name: fields[spec.name] for spec in self.required_fields}

    def to_wire(self, room: Mapping[str, bool] | None = None) -> dict:
        """The Plan shape of docs/CONTRACTS.md; ``room``: which datacenters have stock now (None: all)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "description": self.description,
            "prices": [{"period_months": months, "price": self.price_for(months).to_wire()}
                       for months in self.period_months],
            "required_fields": [spec.to_wire(room) for spec in self.required_fields],
            "available": room is None or any(room.get(datacenter, False) for datacenter in self.stock),
        }

    def summary_to_wire(self) -> dict:
        """The plan as an Order shows it: {id, name, kind}."""
        return {"id": self.id, "name": self.name, "kind": self.kind}


@dataclass(frozen=True)
class Datacenter:
    code: str
    name: str
    country: str


@dataclass(frozen=True)
class Catalogue:
    version: str
    currency: str
    datacenters: Mapping[str, Datacenter]
    ip_pools: Mapping[str, IpPool]
    plans: tuple[Plan, ...]

    def plan(self, plan_id: Any) -> Plan:
        """The plan with this id, or unknown_plan (422)."""
        found = next((plan for plan in self.plans if plan.id == plan_id), None)
        if found is None:
            raise DomainError("unknown_plan", "There is no such plan.",
                              fields={"plan_id": ["unknown plan"]},
                              details={"plan_id": plan_id if isinstance(plan_id, str) else None})
        return found

    def list_plans(self, kind: str | None = None) -> list[Plan]:
        """Every plan, or those of one kind (dedicated or vps), cheapest first."""
        if kind is not None and kind not in KINDS:
            raise ValidationError({"kind": [f"must be one of: {', '.join(KINDS)}"]})
        chosen = [plan for plan in self.plans if kind is None or plan.kind == kind]
        return sorted(chosen, key=lambda plan: (KINDS.index(plan.kind), plan.monthly_price.minor))


# --- loading ----------------------------------------------------------------------------

def load_catalogue(path: str | Path | None = None,
                   ip_pools: Mapping[str, list[str]] | None = None) -> Catalogue:
    """Read and check the catalogue file; ``ip_pools`` replaces the file's ranges per datacenter."""
    path = Path(path) if path else DEFAULT_PATH
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except yaml.YAMLError as error:
        raise CatalogueError(f"{path}: not valid YAML: {error}") from None
    return parse_catalogue(data, ip_pools)


def parse_ip_pools(text: str) -> dict[str, list[str]]:
    """Parse an override such as ``WAW1=10.0.0.0/24,10.0.1.5-10.0.1.9;FRA1=10.1.0.0/24``."""
    pools: dict[str, list[str]] = {}
    for entry in filter(None, (part.strip() for part in (text or "").split(";"))):
        datacenter, separator, ranges = entry.partition("=")
        if not separator or not datacenter.strip():
            raise CatalogueError(f"IP pool override {entry!r}: write DATACENTER=range,range")
        pools[datacenter.strip()] = [r.strip() for r in ranges.split(",") if r.strip()]
    return pools


def _fail(where: str, problem: str):
    raise CatalogueError(f"{where}: {problem}")


def _mapping(value: Any, where: str, required: set[str], optional: frozenset[str] | set[str] = frozenset()) -> Mapping:
    if not isinstance(value, Mapping):
        _fail(where, "must be a mapping")
    missing = required - set(value)
    unknown = set(value) - required - set(optional)
    if missing:
        _fail(where, f"missing {', '.join(sorted(missing))}")
    if unknown:
        _fail(where, f"unknown key {', '.join(sorted(map(str, unknown)))}")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(where, "must be a non-empty string")
    return value


def _whole(value: Any, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(where, f"must be a whole number of at least {minimum}")
    return value


def _field(value: Any, where: str, plan_datacenters: tuple[str, ...]) -> OrderField:
    spec = _mapping(value, where, {"name", "type"}, {"options", "options_from", "pattern", "max_length"})
    name, kind = _text(spec["name"], f"{where}.name"), spec["type"]
    if kind not in FIELD_TYPES:
        _fail(f"{where}.type", f"must be one of {', '.join(FIELD_TYPES)}")
    if kind == "choice":
        if "pattern" in spec or "max_length" in spec:
            _fail(where, "a choice has options, not a pattern or max_length")
        if ("options" in spec) == ("options_from" in spec):
            _fail(where, "a choice has either options or options_from: stock")
        if "options_from" in spec:
            if spec["options_from"] != "stock":
                _fail(f"{where}.options_from", "the only source is stock")
            options = plan_datacenters
        else:
            raw = spec["options"]
            if not isinstance(raw, list) or not raw:
                _fail(f"{where}.options", "must be a non-empty list")
            options = tuple(_text(option, f"{where}.options") for option in raw)
        if len(set(options)) != len(options):
            _fail(f"{where}.options", "repeat an option")
        return OrderField(name=name, type=kind, options=tuple(options), from_stock="options_from" in spec)
    if "options" in spec or "options_from" in spec:
        _fail(where, "a string has a pattern, not options")
    pattern = spec.get("pattern")
    if pattern is not None:
        try:
            re.compile(_text(pattern, f"{where}.pattern"))
        except re.error as error:
            _fail(f"{where}.pattern", f"not a regular expression: {error}")
    max_length = _whole(spec.get("max_length", DEFAULT_MAX_LENGTH), f"{where}.max_length", 1)
    return OrderField(name=name, type=kind, pattern=pattern, max_length=max_length)


def _periods(value: Any, where: str) -> tuple[PeriodOffer, ...]:
    if not isinstance(value, Mapping) or not value:
        _fail(where, "must map months to a discount percent")
    offers = []
    for months, discount in value.items():
        _whole(months, f"{where}.{months}", 1)
        if isinstance(discount, bool) or not isinstance(discount, (int, str)):
            _fail(f"{where}.{months}", "the discount is a whole number or a quoted decimal")
        try:
            percent = Decimal(str(discount))
        except InvalidOperation:
            _fail(f"{where}.{months}", "the discount is not a number")
        if not 0 <= percent < 100:
            _fail(f"{where}.{months}", "the discount is a percent from 0 to below 100")
        offers.append(PeriodOffer(months, percent))
    return tuple(sorted(offers, key=lambda offer: offer.months))


def _plan(value: Any, where: str, currency: str, datacenters: Mapping, order_fields: Mapping) -> Plan:
    spec = _mapping(value, where, {"id", "kind", "name", "description", "monthly_price", "periods", "stock"})
    plan_id = spec["id"]
    if not isinstance(plan_id, str) or not _PLAN_ID.match(plan_id):
        _fail(f"{where}.id", "must be lower-case letters, digits and hyphens")
    if spec["kind"] not in KINDS:
        _fail(f"{where}.kind", f"must be one of {', '.join(KINDS)}")
    price = spec["monthly_price"]
    if not isinstance(price, str):
        _fail(f"{where}.monthly_price", "must be a quoted decimal string such as \"9.90\"")
    try:
        monthly_price = Money.of(price, currency)
    except ValueError:
        _fail(f"{where}.monthly_price", "must be a decimal with at most two places")
    if monthly_price.minor <= 0:
        _fail(f"{where}.monthly_price", "must be above zero")
    stock = spec["stock"]
    if not isinstance(stock, Mapping) or not stock:
        _fail(f"{where}.stock", "must map datacenters to a number of servers or null")
    for datacenter, servers in stock.items():
        if datacenter not in datacenters:
            _fail(f"{where}.stock", f"unknown datacenter {datacenter}")
        if servers is not None:
            _whole(servers, f"{where}.stock.{datacenter}", 0)
    fields = tuple(_field(item, f"{where} order_fields.{spec['kind']}[{index}]", tuple(stock))
                   for index, item in enumerate(order_fields[spec["kind"]]))
    return Plan(id=plan_id, kind=spec["kind"], name=_text(spec["name"], f"{where}.name"),
                description=_text(spec["description"], f"{where}.description"),
                monthly_price=monthly_price, periods=_periods(spec["periods"], f"{where}.periods"),
                required_fields=fields, stock=MappingProxyType(dict(stock)))


def parse_catalogue(data: Any, ip_pools: Mapping[str, list[str]] | None = None) -> Catalogue:
    """Check catalogue data (as read from the YAML file) and build the catalogue."""
    top = _mapping(data, "catalogue", {"version", "currency", "datacenters", "ip_pools", "order_fields", "plans"})
    version = top["version"]
    if isinstance(version, bool) or not isinstance(version, (int, str)) or str(version).strip() == "":
        _fail("version", "must be a number or a string")
    currency = top["currency"]
    if currency not in CURRENCIES:
        _fail("currency", "unknown currency")

    datacenters: dict[str, Datacenter] = {}
    if not isinstance(top["datacenters"], Mapping) or not top["datacenters"]:
        _fail("datacenters", "must map codes to {name, country}")
    for code, item in top["datacenters"].items():
        if not isinstance(code, str) or not _DATACENTER_CODE.match(code):
            _fail(f"datacenters.{code}", "a code is 2 to 10 capital letters or digits, e.g. WAW1")
        item = _mapping(item, f"datacenters.{code}", {"name", "country"})
        datacenters[code] = Datacenter(code, _text(item["name"], f"datacenters.{code}.name"),
                                       _text(item["country"], f"datacenters.{code}.country"))

    if not isinstance(top["ip_pools"], Mapping):
        _fail("ip_pools", "must map datacenters to lists of ranges")
    ranges = {**top["ip_pools"], **(ip_pools or {})}
    pools: dict[str, IpPool] = {}
    for code, items in ranges.items():
        if code not in datacenters:
            _fail(f"ip_pools.{code}", "unknown datacenter")
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            _fail(f"ip_pools.{code}", "must be a list of ranges")
        try:
            pools[code] = IpPool(items, datacenter=code)
        except ValueError as error:
            _fail(f"ip_pools.{code}", str(error))
    codes = sorted(pools)
    for index, code in enumerate(codes):
        for other in codes[index + 1:]:
            if pools[code].overlaps(pools[other]):
                _fail("ip_pools", f"{code} and {other} share addresses")

    order_fields = _mapping(top["order_fields"], "order_fields", set(KINDS))
    for kind in KINDS:
        if not isinstance(order_fields[kind], list) or not order_fields[kind]:
            _fail(f"order_fields.{kind}", "must be a non-empty list")
        names = [item.get("name") if isinstance(item, Mapping) else None for item in order_fields[kind]]
        if len(set(names)) != len(names):
            _fail(f"order_fields.{kind}", "repeat a field name")

    if not isinstance(top["plans"], list) or not top["plans"]:
        _fail("plans", "must be a non-empty list")
    plans = tuple(_plan(item, f"plans[{index}]", currency, datacenters, order_fields)
                  for index, item in enumerate(top["plans"]))
    seen: set[str] = set()
    for plan in plans:
        if plan.id in seen:
            _fail("plans", f"the id {plan.id} is used twice")
        seen.add(plan.id)
        for code in plan.stock:
            if code not in pools:
                _fail(f"plan {plan.id}", f"stocked in {code}, which has no IP pool")

    return Catalogue(version=str(version), currency=currency,
                     datacenters=MappingProxyType(datacenters), ip_pools=MappingProxyType(pools),
                     plans=plans)
