"""introserv-ops: support staff's tasks on the Introserv billing services, as the operator role.

The command's help (below) is the manual; clients/README.md has examples.
"""
from __future__ import annotations

import getpass
import os
import re
import uuid
from decimal import Decimal, InvalidOperation
from functools import cached_property, wraps

import click
from pika.exceptions import AMQPError
from rich.markup import escape
from rich.progress import Progress

from introserv_clients.deadletters import HANDLER_QUEUES, DeadLetters
from introserv_clients.errors import (BrokerUnavailable, Forbidden, IntroservError, NotFound, Refused,
                                      ServiceUnavailable, ValidationError)
from introserv_clients.money import Money
from introserv_clients.output import Output, fields_table, list_table, when
from introserv_clients.rpc import RpcClient, amqp_uri_for
from introserv_clients.services import Ledger, Orders, Profile

EXIT_ERROR, EXIT_NOT_FOUND, EXIT_FORBIDDEN = 1, 3, 4   # 2, usage, is Click's own
EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_NOT_CONFIRMED, EXIT_AUDIT_FOUND = 5, 6, 7, 8
HELP = """Support staff's tasks on the Introserv billing services, as the operator role.

Every command talks RPC over RabbitMQ (OPERATOR_AMQP_URI or --amqp-uri), but the dead letters,
which are the broker administrator's (AMQP_URI or --admin-amqp-uri); changes are recorded
under --operator (INTROSERV_OPERATOR, else your login name). ACCOUNT is an account id, a login,
or an e-mail address that only one account has. Human tables by default; --json prints one JSON
document on stdout, errors too ({"error": {code, message, fields, details}}).

\b
Exit codes:
  0  done
  1  an unexpected failure
  2  usage: bad arguments, or an e-mail address several accounts share
  3  not found
  4  forbidden: RabbitMQ refused the login, or the role may not do this
  5  refused: invalid, against a business rule, a conflict, a wrong security code
  6  a service or RabbitMQ is unavailable, or did not answer in time
  7  not confirmed at the prompt: nothing changed
  8  the audit found discrepancies
"""
_ACCOUNT_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def exit_code(error: IntroservError) -> int:
    for kind, code in ((NotFound, EXIT_NOT_FOUND), (Forbidden, EXIT_FORBIDDEN), (ServiceUnavailable, EXIT_UNAVAILABLE),
                       (ValidationError, EXIT_REFUSED), (Refused, EXIT_REFUSED)):
        if isinstance(error, kind):
            return code
    return EXIT_ERROR


class Session:
    """One invocation: where to connect, who the operator is, and the clients, made when first needed."""

    def __init__(self, amqp_uri: str, timeout: float, operator: str, admin_amqp_uri: str | None = None):
        self.amqp_uri = amqp_uri
        self.admin_amqp_uri = admin_amqp_uri
        self.timeout = timeout
        self.operator = operator
        self.out = Output()

    @cached_property
    def client(self) -> RpcClient:
        return RpcClient(self.amqp_uri, timeout=self.timeout, name="introserv-ops")

    @cached_property
    def profile(self) -> Profile:
        return Profile(self.client)

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.client)

    @cached_property
    def orders(self) -> Orders:
        return Orders(self.client)

    def close(self) -> None:
        if "client" in self.__dict__:
            self.client.close()

    def account_id(self, account: str) -> str:
        """The id of the account an operator names by id, login or e-mail."""
        if _ACCOUNT_ID.match(account):
            return account.lower()
        if "@" not in account:
            return self.profile.find_by_login(account)["id"]
        found = self.profile.find_by_email(account)
        if not found.items:
            raise NotFound("not_found", f"No account has the e-mail address {account}.")
        if len(found.items) > 1:
            names = ", ".join(f"{item['login']} ({item['id']})" for item in found.items)
            raise click.UsageError(f"{len(found.items)} accounts have the e-mail address {account}: {names}; "
                                   "name one by its login or id.")
        return found.items[0]["id"]


class OpsGroup(click.Group):
    """Turns every refusal into its message and exit code, the same way for every command."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except IntroservError as error:
            session(ctx).out.error(error)
            ctx.exit(exit_code(error))
        except AMQPError as error:   # pika failing outside a call (dead letters): the broker is away
            session(ctx).out.error(BrokerUnavailable(message=f"RabbitMQ failed: {error!r}"))
            ctx.exit(EXIT_UNAVAILABLE)


def session(ctx: click.Context) -> Session:
    return ctx.find_object(Session)


def json_option(command):
    """``--json`` on a command: one JSON document on stdout instead of tables."""
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document (for scripts).")
    @wraps(command)
    def with_json(*args, as_json: bool, **kwargs):
        session(click.get_current_context()).out = Output(as_json)
        return command(*args, **kwargs)
    return with_json


def _operator_default() -> str:
    try:
        return os.environ.get("INTROSERV_OPERATOR") or getpass.getuser()
    except (KeyError, OSError):   # no passwd entry (a container): the name must then be given
        return ""


@click.group(cls=OpsGroup, context_settings={"help_option_names": ["-h", "--help"]}, help=HELP)
@click.option("--amqp-uri", default=lambda: amqp_uri_for("operator"), show_default="$OPERATOR_AMQP_URI, else "
              "amqp://operator:operator@127.0.0.1:5672/", help="RabbitMQ, logged in as the operator role.")
@click.option("--admin-amqp-uri", default=lambda: os.environ.get("AMQP_URI") or "amqp://guest:guest@127.0.0.1:5672/",
              show_default="$AMQP_URI, else guest on 127.0.0.1",
              help="RabbitMQ as its administrator, for the dead letters: reading parked events and putting them "
                   "back into a handler's queue is no role's right.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Seconds to wait for each answer.")
@click.option("--operator", default=_operator_default, show_default="$INTROSERV_OPERATOR, else your login name",
              help="Your name, recorded with every change you make.")
@click.pass_context
def cli(ctx, amqp_uri: str, admin_amqp_uri: str, timeout: float, operator: str):
    ctx.obj = Session(amqp_uri, timeout, operator, admin_amqp_uri)
    ctx.call_on_close(ctx.obj.close)


def _operator(ops: Session) -> str:
    if not ops.operator.strip():
        raise click.UsageError("Say who you are: --operator NAME (or INTROSERV_OPERATOR).")
    return ops.operator


# -- looking customers up


@cli.command()
@click.argument("query")
@json_option
@click.pass_obj
def find(ops: Session, query: str):
    """Find customers by login or e-mail address."""
    items = ops.profile.find_by_email(query).items if "@" in query else [ops.profile.find_by_login(query)]
    if not items:
        raise NotFound("not_found", f"No account has the e-mail address {query}.")
    ops.out.show({"items": items}, list_table(
        f"Accounts for {query}", ["login", "id", "name", "e-mail", "country", "company review"],
        [[p["login"], p["id"], f"{p['first_name']} {p['last_name']}", p["email"], p["country"],
          p["company_verification"]] for p in items]))


@cli.command()
@click.argument("account")
@json_option
@click.pass_obj
def show(ops: Session, account: str):
    """The profile, its state (frozen, company review, security settings) and the balance."""
    account_id = ops.account_id(account)
    overview = ops.profile.account_overview(account_id)
    balance = ops.ledger.get_balance(account_id)
    ops.out.show({**overview, "balance": balance}, fields_table(f"Account {overview['login']}",
                                                                account_rows(overview, balance)))


def account_rows(overview: dict, balance: Money) -> list[tuple[str, object]]:
    """What ``show`` lists of an account, in the order support staff read it."""
    security, last_login = overview["security"], overview["security"]["last_login"]

    def marked(value, flag: bool, yes: str, no: str):
        return value and f"{value} ({yes if flag else no})"
    return [
        ("id", overview["id"]), ("name", f"{overview['first_name']} {overview['last_name']}"),
        ("e-mail", marked(overview["email"], overview["email_confirmed"], "confirmed", "not confirmed")),
        ("phone", marked(overview["phone"], overview["phone_verified"], "verified", "not verified")),
        ("address", f"{overview['address']}, {overview['city']}, {overview['country']}"),
        ("postal address", overview["postal_address"]), ("language", overview["language"]),
        ("type", overview["profile_type"]), ("company", overview["company_name"]), ("VAT id", overview["vat_id"]),
        ("company review", overview["company_verification"]), ("payments blocked", overview["payments_blocked"]),
        ("frozen", overview["frozen"]), ("security code set", security["security_code_set"]),
        ("two-factor", security["two_factor_enabled"]), ("IP restriction", security["ip_restriction"] or None),
        ("last login", last_login and f"{when(last_login['at'])} from {last_login['ip']}"),
        ("created", when(overview["created_at"])), ("balance", balance)]


def page_options(command):
    command = click.option("--cursor", help="The next page (from the previous page's end).")(command)
    return click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)(command)


@cli.command()
@click.argument("account")
@page_options
@json_option
@click.pass_obj
def balance(ops: Session, account: str, limit: int, cursor: str | None):
    """The balance and its latest transactions."""
    account_id = ops.account_id(account)
    money = ops.ledger.get_balance(account_id)
    page = ops.ledger.list_transactions(account_id, limit, cursor)
    ops.out.show({"account_id": account_id, "balance": money,
                  "transactions": {"items": page.items, "next_cursor": page.next_cursor}},
                 f"Balance: [bold]{money}[/]",
                 list_table("Transactions", ["at", "kind", "amount", "balance after", "reference", "description"],
                            [[when(t["at"]), t["kind"], t["amount"], t["balance_after"], t["reference"],
                              t["description"]] for t in page], page.next_cursor))


@cli.command()
@click.argument("account")
@click.option("--status", type=click.Choice(["pending_payment", "active", "overdue", "suspended", "cancelled",
                                             "closed"]), help="Only orders in this status.")
@page_options
@json_option
@click.pass_obj
def orders(ops: Session, account: str, status: str | None, limit: int, cursor: str | None):
    """The account's orders, newest first."""
    page = ops.orders.list_orders(ops.account_id(account), status, limit, cursor)
    ops.out.show({"items": page.items, "next_cursor": page.next_cursor}, list_table(
        "Orders", ["id", "plan", "status", "paid until", "cost", "IP address"],
        [[o["id"], o["plan"]["name"], o["status"], o["paid_until"], o["cost"], o["ip_address"]]
         for o in page], page.next_cursor))


@cli.command()
@click.argument("account")
@page_options
@json_option
@click.pass_obj
def invoices(ops: Session, account: str, limit: int, cursor: str | None):
    """The account's invoices and credit notes, newest first."""
    page = ops.ledger.list_invoices(ops.account_id(account), limit, cursor)
    ops.out.show({"items": page.items, "next_cursor": page.next_cursor}, list_table(
        "Invoices", ["number", "kind", "issued", "gross", "order", "id"],
        [[i["number"], i["kind"], when(i["issued_at"]), i["gross"], i["order_id"], i["id"]] for i in page],
        page.next_cursor))


@cli.command()
@click.argument("account")
@page_options
@json_option
@click.pass_obj
def timeline(ops: Session, account: str, limit: int, cursor: str | None):
    """The security timeline: changes, freezes, security code checks, newest first."""
    page = ops.profile.security_events(ops.account_id(account), limit, cursor)
    ops.out.show({"items": page.items, "next_cursor": page.next_cursor}, list_table(
        "Security timeline", ["at", "what", "IP address", "details"],
        [[when(e["at"]), e["kind"], e["ip"], e["details"] or None] for e in page], page.next_cursor))


# -- changing an account


def _review(ops: Session, account: str, approved: bool) -> None:
    profile = ops.profile.review_company(ops.account_id(account), approved, _operator(ops))
    ops.out.show(profile, f"{profile['company_name']} ({profile['vat_id'] or 'no VAT id'}): company data "
                          f"[bold]{profile['company_verification']}[/]; payments blocked: "
                          f"{'yes' if profile['payments_blocked'] else 'no'}")


@cli.command("approve-company")
@click.argument("account")
@json_option
@click.pass_obj
def approve_company(ops: Session, account: str):
    """Approve the company data an account entered (its invoices can then be paid)."""
    _review(ops, account, True)


@cli.command("refuse-company")
@click.argument("account")
@json_option
@click.pass_obj
def refuse_company(ops: Session, account: str):
    """Refuse the company data an account entered (payments stay blocked)."""
    _review(ops, account, False)


@cli.command("change-country")
@click.argument("account")
@click.argument("country")
@click.option("--ticket", required=True, help="The support ticket that asked for it.")
@json_option
@click.pass_obj
def change_country(ops: Session, account: str, country: str, ticket: str):
    """Change the account's country (ISO code), for a support ticket."""
    profile = ops.profile.change_country(ops.account_id(account), country, ticket)
    ops.out.show(profile, f"{profile['login']}: country is now [bold]{profile['country']}[/] (ticket {ticket})")


@cli.command("check-code")
@click.argument("account")
@click.argument("code", required=False)
@json_option
@click.pass_obj
def check_code(ops: Session, account: str, code: str | None):
    """Whether the security code a caller reads out is right (exit 0) or wrong (exit 5).

    Without CODE it is asked for without echo. Five wrong codes an hour lock checks for the account.
    """
    account_id = ops.account_id(account)
    if code is None:
        code = click.prompt("Security code", hide_input=True, err=True)
    matches = ops.profile.check_security_code(account_id, code)
    ops.out.show({"account_id": account_id, "matches": matches},
                 "[bold green]The code matches.[/]" if matches else "[bold red]The code is wrong.[/]")
    if not matches:
        click.get_current_context().exit(EXIT_REFUSED)


@cli.command()
@click.argument("account")
@json_option
@click.pass_obj
def freeze(ops: Session, account: str):
    """Freeze the account: every session ends and logins are refused until it is unfrozen."""
    state = ops.profile.freeze(ops.account_id(account), _operator(ops))
    ops.out.show(state, f"Account {state['account_id']} is [bold]frozen[/].")


@cli.command()
@click.argument("account")
@json_option
@click.pass_obj
def unfreeze(ops: Session, account: str):
    """Unfreeze the account (after confirming who the caller is)."""
    state = ops.profile.unfreeze(ops.account_id(account), _operator(ops))
    ops.out.show(state, f"Account {state['account_id']} is [bold]no longer frozen[/].")


# -- money


def _amount(value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise click.BadParameter(f"{value!r} is not an amount such as 12.50 or -3.00", param_hint="AMOUNT") from None
    if not amount.is_finite() or amount.quantize(Decimal("0.01")) != amount or amount == 0:
        raise click.BadParameter(f"{value!r}: a non-zero amount with at most two decimal places",
                                 param_hint="AMOUNT")
    return amount


@cli.command(context_settings={"ignore_unknown_options": True})   # so that "-5.00" is an amount, not an option
@click.argument("account")
@click.argument("amount")
@click.option("--reason", required=True, help="Why (shown in the journal).")
@click.option("--idempotency-key", help="Repeat a key to repeat a request safely (default: a new one).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (for scripts).")
@json_option
@click.pass_obj
def adjust(ops: Session, account: str, amount: str, reason: str, idempotency_key: str | None, yes: bool):
    """Correct a balance by AMOUNT (12.50 credits, -12.50 debits), after showing it before and after."""
    change = _amount(amount)
    operator = _operator(ops)
    account_id = ops.account_id(account)
    before = ops.ledger.get_balance(account_id)
    money = Money(change, before.currency)
    ops.out.notes.print(f"Adjust {escape(account)} by {'+' if change > 0 else ''}{money}: balance {before} -> "
                        f"[bold]{before + money}[/]\nReason: {escape(reason)}")
    if not yes and not click.confirm("Apply this adjustment?", default=False, err=True):
        ops.out.notes.print("Not confirmed: nothing changed.")
        click.get_current_context().exit(EXIT_NOT_CONFIRMED)
    transaction = ops.ledger.adjust(account_id, money, idempotency_key or f"ops-adjust:{uuid.uuid4()}", reason,
                                    operator)
    ops.out.show({"account_id": account_id, "balance_before": before, "balance_after": transaction["balance_after"],
                  "transaction": transaction},
                 f"Adjusted: balance {before} -> [bold]{transaction['balance_after']}[/] "
                 f"(transaction {transaction['id']})")


@cli.command("credit-payment")
@click.argument("account")
@click.argument("amount")
@click.option("--reference", required=True, help="The payment's own reference (a bank transfer's title ...).")
@click.option("--method", help="A payment method id offered to this customer (see GET /api/v1/payment-methods).")
@click.option("--idempotency-key", help="Default: ops-payment:REFERENCE, so one reference is credited once.")
@json_option
@click.pass_obj
def credit_payment(ops: Session, account: str, amount: str, reference: str, method: str | None,
                   idempotency_key: str | None):
    """Credit a payment that arrived (a positive AMOUNT in the balance's currency)."""
    value = _amount(amount)
    if value < 0:
        raise click.BadParameter("a payment is a positive amount; use adjust to debit", param_hint="AMOUNT")
    account_id = ops.account_id(account)
    money = Money(value, ops.ledger.get_balance(account_id).currency)
    transaction = ops.ledger.credit_payment(account_id, money, idempotency_key or f"ops-payment:{reference}",
                                            reference, method)
    ops.out.show(transaction, f"Credited {money}: balance [bold]{transaction['balance_after']}[/] "
                              f"(transaction {transaction['id']})")


@cli.command()
@json_option
@click.pass_obj
def audit(ops: Session):
    """Check the books: every balance recomputed from the journal (exit 8 when something is off)."""
    found = ops.ledger.audit()
    if not found:
        ops.out.show({"discrepancies": []}, "[bold green]The books are sound.[/]")
        return
    ops.out.show({"discrepancies": found}, list_table(
        "Discrepancies", ["kind", "account or transaction", "details"],
        [[d["kind"], d.get("account_id") or d.get("transaction_id"),
          {k: v for k, v in d.items() if k not in ("kind", "account_id", "transaction_id")}] for d in found]))
    click.get_current_context().exit(EXIT_AUDIT_FOUND)


# -- dead letters


@cli.group(cls=OpsGroup)
def deadletters():
    """Events whose handler failed for good: list, show and replay them."""


@deadletters.command("list")
@click.option("--queue", help="Only this handler's queue (default: every handler of every service).")
@json_option
@click.pass_obj
def list_dead(ops: Session, queue: str | None):
    """Every parked event: its handler's queue, id, attempts and last error."""
    with DeadLetters(ops.admin_amqp_uri) as dead:
        events = [event for name in ([queue] if queue else HANDLER_QUEUES) for event in dead.parked(name)]
    ops.out.show({"items": [event.to_dict() for event in events]}, list_table(
        f"Dead letters: {len(events)}", ["queue", "id", "attempts", "error"],
        [[event.queue, event.id, event.attempts, event.error] for event in events]))


@deadletters.command("show")
@click.argument("message_id")
@click.option("--queue", help="The handler's queue (default: look in every one).")
@json_option
@click.pass_obj
def show_dead(ops: Session, message_id: str, queue: str | None):
    """One parked event with its payload."""
    with DeadLetters(ops.admin_amqp_uri) as dead:
        event = dead.find(message_id, [queue] if queue else HANDLER_QUEUES)
    if event is None:
        raise NotFound("not_found", f"No parked event has the id {message_id}.")
    ops.out.show(event.to_dict(), fields_table(f"Dead letter {event.id}", [
        ("queue", event.queue), ("attempts", event.attempts), ("error", event.error), ("payload", event.payload)]))


@deadletters.command("replay")
@click.option("--queue", help="Replay this handler's parked events.")
@click.option("--id", "message_id", help="Replay only the event with this id.")
@click.option("--all", "everything", is_flag=True, help="Replay every parked event of every handler.")
@json_option
@click.pass_obj
def replay_dead(ops: Session, queue: str | None, message_id: str | None, everything: bool):
    """Send parked events back to their handler, attempts reset (the handler does each one once)."""
    if not (queue or message_id or everything):
        raise click.UsageError("Say what to replay: --queue NAME, --id ID, or --all.")
    with DeadLetters(ops.admin_amqp_uri) as dead:
        waiting = dead.counts([queue] if queue else HANDLER_QUEUES)
        total = 1 if message_id else sum(waiting.values())
        replayed = 0
        with Progress(console=ops.out.notes, disable=ops.out.as_json or not total) as progress:
            task = progress.add_task("Replaying", total=total)
            for name in waiting:
                replayed += dead.replay(name, message_id, on_replayed=lambda _: progress.advance(task))
    if message_id and not replayed:
        raise NotFound("not_found", f"No parked event has the id {message_id}.")
    ops.out.show({"replayed": replayed}, f"Replayed {replayed} event{'' if replayed == 1 else 's'}.")


def main() -> None:
    cli(prog_name="introserv-ops")
