"""What the customer hears about, where it goes, and how it reads (docs/requirements.md N, P3).

No I/O apart from reading the Jinja templates beside this module: the notifier
service decides *when* to send, this module decides *to whom* and *what*.

Routing (N3): order and money mail goes to the invoices/orders address, support
mail to the support address, abuse mail to the complaints address, each falling
back to the main e-mail. Security mail always goes to the main address (or the
one the event names: the new address to confirm, the old address told of a
change) and is never rerouted. The newsletter goes only with consent.

Every kind below lists the event fields its templates use; the services that
emit the events send exactly these (more is harmless). ``name?`` may be absent
or null; every other field must be present and not null. ``:money`` is
``{"amount": "12.50", "currency": "EUR"}``, ``:date`` is ``YYYY-MM-DD``, ``:time``
is ISO 8601 with a zone, ``:list`` a list of strings; the rest are strings.
Every kind also takes ``first_name``.

| kind                   | goes to    | fields                                                                                                                |
|------------------------|------------|-----------------------------------------------------------------------------------------------------------------------|
| order_created          | invoices   | order_id, plan_name, period_months:int, cost:money, status, order_number?, hostname?                                  |
| order_activated        | invoices   | order_id, plan_name, ip_address, paid_until:date, cost:money, order_number?, hostname?                                |
| order_renewed          | invoices   | order_id, plan_name, period_months:int, paid_until:date, cost:money, order_number?, hostname?                         |
| order_plan_changed     | invoices   | order_id, old_plan_name, plan_name, paid_until:date, charge:money, credit:money, cost:money, order_number?, hostname? |
| order_cancelled        | invoices   | order_id, plan_name, when, refund:money, cancel_at?:date, order_number?, hostname?                                    |
| refund_issued          | invoices   | order_id, amount:money, balance:money                                                                                 |
| renewal_due            | invoices   | order_id, plan_name, paid_until:date, days_left:int, cost:money, auto_renew:bool, order_number?, hostname?            |
| order_overdue          | invoices   | order_id, plan_name, paid_until:date, suspend_on:date, cost:money, order_number?, hostname?                           |
| order_suspended        | invoices   | order_id, plan_name, ip_address, close_on:date, cost:money, order_number?, hostname?                                  |
| order_closed           | invoices   | order_id, plan_name, order_number?, hostname?                                                                         |
| balance_low            | invoices   | balance:money, threshold:money                                                                                        |
| balance_running_out    | invoices   | order_id, plan_name, stops_on:date, days:int, low_balance_days:int, to_pay:money, balance:money                       |
| monthly_statement      | invoices   | from:date, to:date, opening_balance:money, closing_balance:money, transactions:int                                    |
| invoice_issued         | invoices   | invoice_id, number, kind, gross:money, issued_at:time, order_id?                                                      |
| support_reply          | support    | ticket_id, ticket_subject, reply                                                                                      |
| abuse_report           | complaints | report_id, ip_address, summary, respond_by:date, order_id?                                                            |
| email_confirmation     | main       | token                                                                                                                 |
| email_change_requested | named      | token, new_email                                                                                                      |
| email_changed          | named      | old_email, new_email, at:time                                                                                         |
| password_reset         | main       | login, token, expires_at:time, ip_address?                                                                            |
| password_changed       | main       | at:time, ip_address?, reset?:bool                                                                                     |
| phone_changed          | main       | phone?, at:time, ip_address?                                                                                          |
| ip_restriction_changed | main       | rules:list, at:time, ip_address?                                                                                      |
| two_factor_enabled     | main       | at:time, ip_address?                                                                                                  |
| two_factor_disabled    | main       | at:time, ip_address?                                                                                                  |
| new_ip_login           | main       | ip_address, at:time, user_agent?                                                                                      |
| security_code_set      | main       | at:time, ip_address?                                                                                                  |
| account_frozen         | main       | at:time, ip_address?                                                                                                  |
| sessions_ended         | main       | at:time, ip_address?                                                                                                  |
| newsletter             | consent    | subject, text                                                                                                         |

``goes to``: *invoices*, *support*, *complaints* are the N3 addresses with the main
e-mail as fallback; *main* is the main e-mail unless the event names the address
(``email_confirmation`` names the address being confirmed); *named* must be given
the address (``email_change_requested``: the NEW address, ``email_changed``: the
OLD one); *consent* is the main e-mail, only with newsletter consent.

Notes on single fields: ``order_created.status`` is the order's status
(``active`` or ``pending_payment``); ``order_cancelled.when`` is ``now`` or
``end_of_period``; ``invoice_issued.kind`` is ``invoice`` or ``credit_note``;
``renewal_due.auto_renew`` is a bool; ``password_changed.reset`` is true when a reset link set the
password (every session ended, not only the others); ``password_reset`` goes to the main address
the event names (``to``), the token of a "forgot password" request; ``phone_changed.phone`` is the
new number masked (``+48 … 567``), null when the number was removed. Links (``confirm_url``, ``order_url``,
``invoice_url`` ...) are built here from ``PANEL_URL``; an event's own
``confirm_url`` wins over the built one.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, timezone
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from services.common.money import Money

LANGUAGES = ("en", "pl")
DEFAULT_PANEL_URL = "http://127.0.0.1:8000"
TEMPLATES = Path(__file__).with_name("templates")

# Where the panel shows each thing; one place to change if the panel's routes move.
PANEL_PAGES = {
    "confirm_url": "/confirm-email?token={token}",
    "reset_url": "/reset-password?token={token}",
    "order_url": "/orders/{order_id}",
    "invoice_url": "/invoices/{invoice_id}",
    "balance_url": "/balance",
    "security_url": "/security",
    "notifications_url": "/profile/notifications",
}


class Route(StrEnum):
    """Which of the customer's addresses a kind of message goes to."""

    INVOICES = "invoices"      # N3a: orders and money
    SUPPORT = "support"        # N3b
    COMPLAINTS = "complaints"  # N3c: abuse
    MAIN = "main"              # security: the main address or the one the event names
    NAMED = "named"            # security: only the address the event names
    CONSENT = "consent"        # newsletter: the main address, only with consent


@dataclass(frozen=True)
class Kind:
    """One kind of message: where it goes and which event fields its templates use."""

    name: str
    route: Route
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def fields(self) -> tuple[str, ...]:
        return self.required + self.optional


def _kind(name: str, route: Route, fields: str) -> Kind:
    names = ["first_name", *(f.strip() for f in fields.split(",") if f.strip())]
    required = tuple(n for n in names if not n.endswith("?"))
    optional = tuple(n[:-1] for n in names if n.endswith("?"))
    return Kind(name, route, required, optional)


_SECURITY_NOTICE = "at, ip_address?"
KINDS: dict[str, Kind] = {k.name: k for k in (
    _kind("order_created", Route.INVOICES, "order_id, plan_name, period_months, cost, status, order_number?, hostname?"),
    _kind("order_activated", Route.INVOICES, "order_id, plan_name, ip_address, paid_until, cost, order_number?, hostname?"),
    _kind("order_renewed", Route.INVOICES, "order_id, plan_name, period_months, paid_until, cost, order_number?, hostname?"),
    _kind("order_plan_changed", Route.INVOICES,
          "order_id, old_plan_name, plan_name, paid_until, charge, credit, cost, order_number?, hostname?"),
    _kind("order_cancelled", Route.INVOICES, "order_id, plan_name, when, refund, cancel_at?, order_number?, hostname?"),
    _kind("refund_issued", Route.INVOICES, "order_id, amount, balance"),
    _kind("renewal_due", Route.INVOICES, "order_id, plan_name, paid_until, days_left, cost, auto_renew, order_number?, hostname?"),
    _kind("order_overdue", Route.INVOICES, "order_id, plan_name, paid_until, suspend_on, cost, order_number?, hostname?"),
    _kind("order_suspended", Route.INVOICES, "order_id, plan_name, ip_address, close_on, cost, order_number?, hostname?"),
    _kind("order_closed", Route.INVOICES, "order_id, plan_name, order_number?, hostname?"),
    _kind("balance_low", Route.INVOICES, "balance, threshold"),
    _kind("balance_running_out", Route.INVOICES, "order_id, plan_name, stops_on, days, low_balance_days, to_pay, balance"),
    _kind("monthly_statement", Route.INVOICES, "from, to, opening_balance, closing_balance, transactions"),
    _kind("invoice_issued", Route.INVOICES, "invoice_id, number, kind, gross, issued_at, order_id?"),
    _kind("support_reply", Route.SUPPORT, "ticket_id, ticket_subject, reply"),
    _kind("abuse_report", Route.COMPLAINTS, "report_id, ip_address, summary, respond_by, order_id?"),
    _kind("email_confirmation", Route.MAIN, "token"),
    _kind("email_change_requested", Route.NAMED, "token, new_email"),
    _kind("email_changed", Route.NAMED, "old_email, new_email, at"),
    _kind("password_reset", Route.MAIN, "login, token, expires_at, ip_address?"),
    _kind("password_changed", Route.MAIN, _SECURITY_NOTICE + ", reset?"),
    _kind("phone_changed", Route.MAIN, "phone?, " + _SECURITY_NOTICE),
    _kind("ip_restriction_changed", Route.MAIN, "rules, " + _SECURITY_NOTICE),
    _kind("two_factor_enabled", Route.MAIN, _SECURITY_NOTICE),
    _kind("two_factor_disabled", Route.MAIN, _SECURITY_NOTICE),
    _kind("new_ip_login", Route.MAIN, "ip_address, at, user_agent?"),
    _kind("security_code_set", Route.MAIN, _SECURITY_NOTICE),
    _kind("account_frozen", Route.MAIN, _SECURITY_NOTICE),
    _kind("sessions_ended", Route.MAIN, _SECURITY_NOTICE),
    _kind("newsletter", Route.CONSENT, "subject, text"),
)}


class UnknownKind(ValueError):
    """The notifier has no such kind of message."""


class IncompleteEvent(ValueError):
    """An event lacks fields its message needs; the emitting service broke the contract."""


class RecipientRequired(ValueError):
    """A message that must go to an address the event names came without one."""


def kind_named(name: str) -> Kind:
    """The catalogue entry for a kind of message, or :class:`UnknownKind`."""
    try:
        return KINDS[name]
    except KeyError:
        raise UnknownKind(f"unknown kind of message: {name!r}") from None


@dataclass(frozen=True)
class NotificationSettings:
    """The customer's addresses and consent (N1, N3); ``None`` means the main e-mail."""

    main_email: str
    invoices: str | None = None
    support: str | None = None
    complaints: str | None = None
    newsletter: bool = False


def recipient_for(kind: str, settings: NotificationSettings, explicit_to: str | None = None) -> str | None:
    """The address a message of this kind goes to; ``None`` means do not send it.

    ``explicit_to`` is for security mail only (the address being confirmed, the old
    address told of a change); routed mail follows the customer's settings, so an
    explicit address there is a caller's mistake and is refused.
    """
    spec = kind_named(kind)
    if spec.route is Route.NAMED:
        if not explicit_to:
            raise RecipientRequired(f"{kind} must be sent to the address the event names")
        return explicit_to
    if spec.route is Route.MAIN:
        return explicit_to or settings.main_email
    if explicit_to:
        raise ValueError(f"{kind} follows the customer's notification settings; "
                         "an explicit address is only for security mail")
    if spec.route is Route.CONSENT:
        return settings.main_email if settings.newsletter else None
    chosen = {Route.INVOICES: settings.invoices, Route.SUPPORT: settings.support,
              Route.COMPLAINTS: settings.complaints}[spec.route]
    return chosen or settings.main_email


@dataclass(frozen=True)
class Attachment:
    """A file sent with a message, e.g. an invoice PDF."""

    filename: str
    content: bytes
    content_type: str = "application/pdf"


@dataclass(frozen=True)
class Message:
    """A rendered message ready for delivery.

    ``idempotency_key`` identifies the message across resends: the mailer derives
    the Message-ID from it, so a resend is recognisably the same message.
    """

    kind: str
    to: str
    subject: str
    text: str
    html: str | None
    attachments: tuple[Attachment, ...] = ()
    idempotency_key: str | None = None


class Rendered(NamedTuple):
    subject: str
    text: str
    html: str


def render(kind: str, language: str, data: dict[str, Any], panel_url: str | None = None) -> Rendered:
    """Subject, plain text and HTML of a message in the customer's language ("en" or "pl").

    ``panel_url`` defaults to the ``PANEL_URL`` environment variable, then to
    http://127.0.0.1:8000. Raises :class:`IncompleteEvent` when ``data`` lacks a field
    the kind needs (see the table above).
    """
    spec = kind_named(kind)
    if language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}; expected one of {LANGUAGES}")
    context = _context(spec, data, panel_url or os.environ.get("PANEL_URL") or DEFAULT_PANEL_URL)
    env = environment(language)
    text_template = env.get_template(f"{language}/{kind}.txt")
    subject = "".join(text_template.blocks["subject"](text_template.new_context(context)))
    # A subject is one header line: collapse whatever line breaks the template left.
    context["email_subject"] = " ".join(subject.split())
    text = text_template.render(context).strip() + "\n"
    html = env.get_template(f"{language}/{kind}.html").render(context)
    return Rendered(context["email_subject"], text, html)


def compose(kind: str, language: str, data: dict[str, Any], to: str, *,
            attachments: tuple[Attachment, ...] = (), idempotency_key: str | None = None,
            panel_url: str | None = None) -> Message:
    """Render a kind of message for one recipient (see :func:`recipient_for`)."""
    subject, text, html = render(kind, language, data, panel_url)
    return Message(kind, to, subject, text, html, tuple(attachments), idempotency_key)


def _context(spec: Kind, data: dict[str, Any], panel_url: str) -> dict[str, Any]:
    missing = [name for name in spec.required if data.get(name) is None]
    if missing:
        raise IncompleteEvent(f"{spec.name} needs {', '.join(missing)}")
    context = {name: None for name in spec.optional}
    context.update(data)
    return {**panel_links(panel_url, context), **context, "route": spec.route.value,
            "order_ref": order_ref(context)}


def order_ref(data: dict[str, Any]) -> str | None:
    """How a message names an order: its short number and host name (``ORD-000042 (web1.example.com)``);
    the order id for an event sent before orders had numbers."""
    number, hostname = data.get("order_number"), data.get("hostname")
    if not number:
        return data.get("order_id")
    return f"{number} ({hostname})" if hostname else number


def panel_links(panel_url: str, data: dict[str, Any]) -> dict[str, str]:
    """The panel pages a message can point at; a page needing an id the data lacks is left out."""
    base = panel_url.rstrip("/")
    ids = {name: quote(str(value), safe="") for name, value in data.items()
           if isinstance(value, (str, int)) and not isinstance(value, bool)}
    links = {"panel_url": base}
    for name, page in PANEL_PAGES.items():
        try:
            links[name] = base + page.format(**ids)
        except KeyError:
            continue
    return links


# Formatting per language: what a Polish or an English customer expects to read.

def _as_money(value) -> Money:
    return value if isinstance(value, Money) else Money.from_wire(value)


def _group(digits: str, separator: str, minimum: int) -> str:
    if len(digits) < minimum:
        return digits
    groups = []
    while digits:
        digits, groups = digits[:-3], [digits[-3:], *groups]
    return separator.join(groups)


def format_money(value, language: str) -> str:
    """``12,50 EUR`` in Polish, ``EUR 12.50`` in English; accepts Money or its wire form."""
    money = _as_money(value)
    whole, cents = money.amount.lstrip("-").split(".")
    sign = "-" if money.is_negative() else ""
    if language == "pl":
        # Polish groups thousands with a (non-breaking) space, from five digits on.
        return f"{sign}{_group(whole, chr(0xA0), 5)},{cents} {money.currency}"
    return f"{money.currency} {sign}{_group(whole, ',', 4)}.{cents}"


def _as_datetime(value) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"not a time: {value!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _as_date(value) -> date:
    if isinstance(value, datetime):
        return _as_datetime(value).date()
    if isinstance(value, str):
        return _as_datetime(value).date() if "T" in value else date.fromisoformat(value)
    if not isinstance(value, date):
        raise TypeError(f"not a date: {value!r}")
    return value


def format_date(value, language: str) -> str:
    """``29.11.2026`` in Polish, ``2026-11-29`` in English."""
    day = _as_date(value)
    return day.strftime("%d.%m.%Y") if language == "pl" else day.isoformat()


def format_time(value, language: str) -> str:
    """A moment in UTC: ``29.11.2026, 10:00 UTC`` in Polish, ``2026-11-29 10:00 UTC`` in English."""
    moment = _as_datetime(value)
    return f"{format_date(moment, language)}{',' if language == 'pl' else ''} {moment:%H:%M} UTC"


def plural(count: int, language: str, *forms: str) -> str:
    """``1 day``/``2 days``; Polish needs three forms: ``1 dzień``, ``2 dni``, ``5 dni``."""
    if language == "pl":
        one, few, many = forms
        if count == 1:
            word = one
        elif count % 10 in (2, 3, 4) and count % 100 not in (12, 13, 14):
            word = few
        else:
            word = many
    else:
        one, other = forms
        word = one if count == 1 else other
    return f"{count} {word}"


def _paragraphs(text: str) -> Markup:
    """Plain text as HTML paragraphs, escaped, keeping the writer's line breaks."""
    blocks = [block for block in str(text).replace("\r\n", "\n").split("\n\n") if block.strip()]
    return Markup("\n").join(
        Markup("<p>{}</p>").format(Markup("<br>\n").join(escape(line) for line in block.strip().split("\n")))
        for block in blocks)


@cache
def environment(language: str) -> Environment:
    """The Jinja environment of one language; strict, so a template missing a variable raises."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,  # so an included partial ends its own last line
        lstrip_blocks=True,
    )
    env.filters["money"] = lambda value: format_money(value, language)
    env.filters["date"] = lambda value: format_date(value, language)
    env.filters["time"] = lambda value: format_time(value, language)
    env.filters["plural"] = lambda count, *forms: plural(count, language, *forms)
    env.filters["paragraphs"] = _paragraphs
    env.tests["zero"] = lambda value: not _as_money(value)
    return env
