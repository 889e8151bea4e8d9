"""The SMTP mailer against the team's mail stand-in (``deploy.dev.mail``) running as its own process.

The stand-in refuses at the end of DATA when told to (451 or 550), which is where a real
relay refuses a message; a listener that never greets stands in for a hung relay.
The last tests need no server: they pin the MIME shape, the Message-ID and the backoff.
"""
import email
import email.policy
import smtplib
import socket
import time

import pytest

from deploy.ports import free_port
from services.notifier.domain import Attachment, Message, compose
from services.notifier.mailer import (
    DEFAULT_SENDER,
    MAX_ATTEMPTS,
    PermanentFailure,
    SmtpMailer,
    TemporaryFailure,
    retry_delay,
)
from tests.fakes import MailRelay

CUSTOMER = "jan.kowalski@example.com"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 8


@pytest.fixture(scope="module")
def relay():
    with MailRelay() as stand_in:
        yield stand_in


@pytest.fixture
def stand_in(relay):
    relay.reset()
    yield relay
    relay.refuse("ok")


@pytest.fixture
def mailer(stand_in):
    return SmtpMailer(port=stand_in.port, timeout=5)


def invoice_message(to=CUSTOMER, key="invoice_issued:inv-77") -> Message:
    event = {"first_name": "Jan", "invoice_id": "inv-77", "number": "2026/000123", "kind": "invoice",
             "gross": {"amount": "24.48", "currency": "EUR"}, "issued_at": "2026-11-29T10:00:00Z",
             "order_id": "ord-1042"}
    return compose("invoice_issued", "pl", event, to, idempotency_key=key,
                   attachments=(Attachment("faktura-2026-000123.pdf", PDF),))


def plain_message(to=CUSTOMER) -> Message:
    return Message("balance_low", to, "Saldo poniżej progu", "Dzień dobry,\nsaldo: 8,00 EUR.\n", None)


# --- delivery ------------------------------------------------------------------------------

def test_an_invoice_mail_arrives_with_polish_subject_both_bodies_and_the_pdf(mailer, stand_in):
    mailer.send(invoice_message())
    [item] = stand_in.to(CUSTOMER)
    assert item["from"] == DEFAULT_SENDER
    assert item["subject"] == "Faktura 2026/000123"
    assert "24,48 EUR" in item["text"] and "Dzień dobry," in item["text"]
    assert "24,48 EUR" in item["html"] and "Zespół Introserv" in item["html"]
    assert item["attachments"] == [{"filename": "faktura-2026-000123.pdf", "content_type": "application/pdf",
                                    "size": len(PDF)}]


def test_a_text_only_message_arrives_as_text(mailer, stand_in):
    mailer.send(plain_message())
    [item] = stand_in.to(CUSTOMER)
    assert item["text"] == "Dzień dobry,\nsaldo: 8,00 EUR.\n" and item["html"] is None


def test_an_address_with_non_ascii_letters_is_delivered(mailer, stand_in):
    mailer.send(plain_message(to="józef@przykład.pl"))
    assert [item["subject"] for item in stand_in.to("józef@przykład.pl")] == ["Saldo poniżej progu"]


def test_the_sender_comes_from_mail_from(stand_in):
    mailer = SmtpMailer.from_env({"SMTP_PORT": str(stand_in.port), "MAIL_FROM": "Introserv Billing <billing@introserv.example>"})
    mailer.send(plain_message())
    assert stand_in.to(CUSTOMER)[0]["from"] == "Introserv Billing <billing@introserv.example>"


# --- a round's messages on one connection ---------------------------------------------------------

@pytest.fixture
def connections(monkeypatch):
    """Every TCP connection smtplib opens during the test."""
    opened = []
    connect = smtplib.SMTP.connect

    def counted(self, *args, **kwargs):
        opened.append(args)
        return connect(self, *args, **kwargs)
    monkeypatch.setattr(smtplib.SMTP, "connect", counted)
    return opened


def test_a_round_s_messages_go_to_the_relay_on_one_connection(mailer, stand_in, connections):
    with mailer.session() as relay:
        for n in range(3):
            relay.send(plain_message(to=f"klient{n}@example.com"))
    assert len(connections) == 1
    assert [len(stand_in.to(f"klient{n}@example.com")) for n in range(3)] == [1, 1, 1]


def test_after_a_refusal_the_next_message_of_the_round_goes_on_a_new_connection(mailer, stand_in, connections):
    with mailer.session() as relay:
        relay.send(plain_message(to="first@example.com"))
        stand_in.refuse("tempfail")
        with pytest.raises(TemporaryFailure):
            relay.send(plain_message(to="second@example.com"))
        stand_in.refuse("ok")
        relay.send(plain_message(to="third@example.com"))
    assert len(connections) == 2
    assert stand_in.to("second@example.com") == [] and len(stand_in.to("third@example.com")) == 1


def test_a_relay_that_hung_up_between_two_messages_gets_the_second_on_a_new_connection(connections):
    with MailRelay() as relay_process:
        with SmtpMailer(port=relay_process.port, timeout=5).session() as relay:
            relay.send(plain_message(to="before@example.com"))
            relay_process.restart()   # the connection the round holds is gone with the old process
            relay.send(plain_message(to="after@example.com"))
        assert len(relay_process.to("after@example.com")) == 1
    assert len(connections) == 2


# --- failures ------------------------------------------------------------------------------------

def test_a_relay_answering_451_is_a_temporary_failure_with_its_answer(mailer, stand_in):
    stand_in.refuse("tempfail")
    with pytest.raises(TemporaryFailure) as failure:
        mailer.send(invoice_message())
    assert failure.value.code == 451 and "4.3.0" in failure.value.text
    assert stand_in.to(CUSTOMER) == []


def test_a_relay_answering_550_is_a_permanent_failure_with_its_answer(mailer, stand_in):
    stand_in.refuse("permfail")
    with pytest.raises(PermanentFailure) as failure:
        mailer.send(invoice_message())
    assert failure.value.code == 550 and "5.7.1" in failure.value.text
    assert "550" in str(failure.value)


def test_a_message_deferred_once_goes_through_when_the_relay_recovers(mailer, stand_in):
    stand_in.refuse("tempfail")
    with pytest.raises(TemporaryFailure):
        mailer.send(invoice_message())
    stand_in.refuse("ok")
    mailer.send(invoice_message())
    assert len(stand_in.to(CUSTOMER)) == 1


def test_no_relay_listening_is_a_temporary_failure():
    with pytest.raises(TemporaryFailure) as failure:
        SmtpMailer(port=free_port(), timeout=2).send(plain_message())
    assert failure.value.code is None


def test_a_relay_that_never_answers_is_a_temporary_failure_within_the_timeout():
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) but never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        started = time.monotonic()
        with pytest.raises(TemporaryFailure):
            SmtpMailer(port=silent.getsockname()[1], timeout=0.5).send(plain_message())
        assert time.monotonic() - started < 3


def test_credentials_for_a_relay_without_auth_are_a_permanent_failure(stand_in):
    mailer = SmtpMailer(port=stand_in.port, username="introserv", password="secret", timeout=5)
    with pytest.raises(PermanentFailure):
        mailer.send(plain_message())
    assert stand_in.to(CUSTOMER) == []


def test_starttls_with_a_relay_without_tls_is_a_permanent_failure(stand_in):
    with pytest.raises(PermanentFailure):
        SmtpMailer(port=stand_in.port, starttls=True, timeout=5).send(plain_message())


# --- the MIME message, the Message-ID, the settings and the backoff (no server) ----------------------

def parsed(mailer, message):
    raw = mailer.build(message).as_bytes()
    return raw, email.message_from_bytes(raw, policy=email.policy.default)


def test_the_mime_message_is_text_and_html_as_alternatives_with_the_pdf_beside_them():
    raw, mime = parsed(SmtpMailer(), invoice_message())
    assert mime.get_content_type() == "multipart/mixed"
    body, attachment = mime.iter_parts()
    assert [part.get_content_type() for part in body.iter_parts()] == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in body.iter_parts())
    assert attachment.get_filename() == "faktura-2026-000123.pdf"
    assert attachment.get_payload(decode=True) == PDF
    assert mime["Auto-Submitted"] == "auto-generated"
    raw.decode("ascii")  # 7-bit on the wire: Polish letters are encoded, so any relay carries them


def test_the_subject_header_carries_polish_letters_encoded():
    raw, mime = parsed(SmtpMailer(), plain_message())
    assert mime["Subject"] == "Saldo poniżej progu"
    assert b"=?utf-8?" in raw.split(b"\r\n\r\n", 1)[0]


def test_a_resend_keeps_its_message_id_and_another_message_gets_another():
    mailer = SmtpMailer()
    first = mailer.build(invoice_message(key="invoice_issued:inv-77"))["Message-ID"]
    resend = mailer.build(invoice_message(key="invoice_issued:inv-77"))["Message-ID"]
    other = mailer.build(invoice_message(key="invoice_issued:inv-78"))["Message-ID"]
    assert first == resend != other
    assert first.startswith("<") and first.endswith("@introserv.example>")
    assert "inv-77" not in first  # the key is hashed: ids of accounts and orders stay inside


def test_messages_without_a_key_get_unique_ids():
    mailer = SmtpMailer()
    assert mailer.build(plain_message())["Message-ID"] != mailer.build(plain_message())["Message-ID"]


def test_settings_default_to_the_local_stand_in():
    mailer = SmtpMailer.from_env({})
    assert (mailer.host, mailer.port, mailer.starttls, mailer.use_tls, mailer.username) == \
        ("127.0.0.1", 1025, False, False, None)
    assert mailer.sender == "Introserv <no-reply@introserv.example>"


def test_settings_come_from_the_environment():
    mailer = SmtpMailer.from_env({"SMTP_HOST": "relay.example", "SMTP_PORT": "587", "SMTP_STARTTLS": "true",
                                  "SMTP_USERNAME": "panel", "SMTP_PASSWORD": "s3cret", "SMTP_TIMEOUT": "4"})
    assert (mailer.host, mailer.port, mailer.starttls, mailer.username, mailer.password, mailer.timeout) == \
        ("relay.example", 587, True, "panel", "s3cret", 4.0)
    assert "s3cret" not in repr(mailer)


def test_tls_from_the_start_and_starttls_together_are_refused():
    with pytest.raises(ValueError):
        SmtpMailer.from_env({"SMTP_SSL": "1", "SMTP_STARTTLS": "1"})


def test_retries_back_off_exponentially_up_to_an_hour():
    assert [retry_delay(attempt) for attempt in range(1, 5)] == [30, 60, 120, 240]
    assert retry_delay(20) == 3600
    total = sum(retry_delay(attempt) for attempt in range(1, MAX_ATTEMPTS))
    assert 3600 <= total <= 2 * 3600  # a relay down for about an hour does not lose mail
