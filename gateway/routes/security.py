"""Security settings, login history and the security timeline (docs/requirements.md S2-S6)."""
from __future__ import annotations

from gateway.http import route
from services.profile.schemas import (IpRestrictionSchema, LoginAttemptSchema, OperationConfirmationSchema,
                                      OtpSchema, PageQuerySchema,
                                      PasswordChangeSchema, RecoveryCodesSchema, SecurityCodeSchema,
                                      SecurityEventSchema, SecuritySchema, TwoFactorDisableSchema,
                                      TwoFactorEnrolmentSchema, TwoFactorStartSchema)

TAGS = ("security",)


def with_your_ip(call, view: dict) -> dict:
    """The security settings and the address the customer is at, so the IP page can offer to add it."""
    return {**view, "your_ip": call.ip}


class SecurityRoutes:
    @route("GET", "/api/v1/security", response=SecuritySchema, tags=TAGS, summary="Security settings",
           errors=(401,),
           description="Whether a security code and 2FA are set (never their values) and the IP restriction "
                       "lines as stored. `last_login` is the previous successful login, not the one that "
                       "opened this session: the newest login other than this session's own (so a later "
                       "login from elsewhere shows too), null when there is none. `your_ip` is the address "
                       "this request came from, the one the IP restriction must cover.")
    def get_security(self, call):
        return 200, with_your_ip(call, self.profile.security_overview(call.account_id, call.session_id))

    @route("PUT", "/api/v1/security/password", body=PasswordChangeSchema, status=204, tags=TAGS,
           summary="Change the password", errors=(400, 401, 422, 429),
           description="422 `wrong_password` (current_password), `password_mismatch`, `weak_password` "
                       "(10 to 128 characters, not a common password, not containing the login). "
                       "Ends every other session of the account; an e-mail tells the customer.")
    def change_password(self, call):
        body = call.body
        self.profile.change_password(call.account_id, call.session_id, body["current_password"],
                                     body["new_password"], body["new_password_confirmation"], call.ip,
                                     body.get("verification_id"))
        return 204, None

    @route("POST", "/api/v1/security/code", body=SecurityCodeSchema, status=201, tags=TAGS,
           summary="Set the security code (once)", errors=(400, 401, 409),
           description="6 to 64 characters, compared ignoring case and spacing. It can be set once "
                       "(409 `already_set` after) and is never shown again; support checks a code they are told.")
    def set_security_code(self, call):
        return 201, self.profile.set_security_code(call.account_id, call.body["code"], call.ip)

    @route("PUT", "/api/v1/security/ip-restriction", body=IpRestrictionSchema, response=SecuritySchema,
           tags=TAGS, summary="Restrict access to IP addresses", errors=(400, 401, 403, 422, 429),
           description="One rule per item: an IPv4 or IPv6 address, a CIDR block or a dash range. Bad lines "
                       "are reported by number in `fields.rules` (400). An empty list removes the "
                       "restriction. 422 `would_lock_out` when the caller's address is not covered and "
                       "confirm_lockout is not true; 422 `wrong_password`. Sessions from addresses no "
                       "longer covered answer 403 `ip_not_allowed` from then on.")
    def set_ip_restriction(self, call):
        body = call.body
        return 200, with_your_ip(call, self.profile.set_ip_restriction(
            call.account_id, body["rules"], body["password"], body["confirm_lockout"], call.ip,
            body.get("verification_id"), session_id=call.session_id))

    @route("PUT", "/api/v1/security/operation-confirmation", body=OperationConfirmationSchema,
           response=SecuritySchema, tags=TAGS, errors=(400, 401, 422, 429),
           summary="Confirm sensitive operations by phone call (on/off)",
           description="When on, cancelling an order, changing the password, the IP list and the phone number "
                       "each need `verification_id`: a verification of purpose `operation` (POST "
                       "/api/v1/verifications) checked within 10 minutes, used once; without it they answer "
                       "422 `verification_required`. Turning it on needs the password and a verified phone "
                       "(422 `phone_missing`); turning it off also needs such a proof.")
    def set_operation_confirmation(self, call):
        body = call.body
        return 200, with_your_ip(call, self.profile.set_operation_confirmation(
            call.account_id, body["enabled"], body["password"], body.get("verification_id"), call.ip,
            session_id=call.session_id))

    @route("GET", "/api/v1/security/logins", query=PageQuerySchema, response=LoginAttemptSchema, many=True,
           tags=TAGS, summary="Login history", errors=(400, 401),
           description="Every login attempt on the account, newest first: time, IP, user agent, outcome.")
    def login_history(self, call):
        return 200, self.profile.login_history(call.account_id, call.query["limit"], call.query["cursor"])

    @route("GET", "/api/v1/security/events", query=PageQuerySchema, response=SecurityEventSchema, many=True,
           tags=TAGS, summary="Security timeline", errors=(400, 401),
           description="Every security-relevant change and new-IP login, newest first.")
    def security_events(self, call):
        return 200, self.profile.security_events(call.account_id, call.query["limit"], call.query["cursor"])

    @route("POST", "/api/v1/security/freeze", status=204, tags=TAGS,
           summary="\"This was not me\": freeze the account", errors=(401,),
           description="Ends every session (this one too) and refuses logins with 403 `account_frozen` "
                       "until support unfreezes the account.")
    def freeze(self, call):
        self.profile.freeze(call.account_id, call.ip)
        return 204, None

    @route("POST", "/api/v1/security/2fa", body=TwoFactorStartSchema, response=TwoFactorEnrolmentSchema,
           status=201, tags=TAGS, summary="Start TOTP enrolment", errors=(400, 401, 409, 422, 429),
           description="Needs the current password (400 without it, 422 `wrong_password`, 429 after 5 wrong "
                       "ones), so that a stolen session cannot turn 2FA on with a secret of its own. Answers "
                       "the secret and an otpauth:// URI for an authenticator app; 2FA is on only after POST "
                       "/api/v1/security/2fa/confirm. 409 `already_enabled`.")
    def start_two_factor(self, call):
        return 201, self.profile.start_two_factor(call.account_id, call.body["password"], call.ip)

    @route("POST", "/api/v1/security/2fa/confirm", body=OtpSchema, response=RecoveryCodesSchema, tags=TAGS,
           summary="Turn 2FA on with a code from the app", errors=(400, 401, 409, 422, 429),
           description="422 `invalid_otp`; wrong codes count like failed logins (429 with Retry-After after 5). "
                       "Answers ten single-use recovery codes, shown only this once.")
    def confirm_two_factor(self, call):
        return 200, self.profile.confirm_two_factor(call.account_id, call.body["otp"], call.ip)

    @route("DELETE", "/api/v1/security/2fa", body=TwoFactorDisableSchema, status=204, tags=TAGS,
           summary="Turn 2FA off", errors=(400, 401, 409, 422, 429),
           description="Needs the password and a valid code (TOTP or recovery): 422 `wrong_password`, "
                       "`invalid_otp`; wrong passwords and wrong codes count like failed logins (429 with "
                       "Retry-After after 5).")
    def disable_two_factor(self, call):
        self.profile.disable_two_factor(call.account_id, call.body["password"], call.body["otp"], call.ip)
        return 204, None
