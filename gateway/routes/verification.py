"""Phone verification by flash call, voice call or SMS (docs/requirements.md S7, P6)."""
from __future__ import annotations

from gateway.http import route
from services.verification.schemas import (CheckResultSchema, CheckVerificationSchema, StartVerificationSchema,
                                           VerificationSchema)

TAGS = ("verification",)


class VerificationRoutes:
    @route("POST", "/api/v1/verifications", body=StartVerificationSchema, response=VerificationSchema, status=201,
           summary="Call or text the profile's phone with a 4-digit code", tags=TAGS,
           errors=(400, 401, 422, 429, 503),
           description="The number is the profile's. 422 `phone_missing` (no number in the profile), "
                       "`phone_not_allowed` (a country or number type we do not call), "
                       "`channel_not_supported` (a landline takes only `voice`); 429 `rate_limited` with "
                       "Retry-After (3 starts per number in 10 minutes, 10 per account a day); 503 "
                       "`verification_unavailable` when neither gateway could call: contact support. "
                       "The code lives 5 minutes.")
    def start_verification(self, call):
        profile = self.profile.get(call.account_id)
        body = call.body
        return 201, self.verification.start(call.account_id, profile["phone"], body["channel"], body["purpose"],
                                            body["operation"], profile.get("language", "en"))

    @route("POST", "/api/v1/verifications/<verification_id>/check", body=CheckVerificationSchema,
           response=CheckResultSchema, summary="Confirm a verification with its code", tags=TAGS,
           errors=(400, 401, 404, 410, 422),
           description="422 `wrong_code` with `details.attempts_left`; 410 `verification_expired` once "
                       "the code is 5 minutes old or 5 wrong codes were typed (`details.reason`). Another "
                       "customer's verification is 404. Purpose `phone` marks the profile's phone verified "
                       "before this answer: the next `GET /api/v1/profile` says `phone_verified: true` (when the "
                       "number is still the profile's). Checking the right code again answers 200 again.")
    def check_verification(self, call, verification_id):
        checked = self.verification.check(verification_id, call.body["code"], account_id=call.account_id)
        if checked.get("purpose") == "phone":
            # Read-your-writes: profile records it now, having asked the verification service itself;
            # its phone_verified event stays the fallback and finds it done.
            self.profile.record_phone_verification(call.account_id, verification_id)
        return 200, checked
