"""Headers parsed once (services/common/email_headers.py): the same messages, less work."""
import email
import email.policy
import re
from email.message import EmailMessage

from services.common.email_headers import RECENT_LINES, HeadersParsedOnce, parsing_once


def invoice_mail(policy, number: int) -> bytes:
    mime = EmailMessage(policy=policy)
    mime["From"] = "Introserv <billing@introserv.test>"
    mime["To"] = "jan.kowalski@example.com"
    mime["Subject"] = f"Faktura 2026/{number:06d}: zamówienie VPS-2, okres jednego miesiąca"
    mime.set_content("Dzień dobry,\nw załączniku faktura.", charset="utf-8", cte="quoted-printable")
    mime.add_alternative("<p>Dzień dobry, w załączniku faktura.</p>", subtype="html", charset="utf-8",
                         cte="quoted-printable")
    mime.add_attachment(b"%PDF-1.4 " + bytes(range(256)) * 8, maintype="application", subtype="pdf",
                        filename=f"faktura-2026-{number:06d}.pdf")
    return mime.as_bytes()


def with_boundaries_named(raw: bytes) -> bytes:
    """The random boundaries named by their order, so that two builds of one message compare."""
    names = {}
    return re.sub(rb"=+\d+==", lambda found: names.setdefault(found[0], b"boundary-%d" % len(names)), raw)


def test_a_message_built_with_headers_parsed_once_has_the_standard_policys_bytes():
    policy = parsing_once(email.policy.SMTP)
    for number in (1, 2, 1, 3):   # the same lines again, and new ones
        mine, standard = invoice_mail(policy, number), invoice_mail(email.policy.SMTP, number)
        assert with_boundaries_named(mine) == with_boundaries_named(standard)
        assert mine != standard   # each build has boundaries of its own: the comparison is not vacuous


def test_a_message_read_with_headers_parsed_once_reads_as_the_default_policy_reads_it():
    raw = invoice_mail(email.policy.SMTP, 7)
    for _ in range(2):
        mine = email.message_from_bytes(raw, policy=parsing_once(email.policy.default))
        standard = email.message_from_bytes(raw, policy=email.policy.default)
        assert str(mine["Subject"]) == str(standard["Subject"])
        assert mine.get_body(("plain",)).get_content() == standard.get_body(("plain",)).get_content()
        assert [part.get_filename() for part in mine.iter_attachments()] == ["faktura-2026-000007.pdf"]


def test_each_header_class_is_built_once_and_each_recent_line_parsed_once():
    headers = HeadersParsedOnce()
    assert headers["subject"] is headers["subject"]   # the standard registry builds a class each time
    assert headers("Subject", "Faktura 1") is headers("Subject", "Faktura 1")
    assert str(headers("Subject", "Faktura 2")) == "Faktura 2"


def test_only_the_recent_lines_are_kept():
    headers = HeadersParsedOnce()
    first = headers("Subject", "the first")
    for n in range(RECENT_LINES):
        headers("Subject", f"line {n}")
    assert headers("Subject", "the first") is not first
    assert HeadersParsedOnce.__call__.cache_info().currsize <= RECENT_LINES
