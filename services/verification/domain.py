"""The rules of phone verification (docs/requirements.md S7, P6): pure, no I/O.

Which numbers we may call and how, what code to expect, how long it lives, how many
tries a customer gets, how often a verification may start, and when to stop trying the
primary telephony gateway. The service feeds in ``now`` (or a clock) and the stored
history; the provider adapter (``providers.py``) does the calling.
"""
from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Iterable

import phonenumbers
from phonenumbers import PhoneNumberType

from services.common.clock import clock as system_clock
from services.common.errors import DomainError, ValidationError

FLASH_CALL = "flash_call"
VOICE = "voice"
SMS = "sms"
CHANNELS = (FLASH_CALL, VOICE, SMS)

CODE_LIFETIME = timedelta(minutes=5)
CHECKS_PER_ATTEMPT = 5
_CODE = re.compile(r"^\d{4}$")

# --- which numbers we call -------------------------------------------------------

EU = frozenset("AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split())
EEA_OUTSIDE_EU = frozenset({"IS", "LI", "NO"})
# ISO regions rather than calling codes by default: +1 is shared by the US and Canada
# with Caribbean numbers (+1 876 Jamaica, ...) that are classic toll-fraud destinations.
DEFAULT_REGIONS = EU | EEA_OUTSIDE_EU | {"GB", "CH", "US", "CA", "UA"}

# Number types we can reach, and how. A landline (or a VoIP number, which may be a desk
# phone) only hears a voice call; anything that might be a mobile takes every channel.
# Everything else is refused: premium-rate, shared-cost, personal (UK 070) and UAN
# numbers earn their owner money per call (toll fraud), and pagers, voicemail,
# toll-free and unknown numbers cannot prove that a customer holds the phone.
_CHANNELS_BY_TYPE = {
    PhoneNumberType.MOBILE: CHANNELS,
    PhoneNumberType.FIXED_LINE_OR_MOBILE: CHANNELS,
    PhoneNumberType.FIXED_LINE: (VOICE,),
    PhoneNumberType.VOIP: (VOICE,),
}
_TYPE_NAMES = {value: name.lower() for name, value in vars(PhoneNumberType).items() if name.isupper()}


@dataclass(frozen=True)
class AllowedCountries:
    """Where we place calls: ISO regions (``PL``) and whole calling codes (``+48``)."""

    regions: frozenset[str] = DEFAULT_REGIONS
    calling_codes: frozenset[int] = frozenset()

    @classmethod
    def parse(cls, setting: str) -> AllowedCountries:
        """Read a setting such as ``"PL, DE, +44"``; an empty setting means the default list."""
        entries = [entry.strip() for entry in re.split(r"[,\s]+", setting or "") if entry.strip()]
        if not entries:
            return cls()
        regions, codes = set(), set()
        for entry in entries:
            if re.fullmatch(r"\+?\d{1,3}", entry):
                codes.add(int(entry.lstrip("+")))
            elif re.fullmatch(r"[A-Za-z]{2}", entry):
                regions.add(entry.upper())
            else:
                raise ValueError(f"not an ISO region or a calling code: {entry!r}")
        return cls(frozenset(regions), frozenset(codes))

    def admits(self, number: phonenumbers.PhoneNumber) -> bool:
        """Whether a parsed number lies in an allowed region or calling code."""
        return (number.country_code in self.calling_codes
                or phonenumbers.region_code_for_number(number) in self.regions)


DEFAULT_COUNTRIES = AllowedCountries()


@dataclass(frozen=True)
class Phone:
    """A number we may call: E.164, its region, its kind, and the channels it can take."""

    e164: str
    region: str | None
    kind: str
    channels: tuple[str, ...]

    def can_take(self, channel: str) -> bool:
        return channel in self.channels


def parse_phone(raw: str | None, allowed: AllowedCountries = DEFAULT_COUNTRIES) -> Phone:
    """Parse a number in international form (``+48 600 100 200`` or ``0048...``) into a callable Phone.

    No number: ``phone_missing``. Not a number: ``validation_error`` on ``phone``.
    A country or a number type we do not call: ``phone_not_allowed``.
    """
    if raw is None or not str(raw).strip():
        raise DomainError("phone_missing", "Add a mobile phone number to your profile first.")
    text = str(raw).strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    if not text.startswith("+") or len(text) > 40:
        raise ValidationError({"phone": ["enter the number in international form, starting with + and the country code"]})
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        raise ValidationError({"phone": ["not a phone number"]}) from None
    if number.extension or not phonenumbers.is_possible_number(number):
        raise ValidationError({"phone": ["not a phone number"]})
    region = phonenumbers.region_code_for_number(number)
    if not allowed.admits(number):
        raise DomainError("phone_not_allowed", "We cannot call numbers in this country; contact support.",
                          details={"reason": "country", "country": region})
    kind = phonenumbers.number_type(number)
    channels = _CHANNELS_BY_TYPE.get(kind) if phonenumbers.is_valid_number(number) else None
    if not channels:
        raise DomainError("phone_not_allowed", "We cannot verify this kind of number; use a mobile or landline number.",
                          details={"reason": "number_type", "number_type": _TYPE_NAMES.get(kind, "unknown")})
    return Phone(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
                 region, _TYPE_NAMES[kind], channels)


def ensure_channel(phone: Phone, channel: str) -> None:
    """Refuse a channel the number cannot take (a landline hears only a voice call)."""
    if channel not in CHANNELS:
        raise ValidationError({"channel": [f"must be one of {', '.join(CHANNELS)}"]})
    if not phone.can_take(channel):
        raise DomainError("channel_not_supported",
                          "This number is a landline: choose a voice call and listen for the code.",
                          details={"channel": channel, "channels": list(phone.channels)})


# --- the code ----------------------------------------------------------------------

def new_sms_code() -> str:
    """A fresh four-digit code for an SMS, from a cryptographic source."""
    return f"{secrets.randbelow(10_000):04d}"


def sms_text(code: str, language: str = "en") -> str:
    """What the SMS says; the lifetime in it is the real one."""
    minutes = int(CODE_LIFETIME.total_seconds() // 60)
    if language == "pl":
        # Without Polish diacritics: they force UCS-2, which halves what one SMS can carry.
        return f"Kod weryfikacyjny Introserv: {code}. Wazny {minutes} minut. Nie podawaj go nikomu."
    return f"Introserv verification code: {code}. Valid for {minutes} minutes. Never share it with anyone."


def code_to_expect(channel: str, *, caller_id: str | None = None, spoken_code: str | None = None,
                   sms_code: str | None = None) -> str:
    """The code the customer will type: a flash call's last four caller-id digits, the spoken code, or ours."""
    if channel == FLASH_CALL:
        digits = re.sub(r"\D", "", caller_id or "")
        code = digits[-4:] if len(digits) >= 4 else None
    elif channel == VOICE:
        code = spoken_code
    elif channel == SMS:
        code = sms_code
    else:
        raise ValidationError({"channel": [f"must be one of {', '.join(CHANNELS)}"]})
    if not code or not _CODE.match(code):
        raise ValueError(f"no four-digit code to expect for {channel}")
    return code


@dataclass(frozen=True)
class SealedCode:
    """A code kept only as an HMAC-SHA256 under its own random salt."""

    salt: str
    digest: str

    @classmethod
    def seal(cls, code: str) -> SealedCode:
        salt = secrets.token_hex(16)
        return cls(salt, _digest(salt, code))

    def matches(self, code: str) -> bool:
        return hmac.compare_digest(self.digest, _digest(self.salt, code))


def _digest(salt: str, code: str) -> str:
    return hmac.new(bytes.fromhex(salt), code.encode(), hashlib.sha256).hexdigest()


# --- one attempt -----------------------------------------------------------------------

@dataclass(frozen=True)
class Attempt:
    """One verification in flight: the sealed code, when it expires, how many checks remain."""

    channel: str
    code: SealedCode
    expires_at: datetime
    attempts_left: int = CHECKS_PER_ATTEMPT
    verified_at: datetime | None = None

    @property
    def verified(self) -> bool:
        return self.verified_at is not None


def begin_attempt(channel: str, code: str, now: datetime, lifetime: timedelta = CODE_LIFETIME) -> Attempt:
    """Start an attempt expecting ``code``; only its seal is kept."""
    return Attempt(channel, SealedCode.seal(code), now + lifetime)


@dataclass(frozen=True)
class CheckOutcome:
    """The attempt after a check (save it even when refused: the check was used) and the refusal, if any."""

    attempt: Attempt
    error: DomainError | None = None

    @property
    def verified(self) -> bool:
        return self.error is None


def check_code(attempt: Attempt, code: str, now: datetime) -> CheckOutcome:
    """Judge a typed code. Save ``outcome.attempt`` first, then raise ``outcome.error`` if there is one.

    Checking the right code again after success answers verified again (RPC may be
    redelivered); an expired or used-up attempt is ``verification_expired``; a wrong
    code costs one check and says how many remain, never what the code was.
    """
    code = (code or "").strip() if isinstance(code, str) else ""
    if not _CODE.match(code):
        # A malformed entry is a typo, not a guess: it costs no check.
        return CheckOutcome(attempt, ValidationError({"code": ["enter the 4 digits"]}))
    if attempt.verified:
        if attempt.code.matches(code):
            return CheckOutcome(attempt)
        return CheckOutcome(attempt, _expired("used"))
    if now >= attempt.expires_at:
        return CheckOutcome(attempt, _expired("expired"))
    if attempt.attempts_left <= 0:
        return CheckOutcome(attempt, _expired("attempts_used_up"))
    if attempt.code.matches(code):
        return CheckOutcome(replace(attempt, verified_at=now))
    left = attempt.attempts_left - 1
    message = (f"That code is not right. {left} {'try' if left == 1 else 'tries'} left."
               if left else "That code is not right, and no tries are left: start a new verification.")
    return CheckOutcome(replace(attempt, attempts_left=left),
                        DomainError("wrong_code", message, details={"attempts_left": left}))


def _expired(reason: str) -> DomainError:
    return DomainError("verification_expired", "This verification has ended; start a new one.",
                       details={"reason": reason})


# --- how often a verification may start ------------------------------------------------

@dataclass(frozen=True)
class StartLimit:
    """At most ``most`` starts within any rolling ``per``."""

    most: int
    per: timedelta
    applies_to: str

    def wait(self, previous_starts: Iterable[datetime], now: datetime) -> timedelta:
        """How long until one more start fits (zero when it fits now)."""
        recent = sorted(at for at in previous_starts if at > now - self.per)
        if len(recent) < self.most:
            return timedelta(0)
        # The start that must leave the window before a new one fits.
        return recent[len(recent) - self.most] + self.per - now


STARTS_PER_NUMBER = StartLimit(3, timedelta(minutes=10), "phone")
STARTS_PER_ACCOUNT = StartLimit(10, timedelta(days=1), "account")


def ensure_start_allowed(now: datetime, starts_for_number: Iterable[datetime],
                         starts_for_account: Iterable[datetime],
                         per_number: StartLimit = STARTS_PER_NUMBER,
                         per_account: StartLimit = STARTS_PER_ACCOUNT) -> None:
    """Refuse a start with ``rate_limited`` (details.retry_after in seconds) when a limit is reached."""
    for limit, starts in ((per_number, starts_for_number), (per_account, starts_for_account)):
        wait = limit.wait(starts, now)
        if wait > timedelta(0):
            seconds = max(1, math.ceil(wait.total_seconds()))
            raise DomainError("rate_limited", "Too many verification attempts; try again later.",
                              details={"retry_after": seconds, "limit": limit.applies_to})


# --- when to skip the primary gateway -------------------------------------------------

class CircuitBreaker:
    """Stops trying the primary gateway after repeated failures, and tries it again after a cool-down.

    Closed: every call tries the primary. After ``failure_threshold`` failures in a row:
    open, the primary is skipped. Once ``cool_down`` has passed: half-open, calls try the
    primary again; a success closes the breaker, a failure opens it for another cool-down.
    State lives in memory, per process: each replica learns on its own.
    """

    def __init__(self, failure_threshold: int = 3, cool_down: timedelta | float = timedelta(seconds=60),
                 clock=system_clock):
        if not isinstance(cool_down, timedelta):
            cool_down = timedelta(seconds=cool_down)
        self.failure_threshold = failure_threshold
        self.cool_down = cool_down
        self.clock = clock
        self.failures = 0
        self.opened_at: datetime | None = None

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if self.clock.now() - self.opened_at < self.cool_down:
            return "open"
        return "half_open"

    def skip_primary(self) -> bool:
        """Whether the next call should go straight to the fallback."""
        return self.state == "open"

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def record_failure(self) -> None:
        self.failures += 1
        if self.opened_at is not None or self.failures >= self.failure_threshold:
            # Also a failed half-open trial: open again for a full cool-down.
            self.opened_at = self.clock.now()


# --- what a verification is for ---------------------------------------------------------

PHONE = "phone"
OPERATION = "operation"
PURPOSES = (PHONE, OPERATION)

# The sensitive operations a customer may confirm by phone (issue 8, item 6). A verification
# may name one of them when it starts; a proof that names none serves whichever comes first.
OPERATIONS = ("cancel_order", "change_password", "change_ip_restriction", "change_operation_confirmation",
              "change_phone")

# A proof is for the operation the customer is about to perform, not for later.
PROOF_LIFETIME = timedelta(minutes=10)


def ensure_purpose(purpose: str, operation: str | None) -> None:
    """A purpose we know, and an operation named only by a verification of purpose ``operation``."""
    if purpose not in PURPOSES:
        raise ValidationError({"purpose": [f"must be one of {', '.join(PURPOSES)}"]})
    if operation is not None and (purpose != OPERATION or operation not in OPERATIONS):
        problem = (f"must be one of {', '.join(OPERATIONS)}" if purpose == OPERATION
                   else "only a verification of purpose operation names one")
        raise ValidationError({"operation": [problem]})


@dataclass(frozen=True)
class OperationProof:
    """A verification as a proof for a sensitive operation: what it confirms and whether it was spent."""

    purpose: str
    operation: str | None
    verified_at: datetime | None
    used_at: datetime | None = None
    used_for: str | None = None
    used_reference: str | None = None


def use_proof(proof: OperationProof, operation: str, reference: str | None, now: datetime) -> OperationProof:
    """Spend a proof on ``operation`` once; return it spent, or refuse.

    Not verified, not of purpose ``operation``, or naming another operation:
    ``verification_required``. Spent already, or verified more than ``PROOF_LIFETIME`` ago:
    ``verification_expired``. A repeat of the recorded use (same operation and the same
    non-empty ``reference``, e.g. a redelivered call) answers the spent proof again.
    """
    if operation not in OPERATIONS:
        raise ValidationError({"operation": [f"must be one of {', '.join(OPERATIONS)}"]})
    if proof.purpose != OPERATION:
        raise _required("not_an_operation_proof")
    if proof.verified_at is None:
        raise _required("not_verified")
    if proof.operation is not None and proof.operation != operation:
        raise _required("other_operation")
    if proof.used_at is not None:
        if reference is not None and proof.used_for == operation and proof.used_reference == reference:
            return proof
        raise _expired("used")
    if now >= proof.verified_at + PROOF_LIFETIME:
        raise _expired("expired")
    return replace(proof, used_at=now, used_for=operation, used_reference=reference)


def _required(reason: str) -> DomainError:
    return DomainError("verification_required", "Confirm this operation by phone first.",
                       details={"reason": reason})
