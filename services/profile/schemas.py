"""What crosses the wire for the profile service (shared with the gateway's OpenAPI)."""
from __future__ import annotations

import phonenumbers
import pycountry
from email_validator import EmailNotValidError, validate_email
from marshmallow import ValidationError as FieldError
from marshmallow import fields, validate, validates, validates_schema

from services.common.schemas import (MESSAGES, MoneyField, StrictBoolean, StrictInteger, StrictSchema, TrimmedString, one_line,
                                     text)
from services.common.vat_ids import VAT_ID_CHECKS

PROFILE_TYPES = ("individual", "company")
LANGUAGES = ("en", "pl")


def normalise_email(value: str) -> str:
    """Syntax only (no DNS): the address as the customer typed it, domain lower-cased."""
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise FieldError(f"not a valid e-mail address: {exc}") from None


def normalise_country(value: str) -> str:
    if not isinstance(value, str) or len(value) != 2 or pycountry.countries.get(alpha_2=value.upper()) is None:
        raise FieldError("must be an ISO 3166 alpha-2 country code such as PL")
    return value.upper()


def normalise_phone(value: str) -> str:
    """International form (``+48 601 234 567``) to E.164 (``+48601234567``)."""
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise FieldError("must be an international number starting with + and the country code") from None
    if not phonenumbers.is_valid_number(number):
        raise FieldError("is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class Email(TrimmedString):
    def _deserialize(self, value, attr, data, **kwargs):
        return normalise_email(super()._deserialize(value, attr, data, **kwargs))


class Country(TrimmedString):
    def _deserialize(self, value, attr, data, **kwargs):
        return normalise_country(super()._deserialize(value, attr, data, **kwargs))


class Phone(TrimmedString):
    def _deserialize(self, value, attr, data, **kwargs):
        return normalise_phone(super()._deserialize(value, attr, data, **kwargs))


def email(**kwargs):
    return Email(validate=validate.Length(max=254, error="must be at most 254 characters"),
                 error_messages=MESSAGES, **kwargs)


class PostalAddressSchema(StrictSchema):
    line1 = one_line(200, required=True)
    city = one_line(100, required=True)
    postcode = one_line(16, required=True)
    country = Country(required=True, error_messages=MESSAGES)


class EditableProfileSchema(StrictSchema):
    """What the customer may change (PATCH /api/v1/profile)."""

    first_name = one_line(100)
    last_name = one_line(100)
    city = one_line(100)
    address = one_line(200)
    phone = Phone(allow_none=True, error_messages=MESSAGES,
                  validate=validate.Length(max=32, error="must be at most 32 characters"))
    postal_address = fields.Nested(PostalAddressSchema, allow_none=True, error_messages=MESSAGES)
    profile_type = fields.String(validate=validate.OneOf(PROFILE_TYPES, error="must be individual or company"),
                                 error_messages=MESSAGES)
    company_name = one_line(200, allow_none=True)
    vat_id = one_line(20, allow_none=True)
    language = fields.String(validate=validate.OneOf(LANGUAGES, error="must be en or pl"),
                             error_messages=MESSAGES)

    @validates("vat_id")
    def _vat_id_shape(self, value, **_):
        if value is not None and not value.replace(" ", "").replace("-", "").isalnum():
            raise FieldError("may contain only letters and digits")


class RegistrationSchema(EditableProfileSchema):
    login = fields.String(required=True, error_messages=MESSAGES,
                          validate=validate.Length(max=64, error="must be 3 to 32 characters"))
    password = fields.String(required=True, error_messages=MESSAGES,
                             validate=validate.Length(max=1024, error="is too long"))
    email = email(required=True)
    first_name = one_line(100, required=True)
    last_name = one_line(100, required=True)
    city = one_line(100, required=True)
    address = one_line(200, required=True)
    country = Country(required=True, error_messages=MESSAGES)


class ProfilePatchSchema(EditableProfileSchema):
    """PATCH body: the editable fields; login, email and country are named so they can be refused."""

    login = fields.Raw()
    email = fields.Raw()
    country = fields.Raw()
    password = fields.String(error_messages=MESSAGES, validate=validate.Length(max=1024, error="is too long"),
                             metadata={"description": "the current password: required with a new phone "
                                                      "number (400 without it, 422 wrong_password), checked "
                                                      "whenever it is sent"})
    verification_id = text(64, allow_none=True, metadata={
        "description": "a phone verification of purpose operation: required with a new phone number when "
                       "the customer confirms sensitive operations by call (422 verification_required)"})


class LoginSchema(StrictSchema):
    login = fields.String(required=True, error_messages=MESSAGES, validate=validate.Length(max=64))
    password = fields.String(required=True, error_messages=MESSAGES, validate=validate.Length(max=1024))
    otp = fields.String(load_default=None, allow_none=True, error_messages=MESSAGES,
                        validate=validate.Length(max=64))


class SessionSchema(StrictSchema):
    token = fields.String()
    expires_at = fields.String()


class ProfileSchema(StrictSchema):
    """The Profile shape of docs/CONTRACTS.md (response only)."""

    id = fields.String()
    login = fields.String()
    first_name = fields.String()
    last_name = fields.String()
    email = fields.String()
    email_confirmed = fields.Boolean()
    phone = fields.String(allow_none=True)
    phone_verified = fields.Boolean()
    city = fields.String()
    address = fields.String()
    country = fields.String()
    postal_address = fields.Nested(PostalAddressSchema, allow_none=True)
    profile_type = fields.String(validate=validate.OneOf(PROFILE_TYPES))
    company_name = fields.String(allow_none=True)
    vat_id = fields.String(allow_none=True)
    company_verification = fields.String(validate=validate.OneOf(("none", "pending", "verified", "rejected")))
    vat_id_check = fields.String(
        validate=validate.OneOf(VAT_ID_CHECKS),
        metadata={"description": "What the EU's VIES register said of vat_id when the company data were last "
                                 "submitted: valid, invalid (not registered), unavailable (VIES did not answer) "
                                 "or not_checked (the check is off, or no EU VAT id to check)"})
    vat_id_checked_at = fields.String(allow_none=True, metadata={"description": "when VIES answered"})
    payments_blocked = fields.Boolean()
    language = fields.String(validate=validate.OneOf(LANGUAGES))
    created_at = fields.String()


# --------------------------------------------------------------------------- security (issue 7)

def secret(max_length: int = 1024, **kwargs) -> fields.String:
    """A password or code as typed: not trimmed (spaces may be part of it), length-limited."""
    return fields.String(error_messages=MESSAGES, validate=validate.Length(max=max_length, error="is too long"),
                         **kwargs)


class EmailChangeSchema(StrictSchema):
    email = email(required=True)
    password = secret(required=True)


class EmailConfirmSchema(StrictSchema):
    token = secret(256, required=True)


class PasswordChangeSchema(StrictSchema):
    current_password = secret(required=True)
    new_password = secret(required=True)
    new_password_confirmation = secret(required=True)
    verification_id = text(64, allow_none=True, load_default=None,
                           metadata={"description": "a verified verification of purpose operation; "
                                                    "required when operation_confirmation is on"})


class SecurityCodeSchema(StrictSchema):
    code = secret(256, required=True)


class IpRestrictionSchema(StrictSchema):
    """Each rule is checked line by line by the allow-list parser, so items stay raw here."""

    rules = fields.List(fields.Raw(), required=True, error_messages=MESSAGES)
    password = secret(required=True)
    confirm_lockout = StrictBoolean(load_default=False)
    verification_id = text(64, allow_none=True, load_default=None,
                           metadata={"description": "required when operation_confirmation is on"})


class OperationConfirmationSchema(StrictSchema):
    """Turn "confirm sensitive operations by call" on or off."""

    enabled = StrictBoolean(required=True)
    password = secret(required=True)
    verification_id = text(64, allow_none=True, load_default=None,
                           metadata={"description": "required to turn it off"})


class OtpSchema(StrictSchema):
    otp = secret(64, required=True)


class TwoFactorStartSchema(StrictSchema):
    password = secret(required=True)


class TwoFactorDisableSchema(StrictSchema):
    password = secret(required=True)
    otp = secret(64, required=True)


class LastLoginSchema(StrictSchema):
    ip = fields.String()
    at = fields.String()


class SecuritySchema(StrictSchema):
    login = fields.String()
    security_code_set = fields.Boolean()
    ip_restriction = fields.List(fields.String())
    two_factor_enabled = fields.Boolean()
    last_login = fields.Nested(LastLoginSchema, allow_none=True, metadata={
        "description": "the newest successful login other than the one that opened this session: the one "
                       "before it, or a later one from elsewhere; null when this session's login is the only one"})
    operation_confirmation = fields.Boolean(metadata={
        "description": "cancelling an order, changing the password, the IP list and the phone number need a "
                       "phone verification"})
    your_ip = fields.String(metadata={
        "description": "the address this request came from, as the IP restriction judges it (the gateway's client IP)"})


# --------------------------------------------------------------------------- sessions (A2)

class LiveSessionSchema(StrictSchema):
    id = fields.String()
    created_at = fields.String(metadata={"description": "when the login opened it"})
    last_seen_at = fields.String(metadata={"description": "the last request made with it, to the minute: "
                                                          "updated at most once a minute"})
    ip = fields.String(metadata={"description": "the address it was opened from"})
    user_agent = fields.String()
    current = fields.Boolean(metadata={"description": "true for the session making this request"})


# --------------------------------------------------------------------------- password reset and resend (A1)

class PasswordResetRequestSchema(StrictSchema):
    """Exactly one of login and email."""

    login = fields.String(error_messages=MESSAGES, validate=validate.Length(min=1, max=64),
                          metadata={"description": "the billing login (or send email instead)"})
    email = email(metadata={"description": "the account's e-mail address (or send login instead)"})

    @validates_schema
    def _one_of_them(self, data, **_):
        if ("login" in data) == ("email" in data):
            raise FieldError({"login": ["send login or email, not both"]} if data
                             else {"login": ["send login or email"]})


class PasswordResetConfirmSchema(StrictSchema):
    token = secret(256, required=True)
    new_password = secret(required=True)
    new_password_confirmation = secret(required=True)
    otp = fields.String(load_default=None, allow_none=True, error_messages=MESSAGES,
                        validate=validate.Length(max=64),
                        metadata={"description": "a TOTP code or a recovery code; required when 2FA is on"})


class ResetAcceptedSchema(StrictSchema):
    status = fields.String(metadata={"enum": ["accepted"]})


class ConfirmationResentSchema(StrictSchema):
    email = fields.String(metadata={"description": "the address the confirmation mail went to"})
    purpose = fields.String(metadata={"enum": ["registration", "change"]})


class TwoFactorEnrolmentSchema(StrictSchema):
    secret = fields.String()
    otpauth_uri = fields.String()


class RecoveryCodesSchema(StrictSchema):
    recovery_codes = fields.List(fields.String())


class LoginAttemptSchema(StrictSchema):
    at = fields.String()
    ip = fields.String()
    success = fields.Boolean()
    user_agent = fields.String()
    outcome = fields.String(metadata={"description": "ok or the refusal's code"})


class SecurityEventSchema(StrictSchema):
    id = fields.String()
    kind = fields.String()
    at = fields.String()
    ip = fields.String(allow_none=True)
    details = fields.Dict()


# --------------------------------------------------------------------------- notification settings (N1-N3)

class WireMoney(MoneyField):
    """Money checked strictly but kept in its wire form, so the loaded body can cross RPC."""

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).to_wire()


class NotificationEmailsSchema(StrictSchema):
    invoices = email(allow_none=True)
    support = email(allow_none=True)
    complaints = email(allow_none=True)


class NotificationSettingsSchema(StrictSchema):
    """N1-N3; in a PUT a field left out keeps its value, null clears it."""

    newsletter = StrictBoolean()
    low_balance_threshold = WireMoney(allow_none=True, error_messages=MESSAGES)
    low_balance_days = StrictInteger(allow_none=True, validate=validate.Range(1, 366), error_messages=MESSAGES,
                                     metadata={"description": "alert when the balance forecast's days fall under "
                                                              "it (null: no alert in days)"})
    monthly_statement = StrictBoolean(metadata={"description": "a statement of the past month mailed to the "
                                                               "invoices address each month (default false)"})
    emails = fields.Nested(NotificationEmailsSchema, error_messages=MESSAGES)
