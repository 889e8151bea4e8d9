"""The mail relay stand-in: an SMTP server that keeps every message, and an HTTP API to read them.

    python -m deploy.dev.mail --smtp-port 1025 --http-port 8025 --host 127.0.0.1

``GET /messages?to=ADDRESS`` lists what arrived (newest first), ``DELETE /messages``
forgets it, ``PUT /control {"mode": "ok" | "tempfail" | "permfail"}`` makes the SMTP
server refuse messages with 451 or 550, and ``"unknown_recipients": [ADDRESS, ...]`` in the
same body makes it refuse those addresses at RCPT TO with 550 5.1.1, as a relay refuses a
mailbox that does not exist; ``GET /health``. See README.md.
"""
from __future__ import annotations

import argparse
import email
import email.policy
import itertools
import os
from email.message import EmailMessage
from http.server import ThreadingHTTPServer

from aiosmtpd.controller import Controller

from deploy.dev import Record, StandInApi, serve_until_stopped
from services.common.clock import clock, iso
from services.common.email_headers import parsing_once

MODES = {
    "ok": None,
    "tempfail": "451 4.3.0 Mail stand-in: temporary failure, try again later",
    "permfail": "550 5.7.1 Mail stand-in: message refused",
}
UNKNOWN_RECIPIENT = "550 5.1.1 Mail stand-in: recipient address rejected: user unknown"   # at RCPT TO, any mode


class Mailbox(Record):
    """Every message received, newest first, the answer the SMTP server gives (its mode), and the
    addresses it refuses whatever the mode (lower case)."""

    def __init__(self):
        super().__init__(MODES)
        self._ids = itertools.count(1)
        self.unknown_recipients: frozenset[str] = frozenset()

    def receive(self, envelope_from: str, recipients: list[str], content: bytes) -> dict:
        return self.keep({"id": str(next(self._ids)), **read_message(content, envelope_from),
                          "to": list(recipients), "received_at": iso(clock.now())})


# Each header line parsed once (services/common/email_headers.py): 6 to 8 ms an invoice mail before.
POLICY = parsing_once(email.policy.default)


def read_message(content: bytes, envelope_from: str) -> dict:
    """Decode a raw message: headers (RFC 2047 words too), the text and HTML bodies, attachment facts."""
    message: EmailMessage = email.message_from_bytes(content, policy=POLICY)
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    attachments = []
    for part in message.iter_attachments():
        payload = part.get_payload(decode=True) or b""
        attachments.append({"filename": part.get_filename(), "content_type": part.get_content_type(),
                            "size": len(payload)})
    header_from = message.get("From")
    return {
        "from": str(header_from) if header_from else envelope_from,
        "subject": str(message.get("Subject", "")),
        "message_id": str(message.get("Message-ID", "")) or None,  # a relay may get one message twice
        "text": _text_of(text_part),
        "html": _text_of(html_part),
        "attachments": attachments,
    }


def _text_of(part) -> str | None:
    if part is None:
        return None
    try:
        text = part.get_content()
    except (LookupError, UnicodeDecodeError):
        # An unknown or lying charset: show what we can rather than lose the message.
        text = (part.get_payload(decode=True) or b"").decode("utf-8", errors="replace")
    return text.replace("\r\n", "\n")  # SMTP line endings are the wire's business


class SmtpHandler:
    """aiosmtpd handler: answers per the mailbox's mode, keeps what it accepts."""

    def __init__(self, mailbox: Mailbox):
        self.mailbox = mailbox

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.mailbox.unknown_recipients:
            return UNKNOWN_RECIPIENT
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        refusal = MODES.get(self.mailbox.mode)
        if refusal:
            return refusal
        self.mailbox.receive(envelope.mail_from, envelope.rcpt_tos, envelope.original_content or envelope.content)
        return "250 2.0.0 OK: kept by the mail stand-in"


class MailApi(StandInApi):
    """``/messages``: what arrived, for an address with ``?to=``."""

    listing_path = "/messages"

    def health(self) -> dict:
        return {**super().health(), "messages": len(self.record.items)}

    def is_to(self, item: dict, to: str) -> bool:
        return to.strip().lower() in (address.lower() for address in item["to"])

    def control(self, body: dict) -> str | None:
        unknown = body.get("unknown_recipients", [])
        if not isinstance(unknown, list) or not all(isinstance(address, str) for address in unknown):
            return "unknown_recipients must be a list of addresses"
        self.record.unknown_recipients = frozenset(address.strip().lower() for address in unknown)
        return None

    def controls(self) -> dict:
        return {**super().controls(), "unknown_recipients": sorted(self.record.unknown_recipients)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy.dev.mail", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("MAIL_HOST", "127.0.0.1"))
    parser.add_argument("--smtp-port", type=int, default=int(os.environ.get("MAIL_SMTP_PORT", 1025)))
    parser.add_argument("--http-port", type=int, default=int(os.environ.get("MAIL_HTTP_PORT", 8025)))
    parser.add_argument("--verbose", action="store_true", help="log every HTTP request")
    args = parser.parse_args(argv)

    mailbox = Mailbox()
    smtp = Controller(SmtpHandler(mailbox), hostname=args.host, port=args.smtp_port, enable_SMTPUTF8=True)
    smtp.start()
    web = ThreadingHTTPServer((args.host, args.http_port), MailApi.serving(mailbox, args.verbose))
    serve_until_stopped(web, f"mail stand-in: smtp {args.host}:{args.smtp_port}, http http://{args.host}:{args.http_port}",
                        on_stop=smtp.stop)


if __name__ == "__main__":
    main()
