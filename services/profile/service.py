"""The profile service: accounts, credentials, sessions, personal data, security and
notification settings."""
from __future__ import annotations


from services.common.base import ServiceBase
from services.common.clock import clock
from services.common.database import Database
from services.common.events import handle_event
from services.common.logging import configure
from services.common.roles import GATEWAY, LEDGER, NOTIFIER, OPERATOR, ORDERS, STAFF
from services.common.rpc import Caller, ServiceRpc, rpc
from services.profile.account_security import AccountSecurity
from services.profile.application import Profiles, make_hasher
from services.profile.confirmation_mail import ConfirmationMail
from services.profile.password_reset import PasswordResets
from services.profile.sessions import Sessions
from services.profile.models import Base

configure("profile")
HASHER = make_hasher()


class ProfileService(ServiceBase):
    name = "profile"

    db = Database(Base.metadata)
    verification = ServiceRpc("verification")
    ledger = ServiceRpc("ledger")  # the balance's currency, when a low-balance threshold is set
    caller = Caller()

    @property
    def profiles(self) -> Profiles:
        return Profiles(self.db, HASHER, clock, self.verification, guard=self.security, ledger=self.ledger)

    @property
    def sessions(self) -> Sessions:
        return Sessions(self.db, HASHER, clock)

    @property
    def security(self) -> AccountSecurity:
        return AccountSecurity(self.db, HASHER, clock, self.verification)

    @property
    def password_resets(self) -> PasswordResets:
        return PasswordResets(self.db, HASHER, clock)

    @property
    def confirmation_mail(self) -> ConfirmationMail:
        return ConfirmationMail(self.db, clock)

    # -- for other Introserv systems (docs/CONTRACTS.md, RPC)
    @rpc(roles=GATEWAY | ORDERS | LEDGER | STAFF)
    def get(self, account_id):
        return self.profiles.get(account_id)

    @rpc(roles=STAFF)
    def find_by_login(self, login):
        return self.profiles.find_by_login(login)

    @rpc(roles=OPERATOR)
    def change_country(self, account_id, country, ticket_id):
        return self.profiles.change_country(account_id, country, ticket_id, caller=self.caller)

    @rpc(roles=OPERATOR)
    def review_company(self, account_id, approved, operator):
        return self.profiles.review_company(account_id, approved, operator, caller=self.caller)

    @rpc(roles=STAFF)
    def check_security_code(self, account_id, code):
        return self.security.check_security_code(account_id, code)

    @rpc(roles=OPERATOR)
    def unfreeze(self, account_id, operator):
        return self.security.unfreeze(account_id, operator, caller=self.caller)

    # -- for support staff's tools (the operator CLI)
    @rpc(roles=STAFF)
    def find_by_email(self, email):
        return self.profiles.find_by_email(email)

    @rpc(roles=OPERATOR)
    def account_overview(self, account_id):
        return self.security.account_overview(account_id)

    @rpc(roles=OPERATOR)
    def freeze_by_operator(self, account_id, operator):
        return self.security.freeze_by_operator(account_id, operator, caller=self.caller)

    # -- for the notifier and the ledger (docs/CONTRACTS.md)
    @rpc(roles=NOTIFIER | OPERATOR)
    def notification_settings(self, account_id):
        return self.profiles.notification_settings(account_id)

    @handle_event("verification", "phone_verified")
    def on_phone_verified(self, payload):
        self.profiles.phone_verified(payload)

    # -- for the gateway, right after a phone check answered verified (read-your-writes)
    @rpc(roles=GATEWAY)
    def record_phone_verification(self, account_id, verification_id):
        return self.profiles.record_phone_verification(account_id, verification_id)

    # -- for the gateway
    @rpc(roles=GATEWAY)
    def register(self, data, ip=None):
        return self.profiles.register(data, ip)

    @rpc(roles=GATEWAY)
    def update(self, account_id, changes, ip=None):
        return self.profiles.update(account_id, changes, ip)

    @rpc(roles=GATEWAY | OPERATOR)
    def get_notifications(self, account_id):
        return self.profiles.get_notifications(account_id)

    @rpc(roles=GATEWAY)
    def update_notifications(self, account_id, settings):
        return self.profiles.update_notifications(account_id, settings)

    # -- sessions (for the gateway)
    @rpc(roles=GATEWAY)
    def log_in(self, login, password, otp, ip, user_agent):
        return self.sessions.log_in(login, password, otp, ip, user_agent)

    @rpc(roles=GATEWAY)
    def authenticate(self, token, ip):
        return self.sessions.authenticate(token, ip)

    @rpc(roles=GATEWAY)
    def log_out(self, token):
        return self.sessions.log_out(token)

    @rpc(roles=GATEWAY)
    def end_other_sessions(self, account_id, session_id, ip=None):
        return self.sessions.end_other_sessions(account_id, session_id, ip)

    @rpc(roles=GATEWAY | OPERATOR)
    def login_history(self, account_id, limit=50, cursor=None):
        return self.sessions.login_history(account_id, limit, cursor)

    @rpc(roles=GATEWAY | OPERATOR)
    def list_sessions(self, account_id, current_session_id=None, limit=50, cursor=None):
        return self.sessions.live_sessions(account_id, current_session_id, limit, cursor)

    @rpc(roles=GATEWAY)
    def end_session(self, account_id, session_id, ip=None):
        return self.sessions.end_session(account_id, session_id, ip)

    # -- password reset by e-mail and the confirmation mail again (for the gateway)
    @rpc(roles=GATEWAY)
    def request_password_reset(self, login=None, email=None, ip=None):
        return self.password_resets.request(login, email, ip)

    @rpc(roles=GATEWAY)
    def confirm_password_reset(self, token, new_password, new_password_confirmation, otp=None, ip=None):
        return self.password_resets.confirm(token, new_password, new_password_confirmation, otp, ip)

    @rpc(roles=GATEWAY)
    def resend_email_confirmation(self, account_id):
        return self.confirmation_mail.resend(account_id)

    # -- security settings (for the gateway)
    @rpc(roles=GATEWAY | OPERATOR)
    def security_overview(self, account_id, session_id=None):
        return self.security.overview(account_id, session_id)

    @rpc(roles=GATEWAY)
    def request_email_change(self, account_id, email, password, ip=None):
        return self.security.request_email_change(account_id, email, password, ip)

    @rpc(roles=GATEWAY)
    def confirm_email(self, token):
        return self.security.confirm_email(token)

    @rpc(roles=GATEWAY)
    def change_password(self, account_id, session_id, current_password, new_password, confirmation, ip=None,
                        verification_id=None):
        return self.security.change_password(account_id, session_id, current_password, new_password,
                                             confirmation, ip, verification_id)

    @rpc(roles=GATEWAY)
    def set_security_code(self, account_id, code, ip=None):
        return self.security.set_security_code(account_id, code, ip)

    @rpc(roles=GATEWAY)
    def set_ip_restriction(self, account_id, rules, password, confirm_lockout, ip, verification_id=None,
                           session_id=None):
        return self.security.set_ip_restriction(account_id, rules, password, confirm_lockout, ip, verification_id,
                                                session_id)

    @rpc(roles=GATEWAY)
    def set_operation_confirmation(self, account_id, enabled, password, verification_id=None, ip=None,
                                   session_id=None):
        return self.security.set_operation_confirmation(account_id, enabled, password, verification_id, ip,
                                                        session_id)

    @rpc(roles=ORDERS)
    def require_operation_proof(self, account_id, operation, verification_id=None, reference=None):
        return self.security.require_operation_proof(account_id, operation, verification_id, reference)

    @rpc(roles=GATEWAY)
    def start_two_factor(self, account_id, password=None, ip=None):
        return self.security.start_two_factor(account_id, password, ip)

    @rpc(roles=GATEWAY)
    def confirm_two_factor(self, account_id, otp, ip=None):
        return self.security.confirm_two_factor(account_id, otp, ip)

    @rpc(roles=GATEWAY)
    def disable_two_factor(self, account_id, password, otp, ip=None):
        return self.security.disable_two_factor(account_id, password, otp, ip)

    @rpc(roles=GATEWAY | OPERATOR)
    def security_events(self, account_id, limit=50, cursor=None):
        return self.security.events(account_id, limit, cursor)

    @rpc(roles=GATEWAY)
    def freeze(self, account_id, ip=None):
        return self.security.freeze(account_id, ip)
