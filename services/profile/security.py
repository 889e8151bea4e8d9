"""The profile service's security rules (docs/requirements.md S; docs/CONTRACTS.md, "Formats" and "Limits").

Pure rules: no database, no broker, no clock of its own. Time comes in as ``now``
arguments; the only I/O is reading the shipped list of common passwords, once.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Iterable

import argon2
import pyotp

from services.common.clock import as_utc
from services.common.errors import DomainError, ValidationError

# --------------------------------------------------------------------------- logins

_LOGIN = re.compile(r"[a-z0-9._-]{3,32}", re.ASCII)


def normalise_login(login) -> str:
    """The stored form of a billing login: lower case, 3 to 32 of ``a-z 0-9 . _ -``."""
    if isinstance(login, str):
        candidate = login.strip().lower()
        if _LOGIN.fullmatch(candidate):
            return candidate
    raise ValidationError({"login": ["must be 3 to 32 characters of a-z, 0-9, '.', '_' and '-'"]})


# --------------------------------------------------------------------------- IP allow list

MAX_IP_RULES = 100
MAX_IP_RULE_LENGTH = 100  # the longest sensible rule, an IPv6 range, is 79 characters

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class IpRule:
    """One line of an allow list: an address, a CIDR block or a dash range, inclusive."""

    text: str  # the normalised line, as stored and shown back to the customer
    version: int
    first: int
    last: int

    def covers(self, address: _Address) -> bool:
        return address.version == self.version and self.first <= int(address) <= self.last


class _BadRule(ValueError):
    """Why one line is not a rule; the message completes "line N: 'text' ..."."""


def _address(text: str) -> _Address:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise _BadRule("is not an IP address, range or CIDR block") from None
    if getattr(address, "scope_id", None):
        # a zone ("fe80::1%eth0") names an interface of the customer's machine, not an address we see
        raise _BadRule("has an interface zone; write the address without '%...'")
    return address


_MAPPED_IPV4 = ipaddress.ip_network("::ffff:0:0/96")


def _rule(text: str) -> IpRule:
    rule = _written_rule(text)
    if rule.version == 6 and _mapped_ipv4(rule.first) and _mapped_ipv4(rule.last):
        return _as_ipv4(rule)
    return rule


def _mapped_ipv4(value: int) -> bool:
    return int(_MAPPED_IPV4.network_address) <= value <= int(_MAPPED_IPV4.broadcast_address)


def _as_ipv4(rule: IpRule) -> IpRule:
    """A rule written as IPv4-mapped IPv6 ("::ffff:10.0.0.0/120") is the IPv4 rule it spells."""
    first, last = (ipaddress.IPv4Address(value & 0xFFFFFFFF) for value in (rule.first, rule.last))
    if "/" in rule.text:
        text = str(ipaddress.ip_network(f"{first}/{32 - (int(last) - int(first)).bit_length()}"))
    elif first != last:
        text = f"{first}-{last}"
    else:
        text = str(first)
    return IpRule(text, 4, int(first), int(last))


def _written_rule(text: str) -> IpRule:
    if "/" in text:
        address_text, _, prefix_text = text.partition("/")
        address = _address(address_text.strip())
        try:
            network = ipaddress.ip_network(f"{address}/{prefix_text.strip()}", strict=False)
        except ValueError:
            raise _BadRule("is not an IP address, range or CIDR block") from None
        if address != network.network_address:
            # Refused rather than widened: "10.0.0.5/24" may mean one host or the block,
            # and guessing wrong either locks the customer out or lets 255 strangers in.
            raise _BadRule(f"has host bits set (the block is '{network}')")
        return IpRule(str(network), network.version,
                      int(network.network_address), int(network.broadcast_address))
    if "-" in text:
        start_text, _, end_text = text.partition("-")
        start, end = _address(start_text.strip()), _address(end_text.strip())
        if start.version != end.version:
            raise _BadRule("mixes IPv4 and IPv6")
        if int(end) < int(start):
            raise _BadRule("ends before it starts")
        return IpRule(f"{start}-{end}", start.version, int(start), int(end))
    address = _address(text)
    return IpRule(str(address), address.version, int(address), int(address))


@dataclass(frozen=True)
class IpAllowList:
    """The addresses an account may be used from (S3); no rules means no restriction."""

    rules: tuple[IpRule, ...] = ()

    @classmethod
    def parse(cls, lines: Iterable[str] | str) -> IpAllowList:
        """Parse the customer's lines, reporting every bad one by its 1-based number.

        Whitespace is trimmed, blank lines and repeated rules dropped. A single string is
        split into lines (a pasted text area). Raises ValidationError with
        ``fields={"rules": ["line 3: '10.0.0.300' is not an IP address, range or CIDR block"]}``.
        """
        if isinstance(lines, str):
            lines = lines.splitlines()
        rules: dict[str, IpRule] = {}
        problems: list[str] = []
        filled = 0
        for number, line in enumerate(lines, start=1):
            if isinstance(line, str) and not line.strip():
                continue
            filled += 1
            if filled > MAX_IP_RULES:
                # stop reading: a huge paste should cost us no more than the limit
                raise ValidationError({"rules": [f"at most {MAX_IP_RULES} rules are allowed"]})
            if not isinstance(line, str):
                problems.append(f"line {number}: is not text")
                continue
            text = line.strip()
            if len(text) > MAX_IP_RULE_LENGTH:
                problems.append(f"line {number}: '{text[:24]}...' is longer than "
                                f"{MAX_IP_RULE_LENGTH} characters")
                continue
            try:
                rule = _rule(text)
            except _BadRule as why:
                problems.append(f"line {number}: '{text}' {why}")
                continue
            rules.setdefault(rule.text, rule)
        if problems:
            raise ValidationError({"rules": problems}, "Some IP restriction lines are not valid.")
        return cls(tuple(rules.values()))

    @property
    def restricted(self) -> bool:
        """Whether any rule is set; an empty list lets every address in."""
        return bool(self.rules)

    def covers(self, ip: str) -> bool:
        """Whether a client at ``ip`` may use the account; an unreadable address is not covered."""
        if not self.rules:
            return True
        try:
            address = ipaddress.ip_address(ip.strip() if isinstance(ip, str) else ip)
        except ValueError:
            return False
        # A dual-stack socket reports an IPv4 client as ::ffff:a.b.c.d; it is the IPv4 client.
        address = getattr(address, "ipv4_mapped", None) or address
        return any(rule.covers(address) for rule in self.rules)

    def lines(self) -> list[str]:
        """The normalised lines to store and show: ``IpAllowList.parse(x.lines()) == x``."""
        return [rule.text for rule in self.rules]


# --------------------------------------------------------------------------- passwords

PASSWORD_MIN_LENGTH = 10
PASSWORD_MAX_LENGTH = 128
COMMON_PASSWORDS_FILE = Path(__file__).parent / "data" / "common_passwords.txt"


def _stable(text: str) -> str:
    # NIST SP 800-63B 5.1.1.2: the same password typed on two keyboards may arrive
    # composed or decomposed ("ż" vs "z" + combining dot); both must hash the same.
    return unicodedata.normalize("NFKC", text)


@cache
def common_passwords() -> frozenset[str]:
    """The 10,000 most common passwords, lower case (read once, on first use)."""
    with COMMON_PASSWORDS_FILE.open(encoding="utf-8") as handle:
        return frozenset(line.strip().casefold() for line in handle if line.strip())


def _weak(reason: str, message: str) -> DomainError:
    return DomainError("weak_password", message, details={
        "reason": reason, "min_length": PASSWORD_MIN_LENGTH, "max_length": PASSWORD_MAX_LENGTH})


def check_password_policy(password, login: str | None = None) -> None:
    """Refuse a password that is too short, too long, common, or built on the login (422 weak_password).

    ``details.reason`` is one of ``too_short``, ``too_long``, ``too_common``,
    ``contains_login`` so that the panel can say it in the customer's language.
    """
    if not isinstance(password, str):
        raise ValidationError({"password": ["must be text"]})
    password = _stable(password)
    if len(password) < PASSWORD_MIN_LENGTH:
        raise _weak("too_short", f"The password must have at least {PASSWORD_MIN_LENGTH} characters.")
    if len(password) > PASSWORD_MAX_LENGTH:
        raise _weak("too_long", f"The password must have at most {PASSWORD_MAX_LENGTH} characters.")
    folded = password.casefold()
    if folded.strip() in common_passwords():
        raise _weak("too_common", "This password is among the most commonly used ones; choose another.")
    if login and login.strip().casefold() in folded:
        raise _weak("contains_login", "The password must not contain the login.")


class PasswordHasher:
    """Argon2id hashing of passwords and security codes.

    Defaults are argon2-cffi's (RFC 9106 low-memory profile: t=3, 64 MiB, p=4); tests
    pass cheaper parameters. Text is NFKC-normalised before hashing and verifying.
    """

    def __init__(self, time_cost: int = 3, memory_cost: int = 65536, parallelism: int = 4):
        self._argon2 = argon2.PasswordHasher(time_cost=time_cost, memory_cost=memory_cost,
                                             parallelism=parallelism, type=argon2.Type.ID)
        # Hashed once with the same parameters so verify_dummy() costs what a real verify does.
        self._dummy_hash = self._argon2.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        """An argon2id hash (salt and parameters included) to store."""
        return self._argon2.hash(_stable(password))

    def verify(self, stored_hash: str, password: str) -> bool:
        """Whether ``password`` matches ``stored_hash``; never raises for a mismatch or a bad hash."""
        if not stored_hash or not isinstance(password, str):
            self.verify_dummy()
            return False
        try:
            return self._argon2.verify(stored_hash, _stable(password))
        except argon2.exceptions.VerificationError:  # also covers a mismatch
            return False
        except argon2.exceptions.InvalidHashError:
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        """Whether a hash was made with other parameters and should be replaced after a good login."""
        try:
            return self._argon2.check_needs_rehash(stored_hash)
        except argon2.exceptions.InvalidHashError:
            return True

    def verify_dummy(self, password: str = "") -> bool:
        """Spend the time of a real verify and answer False: for unknown logins, so timing hides them."""
        try:
            self._argon2.verify(self._dummy_hash, _stable(password) if isinstance(password, str) else "")
        except argon2.exceptions.VerificationError:
            pass
        return False


# --------------------------------------------------------------------------- tokens


def token_hash(token: str) -> str:
    """The sha256 hex digest to look a token up by (256 random bits need no slow hash)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh session or e-mail confirmation token and its hash: ``(token, token_hash)``."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


# --------------------------------------------------------------------------- security code (S2)

SECURITY_CODE_MIN_LENGTH = 6
SECURITY_CODE_MAX_LENGTH = 64


def _spoken_form(code: str) -> str:
    # The code is told to support staff, often by phone, where case and extra spaces
    # cannot be heard: compare it ignoring both.
    return " ".join(_stable(code).split()).casefold()


def check_security_code_format(code) -> str:
    """Validate a new security code (6 to 64 printable characters); answers the form to hash."""
    if not isinstance(code, str):
        raise ValidationError({"code": ["must be text"]})
    text = " ".join(_stable(code).split())
    if not SECURITY_CODE_MIN_LENGTH <= len(text) <= SECURITY_CODE_MAX_LENGTH:
        raise ValidationError({"code": [
            f"must be {SECURITY_CODE_MIN_LENGTH} to {SECURITY_CODE_MAX_LENGTH} characters"]})
    if not text.isprintable():
        raise ValidationError({"code": ["must not contain control characters"]})
    return _spoken_form(text)


def hash_security_code(hasher: PasswordHasher, code: str) -> str:
    """The argon2id hash to store for a new security code (validated first)."""
    return hasher.hash(check_security_code_format(code))


def security_code_matches(hasher: PasswordHasher, stored_hash: str, code) -> bool:
    """Whether a code told to support matches the stored one, ignoring case and spacing."""
    if not isinstance(code, str) or len(code) > 4 * SECURITY_CODE_MAX_LENGTH:
        return hasher.verify_dummy()
    return hasher.verify(stored_hash, _spoken_form(code))


# --------------------------------------------------------------------------- two-factor (S6)

TOTP_STEP_SECONDS = 30
TOTP_DRIFT_STEPS = 1
RECOVERY_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper
RECOVERY_CODE_LENGTH = 10
_TOTP_CODE = re.compile(r"[0-9]{6}", re.ASCII)


def new_totp_secret() -> str:
    """A fresh base32 TOTP secret (160 bits)."""
    return pyotp.random_base32()


def otpauth_uri(secret: str, login: str, issuer: str = "Introserv") -> str:
    """The ``otpauth://totp/...`` URI an authenticator app scans as a QR code."""
    return pyotp.TOTP(secret, interval=TOTP_STEP_SECONDS).provisioning_uri(
        name=login, issuer_name=issuer)


def totp_step(now: datetime) -> int:
    """The RFC 6238 time step that ``now`` falls in."""
    return int(as_utc(now).timestamp()) // TOTP_STEP_SECONDS


def verify_totp(secret: str, code, now: datetime, last_used_step: int | None) -> int | None:
    """The step a 6-digit code belongs to (now, or one step either side), or None.

    A code of a step at or before ``last_used_step`` is refused, so a code seen once
    (over a shoulder, in a proxy log) cannot be replayed; store the answer as the new
    ``last_used_step``. Anything that is not 6 digits answers None (try a recovery code).
    """
    if not isinstance(code, str):
        return None
    code = "".join(code.split())
    if not _TOTP_CODE.fullmatch(code):
        return None
    totp = pyotp.TOTP(secret, interval=TOTP_STEP_SECONDS)
    current = totp_step(now)
    matched = None
    # Check every candidate (no early exit) so the answer time does not say which step matched.
    for step in range(current - TOTP_DRIFT_STEPS, current + TOTP_DRIFT_STEPS + 1):
        if last_used_step is not None and step <= last_used_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            matched = step
    return matched


def _normalise_recovery_code(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def _recovery_code_hash(normalised: str, salt: str) -> str:
    return f"{salt}${hashlib.sha256(f'{salt}${normalised}'.encode()).hexdigest()}"


def new_recovery_codes(n: int = 10) -> tuple[list[str], list[str]]:
    """``n`` single-use recovery codes like ``"k7mq-x2rt-9b"`` and the salted hashes to store."""
    codes, hashes = [], []
    for _ in range(n):
        raw = "".join(secrets.choice(RECOVERY_CODE_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
        codes.append(f"{raw[:4]}-{raw[4:8]}-{raw[8:]}")
        # A salt per code: ~50 bits a code is enough online, and the salt keeps a leaked
        # table from being cracked for every account at once.
        hashes.append(_recovery_code_hash(raw, secrets.token_hex(8)))
    return codes, hashes


def match_recovery_code(code, hashes: list[str]) -> int | None:
    """The index in ``hashes`` of the code typed (any case, dashes, spaces), or None.

    The caller removes the matched hash, so each code works once.
    """
    if not isinstance(code, str):
        return None
    normalised = _normalise_recovery_code(code)
    if len(normalised) != RECOVERY_CODE_LENGTH:
        return None
    matched = None
    for index, stored in enumerate(hashes):
        salt, _, _ = stored.partition("$")
        if hmac.compare_digest(_recovery_code_hash(normalised, salt), stored) and matched is None:
            matched = index
    return matched


# --------------------------------------------------------------------------- brute force

LOGIN_BACKOFF_AFTER = 5
LOGIN_BACKOFF_CAP = timedelta(minutes=15)
IP_FAILURE_LIMIT = 30
IP_FAILURE_WINDOW = timedelta(seconds=60)
# An address the account logged in from successfully this recently keeps its own failure count.
FAMILIAR_ADDRESS_FOR = timedelta(days=30)
REGISTRATION_WINDOW = timedelta(hours=1)
SECURITY_CODE_FAILURE_LIMIT = 5
SECURITY_CODE_FAILURE_WINDOW = timedelta(hours=1)


def _whole_seconds(wait: timedelta) -> int:
    """A Retry-After value: whole seconds rounded up, at least 1 while there is any wait."""
    return max(1, math.ceil(wait.total_seconds()))


def login_delay(consecutive_failures: int) -> timedelta:
    """How long an account waits after its last failed login: 1 s after the 5th, doubling, 15 min at most."""
    if consecutive_failures < LOGIN_BACKOFF_AFTER:
        return timedelta(0)
    # the exponent is bounded before 2 ** n is computed: a million failures must not build a huge int
    exponent = min(consecutive_failures - LOGIN_BACKOFF_AFTER, 20)
    return min(timedelta(seconds=2 ** exponent), LOGIN_BACKOFF_CAP)


def login_backoff(consecutive_failures: int, last_failure_at: datetime | None, now: datetime) -> int:
    """Seconds an account must wait before the next login attempt (429 Retry-After), or 0.

    Never a permanent lock: the wait is counted from the last failure and capped at 15
    minutes. Attempts refused with 429 are not checked, so they must not count as failures.
    """
    if last_failure_at is None:
        return 0
    remaining = as_utc(last_failure_at) + login_delay(consecutive_failures) - as_utc(now)
    return _whole_seconds(remaining) if remaining > timedelta(0) else 0


def _window_retry_after(failure_times: Iterable[datetime], now: datetime, limit: int,
                        window: timedelta) -> int:
    now = as_utc(now)
    recent = sorted(t for t in map(as_utc, failure_times) if t > now - window)
    if len(recent) < limit:
        return 0
    # Free again once enough of the oldest failures leave the window to fall below the limit.
    frees_at = recent[len(recent) - limit] + window
    return _whole_seconds(frees_at - now)


def ip_limited(failure_times: Iterable[datetime], now: datetime, limit: int = IP_FAILURE_LIMIT,
               window: timedelta = IP_FAILURE_WINDOW) -> int:
    """Seconds one client IP must wait after too many failed logins (30 a minute), or 0."""
    return _window_retry_after(failure_times, now, limit, window)


def requests_limited(times: Iterable[datetime], now: datetime, limit: int, window: timedelta) -> int:
    """Seconds before one more request fits ``limit`` requests per rolling ``window`` (429 Retry-After), or 0."""
    return _window_retry_after(times, now, limit, window)


def security_code_check_limited(failures: Iterable[datetime], now: datetime) -> int:
    """Seconds before support may check an account's security code again (5 wrong tries an hour), or 0."""
    return _window_retry_after(failures, now, SECURITY_CODE_FAILURE_LIMIT, SECURITY_CODE_FAILURE_WINDOW)
