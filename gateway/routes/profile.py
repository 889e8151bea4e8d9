"""Registration, sessions, personal data and notification settings (docs/requirements.md P, S1, N)."""
from __future__ import annotations

from gateway.http import route
from services.profile.schemas import (ConfirmationResentSchema, EmailChangeSchema, EmailConfirmSchema,
                                      LiveSessionSchema, LoginSchema, NotificationSettingsSchema, PageQuerySchema,
                                      PasswordResetConfirmSchema, PasswordResetRequestSchema, ProfilePatchSchema,
                                      ProfileSchema, RegistrationSchema, ResetAcceptedSchema, SessionSchema)

TAGS = ("profile",)


class ProfileRoutes:
    @route("POST", "/api/v1/accounts", auth=False, body=RegistrationSchema, response=ProfileSchema, status=201,
           summary="Register a customer account", tags=TAGS,
           errors=(400, 409, 422, 429),
           description="409 `login_taken`; 422 `weak_password`. Country is an ISO 3166 alpha-2 code, "
                       "phone an international number normalised to E.164. Names, city, address and company "
                       "name are one line of printable text (400 naming the field). 429 `rate_limited` with "
                       "Retry-After once one client address registered `REGISTRATIONS_PER_IP_HOUR` accounts "
                       "(600 by default) in the last hour.")
    def register(self, call):
        return 201, self.profile.register(call.body, call.ip)

    @route("POST", "/api/v1/sessions", auth=False, body=LoginSchema, response=SessionSchema, status=201,
           summary="Log in", tags=TAGS, errors=(400, 401, 403, 429),
           description="401 `invalid_credentials` (the same for an unknown login), `otp_required`, "
                       "`invalid_otp`; 403 `ip_not_allowed`, `account_frozen`; 429 with Retry-After "
                       "after 5 consecutive failures (exponential backoff, at most 15 minutes) or 30 failures "
                       "a minute from one IP, decided atomically (40 wrong passwords sent at once are judged "
                       "5 times). An address the account logged in from successfully in the last 30 days "
                       "keeps its own count of failures, so a stranger's failures never keep the owner out.")
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
        self.profile.end_other_sessions(call.account_id, call.session_id, call.ip)
        return 204, None

    # A2. The literal paths above (current, others) win over {session_id}: werkzeug tries static
    # parts before converters, whatever the order of declaration.
    @route("GET", "/api/v1/sessions", query=PageQuerySchema, response=LiveSessionSchema, many=True, tags=TAGS,
           summary="The account's live sessions", errors=(400, 401),
           description="Every session of the account that still works (not logged out, ended or expired), "
                       "newest first: when it was opened, from which address and browser, and `last_seen_at`, "
                       "the last request made with it, kept to the minute (written at most once a minute per "
                       "session). `current` is true for the session making this request.")
    def list_sessions(self, call):
        return 200, self.profile.list_sessions(call.account_id, call.session_id, call.query["limit"],
                                               call.query["cursor"])

    @route("DELETE", "/api/v1/sessions/<session_id>", status=204, tags=TAGS, summary="End one session",
           errors=(401, 404),
           description="The session's token stops working at once (401 `unauthenticated`). 404 `not_found` "
                       "for an unknown session, one already ended, and another account's. On the security "
                       "timeline as `session_ended`.")
    def end_session(self, call, session_id):
        self.profile.end_session(call.account_id, session_id, call.ip)
        return 204, None

    @route("POST", "/api/v1/password-reset", auth=False, body=PasswordResetRequestSchema, response=ResetAcceptedSchema,
           status=202, tags=TAGS, summary="Forgot password: mail a reset link", errors=(400, 429),
           description="`{login}` or `{email}`, no session. Answers 202 with the same body whether or not an "
                       "account matches. A matching account that is not frozen gets a link to its main e-mail "
                       "address (every account using that address, for `email`) with a token that works once "
                       "within an hour. 429 `rate_limited` with Retry-After: 20 requests an hour from one client "
                       "address, 5 an hour for one login or address, whether or not it exists "
                       "(`PASSWORD_RESET_PER_IP_HOUR`, `PASSWORD_RESET_PER_NAME_HOUR`); an account gets at most 5 "
                       "reset mails an hour, beyond which requests still answer 202.")
    def request_password_reset(self, call):
        return 202, self.profile.request_password_reset(call.body.get("login"), call.body.get("email"), call.ip)

    @route("POST", "/api/v1/password-reset/confirm", auth=False, body=PasswordResetConfirmSchema, status=204,
           tags=TAGS, summary="Set a new password with a mailed reset token", errors=(400, 401, 403, 404, 410, 422, 429),
           description="No session. Sets the password, ends every session of the account, records "
                       "`password_reset` on the security timeline and tells the main e-mail address. "
                       "404 `token_unknown`; 410 `token_expired` (older than an hour, used, or issued before the "
                       "password last changed or the account was frozen); 401 `otp_required` / `invalid_otp` "
                       "when 2FA is on (a TOTP or a recovery code; wrong codes count like failed logins, 429 "
                       "after 5); 403 `account_frozen` (support unfreezes); 422 `weak_password`, "
                       "`password_mismatch`. A refused request leaves the token usable.")
    def confirm_password_reset(self, call):
        body = call.body
        self.profile.confirm_password_reset(body["token"], body["new_password"], body["new_password_confirmation"],
                                            body.get("otp"), call.ip)
        return 204, None

    @route("GET", "/api/v1/profile", response=ProfileSchema, summary="The customer's profile", tags=TAGS,
           errors=(401,))
    def get_profile(self, call):
        return 200, self.profile.get(call.account_id)

    @route("PATCH", "/api/v1/profile", body=ProfilePatchSchema, response=ProfileSchema, tags=TAGS,
           summary="Edit personal data", errors=(400, 401, 422, 429),
           description="422 `field_immutable` for login, email and country; 400 for an emptied mandatory "
                       "field, and for a line break, control or bidi character in a name, the city, the "
                       "address or the company name. Becoming a company, or changing a company's name or VAT "
                       "id, sets company_verification to `pending` and payments_blocked to true until support "
                       "reviews it. A new phone number (or removing it) needs the current `password` in the "
                       "same body (400 naming `password` without it, 422 `wrong_password`, 429 after 5 wrong "
                       "ones, like logins) and, when the customer confirms sensitive operations by call, a "
                       "`verification_id` for `change_phone` (422 `verification_required`); the new number is "
                       "unverified, the change is on the security timeline and mailed to the main address.")
    def update_profile(self, call):
        return 200, self.profile.update(call.account_id, call.body, call.ip)

    @route("POST", "/api/v1/profile/email-change", body=EmailChangeSchema, status=202, tags=TAGS,
           summary="Ask to change the e-mail address", errors=(400, 401, 422, 429),
           description="Needs the current password (422 `wrong_password`). A confirmation token goes to the "
                       "new address; the address changes only when it is confirmed, and the old address "
                       "is told then. A newer request makes older links unusable.")
    def request_email_change(self, call):
        return 202, self.profile.request_email_change(call.account_id, call.body["email"], call.body["password"],
                                                      call.ip)

    @route("POST", "/api/v1/profile/email/confirm", auth=False, body=EmailConfirmSchema, tags=TAGS,
           summary="Confirm an e-mail address with its token", errors=(400, 404, 410),
           description="No session needed. Confirms the registration address or a pending change. "
                       "404 `token_unknown`; 410 `token_expired` (expired after 24 h, or already used).")
    def confirm_email(self, call):
        return 200, self.profile.confirm_email(call.body["token"])

    @route("POST", "/api/v1/profile/email/resend", response=ConfirmationResentSchema, status=202, tags=TAGS,
           summary="Send the confirmation e-mail again", errors=(401, 409, 429),
           description="To the new address a change waits on, else to the unconfirmed registration address; "
                       "answers which. The registration's earlier links stay good; a change's earlier link stops working "
                       "(only its newest link counts, as with a new request). 409 `nothing_to_confirm` when the address is "
                       "confirmed and no change waits. 429 `rate_limited` with Retry-After: one confirmation "
                       "mail a minute and 5 an hour, the registration's and the change request's own included "
                       "(`EMAIL_RESEND_INTERVAL_SECONDS`, `EMAIL_RESEND_PER_HOUR`).")
    def resend_email_confirmation(self, call):
        return 202, self.profile.resend_email_confirmation(call.account_id)

    @route("GET", "/api/v1/profile/notifications", response=NotificationSettingsSchema, tags=TAGS,
           summary="Notification settings", errors=(401,),
           description="newsletter (default false), low_balance_threshold (money or null), emails "
                       "{invoices, support, complaints}: each an address, or null for the main e-mail.")
    def get_notifications(self, call):
        return 200, self.profile.get_notifications(call.account_id)

    @route("PUT", "/api/v1/profile/notifications", body=NotificationSettingsSchema,
           response=NotificationSettingsSchema, tags=TAGS, summary="Change notification settings",
           errors=(400, 401),
           description="The same shape as GET; a field left out keeps its value, null clears it. "
                       "400 for a bad address, a negative threshold, a float amount, an amount in other "
                       "than ASCII digits, or a threshold in another currency than the balance's.")
    def update_notifications(self, call):
        return 200, self.profile.update_notifications(call.account_id, call.body)
