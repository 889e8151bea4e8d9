"""The confirmation e-mail sent again (A1, P3): to the new address a change waits on, else to the
unconfirmed registration address; at most once a minute and a few times an hour, counting the
mails the registration and the change request sent themselves.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from services.common.config import env_int
from services.common.errors import DomainError
from services.profile import domain, security
from services.profile.application import account_or_not_found, issue_email_token
from services.profile.models import EmailToken

HOUR = timedelta(hours=1)


def limits() -> tuple[timedelta, int]:
    """(the least time between two confirmation mails, how many an hour)."""
    return (timedelta(seconds=env_int("EMAIL_RESEND_INTERVAL_SECONDS", 60)),
            env_int("EMAIL_RESEND_PER_HOUR", 5))


class ConfirmationMail:
    def __init__(self, uow, clock):
        self.uow = uow
        self.clock = clock

    def resend(self, account_id: str) -> dict:
        """Send the confirmation mail again: ``{email, purpose}``; 409 ``nothing_to_confirm``, 429."""
        interval, per_hour = limits()
        now = self.clock.now()
        with self.uow.transaction() as session:
            account = account_or_not_found(session, account_id, lock=True)  # one resend at a time
            pending_change = session.scalar(select(EmailToken).where(
                EmailToken.account_id == account.id, EmailToken.purpose == "change", EmailToken.used_at.is_(None),
                EmailToken.expires_at > now).order_by(EmailToken.created_at.desc()).limit(1))
            address, purpose = domain.address_awaiting_confirmation(account, pending_change)
            sent = session.scalars(select(EmailToken.created_at).where(
                EmailToken.account_id == account.id, EmailToken.created_at > now - HOUR)).all()
            wait = max(security.requests_limited(sent, now, 1, interval),
                       security.requests_limited(sent, now, per_hour, HOUR))
            if wait:
                raise DomainError("rate_limited", "A confirmation mail was sent a moment ago; wait and try again.",
                                  details={"retry_after": wait})
            if purpose == "change":
                # As with a new request: only the newest link of a change counts, so two links can
                # never switch the address twice. A registration's earlier links stay good.
                session.execute(update(EmailToken).where(
                    EmailToken.account_id == account.id, EmailToken.purpose == "change",
                    EmailToken.used_at.is_(None)).values(used_at=now))
            issue_email_token(session, account, address, purpose, now)
        return {"email": address, "purpose": purpose}
