"""Registration, sessions and personal data (SPEC P, S1)."""
from __future__ import annotations

from gateway.http import route
from services.profile.schemas import LoginSchema, ProfilePatchSchema, ProfileSchema, RegistrationSchema, SessionSchema

TAGS = ("profile",)


class ProfileRoutes:
    @route("POST", "/api/v1/accounts", auth=False, body=RegistrationSchema, response=ProfileSchema, status=201,
           summary="Register a customer account", tags=TAGS,
           errors=(400, 409, 422, 429),
           description="409 `login_taken`; 422 `weak_password`. Country is an ISO 3166 alpha-2 code, "
                       "phone an international number normalised to E.164.")
    def register(self, call):
        return 201, self.profile.register(call.body)

    @route("POST", "/api/v1/sessions", auth=False, body=LoginSchema, response=SessionSchema, status=201,
           summary="Log in", tags=TAGS, errors=(400, 401, 403, 429),
           description="401 `invalid_credentials` (the same for an unknown login), `otp_required`, "
                       "`invalid_otp`; 403 `ip_not_allowed`, `account_frozen`; 429 with Retry-After "
                       "after 5 consecutive failures (exponential backoff) or 30 failures a minute from one IP.")
    def log_in(self, call):
        body = call.body
        return 201, self.profile.log_in(body["login"], body["password"], body.get("otp"), call.ip,
                                        call.user_agent)

    @route("DELETE", "/api/v1/sessions/current", status=204, summary="Log out this session", tags=TAGS,
           errors=(401,))
    def log_out(self, call):
        self.profile.log_out(call.token)
        return 204, None

    @route("DELETE", "/api/v1/sessions/others", status=204, summary="End every other session", tags=TAGS,
           errors=(401,))
    def end_other_sessions(self, call):
        self.profile.end_other_sessions(call.account_id, call.session_id)
        return 204, None

    @route("GET", "/api/v1/profile", response=ProfileSchema, summary="The customer's profile", tags=TAGS,
           errors=(401,))
    def get_profile(self, call):
        return 200, self.profile.get(call.account_id)

    @route("PATCH", "/api/v1/profile", body=ProfilePatchSchema, response=ProfileSchema, tags=TAGS,
           summary="Edit personal data", errors=(400, 401, 422),
           description="422 `field_immutable` for login, email and country; 400 for an emptied mandatory "
                       "field. Becoming a company, or changing a company's name or VAT id, sets "
                       "company_verification to `pending` and payments_blocked to true until support reviews it. "
                       "A new phone number is unverified.")
    def update_profile(self, call):
        return 200, self.profile.update(call.account_id, call.body)
