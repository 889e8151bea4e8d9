"""Delivery over SMTP: the notifier's only door to the mail relay.

``SmtpMailer.send(message)`` hands one rendered :class:`~services.notifier.domain.Message`
to the relay, or raises :class:`TemporaryFailure` (try again after
``retry_delay(attempt)``, at most ``MAX_ATTEMPTS`` times) or :class:`PermanentFailure`
(the relay refused it for good; retrying cannot help). Plain smtplib: under Nameko's
eventlet the sockets are green, so a slow relay stalls only its own worker.
"""
from __future__ import annotations

import email.policy
import hashlib
import os
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

import structlog

from services.common.clock import clock
from services.common.email_headers import parsing_once
from services.common.events import backoff
from services.notifier.domain import Message

DEFAULT_SENDER = "Introserv <no-reply@introserv.example>"
MAX_ATTEMPTS = 8
FIRST_RETRY_SECONDS = 30
LONGEST_RETRY_SECONDS = 3600  # 30 s doubling: the eighth attempt comes about an hour after the first
# SMTP's policy (CRLF, RFC 5322), each header parsed once: building an invoice mail took 7.8 ms of CPU.
SMTP_POLICY = parsing_once(email.policy.SMTP)

log = structlog.get_logger(__name__)


class DeliveryFailure(Exception):
    """The relay did not take the message; ``code`` and ``text`` are its answer when it gave one."""

    def __init__(self, reason: str, code: int | None = None, text: str = ""):
        super().__init__(reason)
        self.code = code
        self.text = text


class TemporaryFailure(DeliveryFailure):
    """Worth trying again later: no connection, a timeout, or a 4xx answer."""


class PermanentFailure(DeliveryFailure):
    """Retrying cannot help: a 5xx answer, or a relay that lacks what our settings need."""


def retry_delay(attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): 30, 60, 120 ... at most an hour."""
    return backoff(attempt, FIRST_RETRY_SECONDS, LONGEST_RETRY_SECONDS)


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class SmtpMailer:
    """Sends messages through one SMTP relay.

    ``use_tls`` speaks TLS from the first byte (SMTPS, usually port 465); ``starttls``
    upgrades a plain connection (usually port 587). Neither is needed for the local
    stand-in on 127.0.0.1:1025.
    """

    host: str = "127.0.0.1"
    port: int = 1025
    starttls: bool = False
    use_tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = DEFAULT_SENDER
    timeout: float = 10.0

    def __post_init__(self):
        if self.starttls and self.use_tls:
            raise ValueError("choose SMTP_SSL (TLS from the start) or SMTP_STARTTLS, not both")
        if not parseaddr(self.sender)[1]:
            raise ValueError(f"MAIL_FROM is not an address: {self.sender!r}")

    @classmethod
    def from_env(cls, environ=None) -> SmtpMailer:
        """Settings from SMTP_HOST, SMTP_PORT, SMTP_STARTTLS, SMTP_SSL, SMTP_USERNAME, SMTP_PASSWORD,
        SMTP_TIMEOUT and MAIL_FROM, each with a default that reaches the local stand-in."""
        env = os.environ if environ is None else environ
        return cls(
            host=env.get("SMTP_HOST") or "127.0.0.1",
            port=int(env.get("SMTP_PORT") or 1025),
            starttls=_flag(env.get("SMTP_STARTTLS")),
            use_tls=_flag(env.get("SMTP_SSL")),
            username=env.get("SMTP_USERNAME") or None,
            password=env.get("SMTP_PASSWORD") or None,
            sender=env.get("MAIL_FROM") or DEFAULT_SENDER,
            timeout=float(env.get("SMTP_TIMEOUT") or 10),
        )

    @property
    def sender_address(self) -> str:
        return parseaddr(self.sender)[1]

    def message_id(self, idempotency_key: str | None) -> str:
        """The Message-ID header: the same idempotency key always gives the same id."""
        domain = self.sender_address.rpartition("@")[2] or "introserv.example"
        if idempotency_key is None:
            return make_msgid(domain=domain)
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
        return f"<notification.{digest}@{domain}>"

    def build(self, message: Message) -> EmailMessage:
        """The MIME message: text and HTML as alternatives, attachments beside them, UTF-8 throughout."""
        mime = EmailMessage(policy=SMTP_POLICY)
        mime["From"] = self.sender
        mime["To"] = message.to
        mime["Subject"] = message.subject
        mime["Date"] = format_datetime(clock.now())
        mime["Message-ID"] = self.message_id(message.idempotency_key)
        # RFC 3834: tells auto-responders (out-of-office) not to answer a notification.
        mime["Auto-Submitted"] = "auto-generated"
        mime["X-Introserv-Kind"] = message.kind
        # Quoted-printable keeps every line 7-bit, so any relay carries it unchanged.
        mime.set_content(message.text, charset="utf-8", cte="quoted-printable")
        if message.html:
            mime.add_alternative(message.html, subtype="html", charset="utf-8", cte="quoted-printable")
        for attachment in message.attachments:
            maintype, _, subtype = attachment.content_type.partition("/")
            mime.add_attachment(attachment.content, maintype=maintype, subtype=subtype or "octet-stream",
                                filename=attachment.filename)
        return mime

    def send(self, message: Message) -> None:
        """Deliver one message on a connection of its own, or raise :class:`TemporaryFailure` /
        :class:`PermanentFailure`."""
        with self.session() as relay:
            relay.send(message)

    def session(self) -> RelaySession:
        """Messages one after another on one connection (a sender's round); use it as a context manager."""
        return RelaySession(self)

    def connect(self) -> smtplib.SMTP:
        """A connection ready for messages: greeted, with TLS and logged in as the settings ask."""
        try:
            if self.use_tls:
                connection = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                              context=ssl.create_default_context())
            else:
                connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        except smtplib.SMTPResponseException as exc:  # the relay greeted with a refusal
            raise _refusal(exc.smtp_code, exc.smtp_error) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TemporaryFailure(f"cannot reach the mail relay {self.host}:{self.port}: {exc!r}") from exc
        try:
            if self.starttls:
                connection.starttls(context=ssl.create_default_context())
            if self.username:
                connection.login(self.username, self.password or "")
        except (smtplib.SMTPException, OSError) as exc:
            _hang_up(connection)
            raise _failure(exc) from exc
        except BaseException:
            _hang_up(connection)
            raise
        return connection


class RelaySession:
    """Messages handed to the relay one after another on one connection: a sender's round.

    A connection costs a TCP handshake, the greeting, EHLO (with STARTTLS or TLS, a TLS handshake,
    and AUTH) and QUIT: more round trips than the message itself. After a message the relay took,
    the next one goes on the same connection, once a NOOP has shown the relay still answers on it
    (a relay may hang up an idle connection); otherwise, and after any failure, on a new one. Each
    message is still sent once per attempt, with the same answers as on a connection of its own.
    """

    def __init__(self, mailer: SmtpMailer):
        self.mailer = mailer
        self._connection: smtplib.SMTP | None = None

    def __enter__(self) -> RelaySession:
        return self

    def __exit__(self, *exc) -> None:
        self._drop()

    def send(self, message: Message) -> None:
        """Deliver one message, or raise :class:`TemporaryFailure` / :class:`PermanentFailure`."""
        mime = self.mailer.build(message)
        connection = self._ready()
        try:
            connection.send_message(mime, from_addr=self.mailer.sender_address, to_addrs=[message.to])
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()   # whatever the relay said, the next message starts on a clean connection
            raise _failure(exc) from exc
        except BaseException:
            self._drop()
            raise
        log.info("mail_sent", kind=message.kind, message_id=mime["Message-ID"])

    def _ready(self) -> smtplib.SMTP:
        if self._connection is not None:
            try:
                if self._connection.noop()[0] == 250:
                    return self._connection
            except (smtplib.SMTPException, OSError):
                pass
            self._drop()
        self._connection = self.mailer.connect()
        return self._connection

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            _hang_up(connection)


def _failure(exc: smtplib.SMTPException | OSError) -> DeliveryFailure:
    """What a failed exchange with the relay means for the message: try again later, or never."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(exc.recipients.values()))
        return _refusal(code, text)
    if isinstance(exc, smtplib.SMTPResponseException):
        return _refusal(exc.smtp_code, exc.smtp_error)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        # Our settings ask for STARTTLS, AUTH or SMTPUTF8 that this relay lacks: no retry fixes that.
        return PermanentFailure(f"the mail relay cannot do what the settings ask: {exc}")
    return TemporaryFailure(f"the mail relay connection failed: {exc!r}")   # dropped connection, timeout, TLS


def _refusal(code: int, text) -> DeliveryFailure:
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    if 500 <= code <= 599:
        return PermanentFailure(f"the mail relay refused the message: {code} {text}", code, text)
    return TemporaryFailure(f"the mail relay deferred the message: {code} {text}", code, text)


def _hang_up(connection: smtplib.SMTP) -> None:
    # Once DATA is accepted the message is the relay's; a failing QUIT must not make us send it twice.
    try:
        connection.quit()
    except (smtplib.SMTPException, OSError):
        connection.close()
