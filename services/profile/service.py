"""The profile service: accounts, credentials, sessions and personal data."""
from __future__ import annotations

from nameko.web.handlers import http

from services.common.clock import clock
from services.common.database import Database
from services.common.health import HealthCheck
from services.common.logging import LogContext, configure
from services.common.rpc import rpc
from services.profile.application import Profiles, make_hasher
from services.profile.models import Base

configure("profile")
HASHER = make_hasher()


class ProfileService:
    name = "profile"

    db = Database(Base.metadata)
    health = HealthCheck()
    log = LogContext()

    @property
    def profiles(self) -> Profiles:
        return Profiles(self.db, HASHER, clock)

    @http("GET", "/health")
    def health_check(self, request):
        return self.health.response()

    @rpc
    def ping(self):
        return "pong"

    # -- for other Introserv systems (API.md)
    @rpc
    def get(self, account_id):
        return self.profiles.get(account_id)

    @rpc
    def find_by_login(self, login):
        return self.profiles.find_by_login(login)

    @rpc
    def change_country(self, account_id, country, ticket_id):
        return self.profiles.change_country(account_id, country, ticket_id)

    @rpc
    def review_company(self, account_id, approved, operator):
        return self.profiles.review_company(account_id, approved, operator)

    # -- for the gateway
    @rpc
    def register(self, data):
        return self.profiles.register(data)

    @rpc
    def update(self, account_id, changes):
        return self.profiles.update(account_id, changes)

    @rpc
    def log_in(self, login, password, otp, ip, user_agent):
        return self.profiles.log_in(login, password, otp, ip, user_agent)

    @rpc
    def authenticate(self, token, ip):
        return self.profiles.authenticate(token, ip)

    @rpc
    def log_out(self, token):
        return self.profiles.log_out(token)

    @rpc
    def end_other_sessions(self, account_id, session_id):
        return self.profiles.end_other_sessions(account_id, session_id)
