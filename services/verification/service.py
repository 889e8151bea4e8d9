"""The verification service: phone verification by flash call, voice call or SMS (docs/requirements.md S7, P6)."""
from __future__ import annotations

from nameko.extensions import DependencyProvider

from services.common.base import ServiceBase
from services.common.clock import clock
from services.common.database import Database
from services.common.logging import configure
from services.common.roles import GATEWAY, PROFILE
from services.common.rpc import rpc
from services.verification.application import (Verifications, countries_from_environment,
                                               telephony_from_environment)
from services.verification.models import Base

configure("verification")


class BuiltAtStart(DependencyProvider):
    """One object per container, built from the environment when the service starts.

    The telephony router lives here so that its circuit breaker outlives a single call.
    """

    def __init__(self, build):
        self.build = build
        self.value = None

    def setup(self):
        self.value = self.build()

    def get_dependency(self, worker_ctx):
        return self.value


class VerificationService(ServiceBase):
    name = "verification"

    db = Database(Base.metadata)
    telephony = BuiltAtStart(telephony_from_environment)
    countries = BuiltAtStart(countries_from_environment)

    @property
    def verifications(self) -> Verifications:
        return Verifications(self.db, self.telephony, clock, self.countries)

    # -- docs/CONTRACTS.md: for the gateway and other Introserv systems
    @rpc(roles=GATEWAY)
    def start(self, account_id, phone, channel, purpose, operation=None, language="en"):
        return self.verifications.start(account_id, phone, channel, purpose, operation, language)

    @rpc(roles=GATEWAY)
    def check(self, verification_id, code, account_id=None):
        return self.verifications.check(verification_id, code, account_id)

    # -- docs/CONTRACTS.md: for profile, to record a verified phone before the customer reads it
    @rpc(roles=PROFILE)
    def verified_phone(self, account_id, verification_id):
        return self.verifications.verified_phone(account_id, verification_id)

    # -- docs/CONTRACTS.md: for the services that guard sensitive operations
    @rpc(roles=PROFILE)
    def use_operation_proof(self, account_id, verification_id, operation, reference=None):
        return self.verifications.use_operation_proof(account_id, verification_id, operation, reference)
