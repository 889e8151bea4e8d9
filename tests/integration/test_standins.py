"""The dev stand-ins as real processes: mail over SMTP and HTTP, telephony over HTTP."""
import email
import email.policy
import smtplib
import threading
import time
from email.message import EmailMessage

import pytest
import requests

from deploy.dev import StandIn
from deploy.dev.mail import read_message
from deploy.ports import free_port

PHONE = "+48600100200"


@pytest.fixture(scope="module")
def mail():
    smtp_port, http_port = free_port(), free_port()
    base = f"http://127.0.0.1:{http_port}"
    with StandIn("deploy.dev.mail", ["--smtp-port", str(smtp_port), "--http-port", str(http_port)], f"{base}/health"):
        yield {"smtp_port": smtp_port, "url": base}


@pytest.fixture
def mailbox(mail):
    requests.delete(f"{mail['url']}/messages", timeout=5)
    requests.put(f"{mail['url']}/control", json={"mode": "ok"}, timeout=5)
    return mail


@pytest.fixture(scope="module")
def telephony():
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with StandIn("deploy.dev.telephony", ["--port", str(port), "--name", "primary", "--hold-seconds", "30"],
                 f"{base}/health"):
        yield base


@pytest.fixture
def gateway(telephony):
    requests.delete(f"{telephony}/calls", timeout=5)
    requests.put(f"{telephony}/control", json={"mode": "ok"}, timeout=5)
    yield telephony
    requests.put(f"{telephony}/control", json={"mode": "ok"}, timeout=5)


def invoice_mail(to="jan.kowalski@example.com") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Introserv <billing@introserv.test>"
    message["To"] = to
    message["Subject"] = "Zamówienie 42: faktura 2026/000123"
    message.set_content("Dzień dobry,\nw załączniku faktura.")
    message.add_alternative("<p>Dzień dobry, w załączniku faktura.</p>", subtype="html")
    message.add_attachment(b"%PDF-1.4 " + bytes(range(256)) * 4, maintype="application", subtype="pdf",
                           filename="faktura-2026-000123.pdf")
    return message


def send(mailbox, message):
    with smtplib.SMTP("127.0.0.1", mailbox["smtp_port"], timeout=5) as smtp:
        smtp.send_message(message)


def messages(mailbox, **params):
    return requests.get(f"{mailbox['url']}/messages", params=params, timeout=5).json()["items"]


# --- mail -----------------------------------------------------------------------------------

def test_mail_sent_over_smtp_is_listed_decoded_for_its_recipient(mailbox):
    send(mailbox, invoice_mail())
    [item] = messages(mailbox, to="Jan.Kowalski@example.com")
    assert item["subject"] == "Zamówienie 42: faktura 2026/000123"
    assert item["from"] == "Introserv <billing@introserv.test>"
    assert item["to"] == ["jan.kowalski@example.com"]
    assert item["text"] == "Dzień dobry,\nw załączniku faktura.\n"
    assert "w załączniku" in item["html"]
    assert item["attachments"] == [{"filename": "faktura-2026-000123.pdf", "content_type": "application/pdf",
                                    "size": 9 + 1024}]
    assert item["received_at"].endswith("Z")


def test_mail_listing_is_newest_first_and_filtered_by_recipient(mailbox):
    for n in range(3):
        message = invoice_mail("anna+billing@example.com" if n != 1 else "piotr@example.com")
        message.replace_header("Subject", f"message {n}")
        send(mailbox, message)
    assert [m["subject"] for m in messages(mailbox, to="anna+billing@example.com")] == ["message 2", "message 0"]
    assert [m["subject"] for m in messages(mailbox)] == ["message 2", "message 1", "message 0"]


def test_mail_read_with_headers_parsed_once_reads_as_the_default_policy_does():
    """The stand-in parses each header line once (deploy/dev/mail.py); every message still reads as
    Python's default policy reads it, however many messages share its lines."""
    plain = EmailMessage()
    plain["From"] = "=?utf-8?q?Biuro_Introserv?= <billing@introserv.test>"
    plain["To"] = "anna@example.com"
    plain["Subject"] = "Twoje zamówienie"
    plain.set_content("Bez załącznika.")
    for message in (invoice_mail(), invoice_mail("piotr@example.com"), plain, invoice_mail()):
        raw = message.as_bytes()
        by_default = email.message_from_bytes(raw, policy=email.policy.default)
        read = read_message(raw, "envelope@introserv.test")
        assert read["subject"] == str(by_default["Subject"]) and read["from"] == str(by_default["From"])
        assert read["text"] == by_default.get_body(("plain",)).get_content().replace("\r\n", "\n")
        assert [a["filename"] for a in read["attachments"]] == [a.get_filename() for a in by_default.iter_attachments()]
    assert read_message(plain.as_bytes(), "e@x")["from"] == "Biuro Introserv <billing@introserv.test>"
    assert read_message(plain.as_bytes(), "e@x")["attachments"] == []


def test_bcc_recipient_sees_the_message_too(mailbox):
    message = invoice_mail()
    message["Bcc"] = "audit@example.com"
    send(mailbox, message)
    assert len(messages(mailbox, to="audit@example.com")) == 1


def test_tempfail_answers_451_and_keeps_nothing(mailbox):
    requests.put(f"{mailbox['url']}/control", json={"mode": "tempfail"}, timeout=5)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(mailbox, invoice_mail())
    assert refused.value.smtp_code == 451
    assert messages(mailbox) == []


def test_permfail_answers_550_and_ok_accepts_again(mailbox):
    requests.put(f"{mailbox['url']}/control", json={"mode": "permfail"}, timeout=5)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(mailbox, invoice_mail())
    assert refused.value.smtp_code == 550
    requests.put(f"{mailbox['url']}/control", json={"mode": "ok"}, timeout=5)
    send(mailbox, invoice_mail())
    assert len(messages(mailbox)) == 1


def test_mail_control_refuses_an_unknown_mode(mailbox):
    answer = requests.put(f"{mailbox['url']}/control", json={"mode": "flaky"}, timeout=5)
    assert answer.status_code == 400


def test_an_unknown_recipient_is_refused_at_rcpt_and_the_others_get_the_message(mailbox):
    control = requests.put(f"{mailbox['url']}/control",
                           json={"mode": "ok", "unknown_recipients": ["Gone@Example.com"]}, timeout=5)
    assert control.json() == {"mode": "ok", "unknown_recipients": ["gone@example.com"]}
    refusal = {"gone@example.com": (550, b"5.1.1 Mail stand-in: recipient address rejected: user unknown")}
    with smtplib.SMTP("127.0.0.1", mailbox["smtp_port"], timeout=5) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            smtp.send_message(invoice_mail(to="gone@example.com"))
        assert refused.value.recipients == refusal
        smtp.rset()
        # One refused among two: the message goes to the other, as a relay does it.
        assert smtp.send_message(invoice_mail(), to_addrs=["gone@example.com", "jan.kowalski@example.com"]) == refusal
    assert [item["to"] for item in messages(mailbox)] == [["jan.kowalski@example.com"]]
    # A control without the list clears it.
    requests.put(f"{mailbox['url']}/control", json={"mode": "ok"}, timeout=5)
    assert requests.get(f"{mailbox['url']}/control", timeout=5).json() == {"mode": "ok", "unknown_recipients": []}
    send(mailbox, invoice_mail(to="gone@example.com"))
    assert len(messages(mailbox, to="gone@example.com")) == 1


@pytest.mark.parametrize("unknown", ["gone@example.com", [1], {"a": 1}])
def test_mail_control_refuses_unknown_recipients_that_are_not_a_list_of_addresses(mailbox, unknown):
    answer = requests.put(f"{mailbox['url']}/control", json={"mode": "permfail", "unknown_recipients": unknown},
                          timeout=5)
    assert answer.status_code == 400
    assert requests.get(f"{mailbox['url']}/control", timeout=5).json() == {"mode": "ok", "unknown_recipients": []}


# --- telephony ---------------------------------------------------------------------------------

def place(gateway, body, key="dev", timeout=5):
    return requests.post(f"{gateway}/v1/calls", json=body, headers={"Authorization": f"Bearer {key}"},
                         timeout=timeout)


def calls(gateway, to=None):
    query = f"?to={to}" if to else ""  # an unescaped "+", as a person would type it
    return requests.get(f"{gateway}/calls{query}", timeout=5).json()["items"]


def test_flash_call_rings_from_the_pool_and_is_listed_with_its_caller_id(gateway):
    answer = place(gateway, {"to": PHONE, "channel": "flash_call"})
    assert answer.status_code == 201
    caller_id = answer.json()["caller_id"]
    assert caller_id.startswith("+4822307") and len(caller_id) == len("+48223071234")
    [call] = calls(gateway, PHONE)
    assert call["channel"] == "flash_call" and call["caller_id"] == caller_id and call["spoken_code"] is None


def test_voice_call_speaks_the_code_it_answers(gateway):
    code = place(gateway, {"to": PHONE, "channel": "voice"}).json()["code"]
    assert len(code) == 4 and code.isdigit()
    assert calls(gateway, PHONE)[0]["spoken_code"] == code


def test_sms_sends_the_given_text(gateway):
    assert place(gateway, {"to": PHONE, "channel": "sms", "text": "Kod: 1234"}).status_code == 201
    [call] = calls(gateway, PHONE)
    assert call["text"] == "Kod: 1234" and call["caller_id"] is None


def test_calls_are_listed_newest_first_and_only_for_the_asked_number(gateway):
    place(gateway, {"to": PHONE, "channel": "voice"})
    place(gateway, {"to": "+48600100201", "channel": "voice"})
    place(gateway, {"to": PHONE, "channel": "flash_call"})
    assert [c["channel"] for c in calls(gateway, PHONE)] == ["flash_call", "voice"]
    assert len(calls(gateway)) == 3


@pytest.mark.parametrize("body, key, status", [
    ({"to": PHONE, "channel": "voice"}, "wrong", 401),
    ({"to": "600100200", "channel": "voice"}, "dev", 422),
    ({"to": PHONE, "channel": "fax"}, "dev", 422),
    ({"to": PHONE, "channel": "sms"}, "dev", 422),
])
def test_telephony_refuses_bad_requests_and_places_nothing(gateway, body, key, status):
    assert place(gateway, body, key=key).status_code == status
    assert calls(gateway) == []


def test_fail_mode_answers_503_at_once(gateway):
    requests.put(f"{gateway}/control", json={"mode": "fail"}, timeout=5)
    started = time.monotonic()
    assert place(gateway, {"to": PHONE, "channel": "flash_call"}).status_code == 503
    assert time.monotonic() - started < 1
    assert calls(gateway) == []


def test_timeout_mode_holds_the_call_while_listing_and_control_keep_answering(gateway):
    requests.put(f"{gateway}/control", json={"mode": "timeout"}, timeout=5)
    held = []
    caller = threading.Thread(target=lambda: held.append(_place_or_time_out(gateway)), daemon=True)
    caller.start()
    time.sleep(0.3)
    assert calls(gateway) == []
    assert requests.put(f"{gateway}/control", json={"mode": "ok"}, timeout=2).json() == {"mode": "ok"}
    assert place(gateway, {"to": PHONE, "channel": "voice"}).status_code == 201
    caller.join(timeout=5)
    assert held == ["timed out"]


def _place_or_time_out(gateway):
    try:
        return place(gateway, {"to": PHONE, "channel": "flash_call"}, timeout=2).status_code
    except requests.Timeout:
        return "timed out"
