"""The profile service's security rules: allow lists, passwords, tokens, 2FA, brute force."""
from __future__ import annotations

import ipaddress
import time
import unicodedata
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from services.common.clock import FrozenClock
from services.common.errors import DomainError, ValidationError
from services.profile.security import (
    IpAllowList,
    PasswordHasher,
    check_password_policy,
    check_security_code_format,
    common_passwords,
    hash_security_code,
    ip_limited,
    login_backoff,
    match_recovery_code,
    new_recovery_codes,
    new_token,
    new_totp_secret,
    normalise_login,
    otpauth_uri,
    security_code_check_limited,
    security_code_matches,
    token_hash,
    totp_step,
    verify_totp,
)
from tests.support import refusal_of

NOON = datetime(2026, 11, 29, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def hasher():
    # the cheapest argon2id parameters: the tests check behaviour, not cost
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def rule_errors(lines) -> list[str]:
    with pytest.raises(ValidationError) as refused:
        IpAllowList.parse(lines)
    return refused.value.fields["rules"]


# --------------------------------------------------------------------------- IP allow list


def test_single_ipv4_address_covers_only_itself():
    allowed = IpAllowList.parse(["192.15.3.2"])
    assert allowed.covers("192.15.3.2")
    assert not allowed.covers("192.15.3.3")


def test_dash_range_covers_both_ends_and_nothing_outside():
    allowed = IpAllowList.parse(["192.168.0.1-192.168.0.10"])
    assert allowed.covers("192.168.0.1")
    assert allowed.covers("192.168.0.5")
    assert allowed.covers("192.168.0.10")
    assert not allowed.covers("192.168.0.11")
    assert not allowed.covers("192.168.0.0")


def test_ipv4_cidr_block_covers_its_addresses():
    allowed = IpAllowList.parse(["10.0.0.0/24"])
    assert allowed.covers("10.0.0.0")
    assert allowed.covers("10.0.0.255")
    assert not allowed.covers("10.0.1.0")


def test_ipv6_address_cidr_and_range_are_accepted():
    allowed = IpAllowList.parse(["2001:db8::1", "2001:db8:1::/48", "2001:db8:2::10-2001:db8:2::20"])
    assert allowed.covers("2001:db8::1")
    assert allowed.covers("2001:db8:1:ffff::1")
    assert allowed.covers("2001:db8:2::15")
    assert not allowed.covers("2001:db8:2::21")
    assert not allowed.covers("2001:db8::2")


def test_ipv6_rules_do_not_cover_ipv4_clients():
    allowed = IpAllowList.parse(["::/0"])
    assert allowed.covers("2001:db8::1")
    assert not allowed.covers("10.0.0.1")
    assert not allowed.covers("::ffff:10.0.0.1")


def test_ipv4_mapped_ipv6_client_matches_ipv4_rules():
    allowed = IpAllowList.parse(["10.0.0.0/24", "192.15.3.2"])
    assert allowed.covers("::ffff:10.0.0.7")
    assert allowed.covers("::ffff:192.15.3.2")
    assert not allowed.covers("::ffff:10.0.1.7")


def test_rules_written_as_mapped_ipv6_are_stored_as_the_ipv4_rules_they_spell():
    allowed = IpAllowList.parse(["::ffff:10.0.0.7", "::ffff:10.1.0.0/112", "::ffff:10.2.0.1-::ffff:10.2.0.9"])
    assert allowed.lines() == ["10.0.0.7", "10.1.0.0/16", "10.2.0.1-10.2.0.9"]
    assert allowed.covers("10.0.0.7") and allowed.covers("::ffff:10.0.0.7")
    assert allowed.covers("10.1.200.3") and allowed.covers("10.2.0.9")
    assert not allowed.covers("10.0.0.8")


def test_empty_list_covers_every_address():
    allowed = IpAllowList.parse([])
    assert not allowed.restricted
    assert allowed.covers("203.0.113.9")
    assert allowed.covers("2001:db8::9")
    assert allowed.lines() == []


def test_only_blank_lines_mean_no_restriction():
    assert not IpAllowList.parse(["", "   ", "\t"]).restricted


def test_unreadable_client_address_is_not_covered_by_a_restriction():
    allowed = IpAllowList.parse(["10.0.0.1"])
    assert not allowed.covers("unknown")
    assert not allowed.covers("")


def test_whitespace_is_trimmed_and_blank_lines_dropped():
    allowed = IpAllowList.parse(["  10.0.0.1 ", "", "   ", "\t10.0.0.2-10.0.0.9\t"])
    assert allowed.lines() == ["10.0.0.1", "10.0.0.2-10.0.0.9"]


def test_spaces_around_the_dash_are_accepted():
    assert IpAllowList.parse(["10.0.0.1 - 10.0.0.9"]).lines() == ["10.0.0.1-10.0.0.9"]


def test_stored_lines_are_normalised():
    allowed = IpAllowList.parse(["2001:DB8:0:0:0:0:0:1", "2001:0db8::/32", "10.0.0.0/24"])
    assert allowed.lines() == ["2001:db8::1", "2001:db8::/32", "10.0.0.0/24"]


def test_repeated_rules_are_stored_once():
    assert IpAllowList.parse(["10.0.0.1", "10.0.0.1 ", "10.0.0.2"]).lines() == ["10.0.0.1", "10.0.0.2"]


def test_pasted_text_is_split_into_lines():
    assert IpAllowList.parse("10.0.0.1\n10.0.0.2\r\n").lines() == ["10.0.0.1", "10.0.0.2"]


def test_bad_line_is_reported_with_its_number_and_text():
    assert rule_errors(["1.2.3.4", "", "10.0.0.300"]) == [
        "line 3: '10.0.0.300' is not an IP address, range or CIDR block"]


def test_every_bad_line_is_reported_not_only_the_first():
    errors = rule_errors(["nonsense", "10.0.0.1", "10.0.0.0/33", "10.0.0.1-10.0.0"])
    assert [error.split(":")[0] for error in errors] == ["line 1", "line 3", "line 4"]


def test_reversed_range_is_refused():
    assert rule_errors(["10.0.0.9-10.0.0.1"]) == ["line 1: '10.0.0.9-10.0.0.1' ends before it starts"]


def test_reversed_ipv6_range_is_refused():
    assert rule_errors(["2001:db8::9-2001:db8::1"]) == [
        "line 1: '2001:db8::9-2001:db8::1' ends before it starts"]


def test_range_of_one_address_is_accepted():
    assert IpAllowList.parse(["10.0.0.5-10.0.0.5"]).covers("10.0.0.5")


def test_range_mixing_ipv4_and_ipv6_is_refused():
    assert rule_errors(["10.0.0.1-2001:db8::1"]) == [
        "line 1: '10.0.0.1-2001:db8::1' mixes IPv4 and IPv6"]


def test_cidr_with_host_bits_is_refused_and_names_the_block():
    assert rule_errors(["10.0.0.5/24"]) == [
        "line 1: '10.0.0.5/24' has host bits set (the block is '10.0.0.0/24')"]


def test_shorthand_range_is_refused():
    assert rule_errors(["192.168.0.1-10"]) == [
        "line 1: '192.168.0.1-10' is not an IP address, range or CIDR block"]


def test_ipv4_with_leading_zeros_is_refused():
    # "010.0.0.1" reads as octal in some tools and decimal in others: ambiguous
    assert rule_errors(["010.0.0.1"])


def test_address_with_interface_zone_is_refused():
    assert "interface zone" in rule_errors(["fe80::1%eth0"])[0]


def test_too_long_line_is_refused():
    assert "longer than 100 characters" in rule_errors(["1" * 101])[0]


def test_non_text_line_is_refused():
    assert rule_errors(["10.0.0.1", 42]) == ["line 2: is not text"]


def test_a_huge_paste_of_garbage_is_refused_by_its_size():
    assert rule_errors(["nonsense"] * 100_000) == ["at most 100 rules are allowed"]


def test_netmask_after_the_slash_is_stored_as_a_prefix():
    assert IpAllowList.parse(["10.0.0.0/255.255.255.0"]).lines() == ["10.0.0.0/24"]


def test_cidr_with_an_impossible_prefix_is_refused():
    assert rule_errors(["10.0.0.0/33", "2001:db8::/129"]) == [
        "line 1: '10.0.0.0/33' is not an IP address, range or CIDR block",
        "line 2: '2001:db8::/129' is not an IP address, range or CIDR block"]


def test_more_than_a_hundred_rules_are_refused():
    lines = [f"10.0.{i // 256}.{i % 256}" for i in range(101)]
    assert rule_errors(lines) == ["at most 100 rules are allowed"]
    assert len(IpAllowList.parse(lines[:100]).lines()) == 100


ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)


@st.composite
def allow_list_lines(draw):
    def network(version):
        address = draw(st.ip_addresses(v=version))
        prefix = draw(st.integers(0, 32 if version == 4 else 128))
        return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))

    def dash_range(version):
        a, b = sorted(draw(st.lists(st.ip_addresses(v=version), min_size=2, max_size=2)))
        return f"{a}-{b}"

    one = st.one_of(ipv4, ipv6, st.builds(network, st.sampled_from([4, 6])),
                    st.builds(dash_range, st.sampled_from([4, 6])))
    return draw(st.lists(one, max_size=10))


@settings(max_examples=40, deadline=None)
@given(allow_list_lines())
def test_stored_lines_parse_back_to_the_same_list(lines):
    allowed = IpAllowList.parse(lines)
    assert IpAllowList.parse(allowed.lines()) == allowed


@settings(max_examples=60, deadline=None)
@given(st.ip_addresses(), st.ip_addresses())
def test_range_covers_exactly_the_addresses_between_its_ends(a, b):
    # IPv4-mapped IPv6 clients are IPv4 clients: a test of their own covers them
    assume(a.version == b.version and not getattr(a, "ipv4_mapped", None)
           and not getattr(b, "ipv4_mapped", None))
    low, high = sorted([a, b])
    allowed = IpAllowList.parse([f"{low}-{high}"])
    assert allowed.covers(str(low)) and allowed.covers(str(high))
    if int(low) > 0:
        assert not allowed.covers(str(low - 1))


# --------------------------------------------------------------------------- logins


def test_login_is_stored_in_lower_case():
    assert normalise_login("Jan.Kowalski_1") == "jan.kowalski_1"


def test_login_surrounding_spaces_are_trimmed():
    assert normalise_login("  jan-k ") == "jan-k"


@pytest.mark.parametrize("login", ["ab", "a" * 33, "jan kowalski", "łukasz", "jan@example", "", None, 12345,
                                   "jan\tkowalski"])
def test_login_outside_the_format_is_refused(login):
    with pytest.raises(ValidationError) as refused:
        normalise_login(login)
    assert "login" in refused.value.fields


def test_login_of_three_and_thirty_two_characters_is_accepted():
    assert normalise_login("abc") == "abc"
    assert normalise_login("a" * 32) == "a" * 32


# --------------------------------------------------------------------------- password policy


def weak_reason(password, login="jkowalski") -> str | None:
    """Why the customer is told the password is weak (422 weak_password), or None: it is accepted."""
    refused = refusal_of(check_password_policy, password, login)
    if refused is None:
        return None
    assert refused.error_code == "weak_password"
    assert refused.status == 422
    return refused.details["reason"]


def test_password_of_nine_characters_is_too_short():
    assert weak_reason("Xk9#mQ2!v") == "too_short"


def test_password_of_ten_characters_is_accepted():
    assert weak_reason("Xk9#mQ2!vz") is None


def test_password_of_129_characters_is_too_long():
    assert weak_reason("Xk9#mQ2!vz" * 12 + "abcdefghi") == "too_long"
    assert weak_reason(("Xk9#mQ2!vz" * 13)[:128]) is None


@pytest.mark.parametrize("password", ["1234567890", "qwertyuiop", "password123", "QwertyUIOP"])
def test_common_password_is_refused_in_any_case(password):
    assert weak_reason(password) == "too_common"


def test_common_password_list_holds_ten_thousand_entries():
    assert len(common_passwords()) == 10_000
    assert "123456" in common_passwords()


def test_password_equal_to_login_is_refused():
    assert weak_reason("JKowalski1", login="jkowalski1") == "contains_login"


def test_password_containing_login_is_refused_in_any_case():
    assert weak_reason("my-JKOWALSKI-pass", login="jkowalski") == "contains_login"


def test_polish_characters_are_allowed_and_counted_as_one_each():
    check_password_policy("Zażółć gęślą", "jkowalski")
    assert weak_reason("żółć gęśl") == "too_short"  # nine characters, more than nine bytes


def test_weak_password_says_the_limits_for_the_panel():
    with pytest.raises(DomainError) as refused:
        check_password_policy("short", "jkowalski")
    assert refused.value.details == {"reason": "too_short", "min_length": 10, "max_length": 128}


def test_password_that_is_not_text_is_a_validation_error():
    with pytest.raises(ValidationError):
        check_password_policy(1234567890123, "jkowalski")


# --------------------------------------------------------------------------- password hashing


def test_hashed_password_verifies_and_a_wrong_one_does_not(hasher):
    stored = hasher.hash("Zażółć gęślą jaźń")
    assert stored.startswith("$argon2id$")
    assert hasher.verify(stored, "Zażółć gęślą jaźń")
    assert not hasher.verify(stored, "zażółć gęślą jaźń")


def test_same_password_hashes_differently_each_time(hasher):
    assert hasher.hash("correct horse battery") != hasher.hash("correct horse battery")


def test_password_typed_decomposed_verifies_against_one_typed_composed(hasher):
    composed = unicodedata.normalize("NFC", "Zażółć gęślą")
    decomposed = unicodedata.normalize("NFD", "Zażółć gęślą")
    assert composed != decomposed
    assert hasher.verify(hasher.hash(composed), decomposed)


def test_verify_never_raises_for_a_broken_or_missing_hash(hasher):
    assert hasher.verify("not-a-hash", "whatever12") is False
    assert hasher.verify("", "whatever12") is False
    assert hasher.verify(None, "whatever12") is False


def test_hash_made_with_other_parameters_needs_rehash(hasher):
    stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    assert not hasher.needs_rehash(hasher.hash("long enough pw"))
    assert hasher.needs_rehash(stronger.hash("long enough pw"))
    assert hasher.needs_rehash("garbage")


def test_dummy_verify_answers_false_and_costs_about_a_real_verify():
    hasher = PasswordHasher(time_cost=2, memory_cost=4096, parallelism=1)
    stored = hasher.hash("the customer's password")

    def fastest(call, times=5):
        # CPU time of this process: what the work costs, whatever else the machine is running
        best = float("inf")
        for _ in range(times):
            start = time.process_time()
            call()
            best = min(best, time.process_time() - start)
        return best

    real = fastest(lambda: hasher.verify(stored, "a wrong guess"))
    dummy = fastest(lambda: hasher.verify_dummy("a wrong guess"))
    assert hasher.verify_dummy("the customer's password") is False
    # the dummy must do the argon2 work, not return at once (a generous band)
    assert dummy > real / 3


# --------------------------------------------------------------------------- tokens


def test_new_token_comes_with_its_lookup_hash():
    token, stored = new_token()
    assert len(token) >= 43
    assert stored == token_hash(token)
    assert len(stored) == 64 and stored != token


def test_tokens_are_never_repeated():
    assert len({new_token()[0] for _ in range(100)}) == 100


# --------------------------------------------------------------------------- security code


@pytest.mark.parametrize("code", ["12345", "x" * 65, "  ab  c ", "", 123456])
def test_security_code_outside_six_to_sixty_four_characters_is_refused(code):
    with pytest.raises(ValidationError) as refused:
        check_security_code_format(code)
    assert "code" in refused.value.fields


def test_security_code_of_six_and_sixty_four_characters_is_accepted():
    # Accepted, each answers the form that is hashed and that support's check is compared with.
    assert check_security_code_format("Abc123") == "abc123"
    assert check_security_code_format("X" * 64) == "x" * 64


def test_security_code_with_control_characters_is_refused():
    with pytest.raises(ValidationError):
        check_security_code_format("abc\x00def")


def test_security_code_told_to_support_matches_ignoring_case_and_spacing(hasher):
    stored = hash_security_code(hasher, "Blue  Whale 42")
    assert stored.startswith("$argon2id$")
    assert security_code_matches(hasher, stored, "blue whale 42")
    assert security_code_matches(hasher, stored, " BLUE WHALE 42 ")
    assert not security_code_matches(hasher, stored, "blue whale 43")


def test_security_code_check_without_a_stored_code_is_false(hasher):
    assert security_code_matches(hasher, None, "blue whale 42") is False
    assert security_code_matches(hasher, hash_security_code(hasher, "abcdef"), None) is False


# --------------------------------------------------------------------------- TOTP


SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def code_at(moment: datetime) -> str:
    return pyotp.TOTP(SECRET).at(moment)


def test_current_totp_code_is_accepted_and_answers_its_step():
    assert verify_totp(SECRET, code_at(NOON), NOON, None) == totp_step(NOON)


def test_totp_code_from_one_step_either_side_is_accepted():
    clock = FrozenClock(NOON)
    earlier, later = code_at(NOON - timedelta(seconds=30)), code_at(NOON + timedelta(seconds=30))
    assert verify_totp(SECRET, earlier, clock.now(), None) == totp_step(NOON) - 1
    assert verify_totp(SECRET, later, clock.now(), None) == totp_step(NOON) + 1


def test_totp_code_two_steps_old_is_refused():
    clock = FrozenClock(NOON)
    code = code_at(clock.now())
    clock.advance(seconds=60)
    assert verify_totp(SECRET, code, clock.now(), None) is None


def test_totp_code_cannot_be_replayed_in_the_same_step():
    used = verify_totp(SECRET, code_at(NOON), NOON, None)
    assert verify_totp(SECRET, code_at(NOON), NOON + timedelta(seconds=5), used) is None


def test_older_totp_code_is_refused_after_a_newer_one_was_used():
    used = verify_totp(SECRET, code_at(NOON), NOON, None)
    previous = code_at(NOON - timedelta(seconds=30))
    assert verify_totp(SECRET, previous, NOON, used) is None


def test_next_step_code_is_accepted_after_the_current_one_was_used():
    used = verify_totp(SECRET, code_at(NOON), NOON, None)
    later = NOON + timedelta(seconds=30)
    assert verify_totp(SECRET, code_at(later), later, used) == used + 1


def test_totp_code_with_spaces_is_accepted():
    code = code_at(NOON)
    assert verify_totp(SECRET, f"{code[:3]} {code[3:]}", NOON, None) == totp_step(NOON)


@pytest.mark.parametrize("code", ["12345", "1234567", "abcdef", "", None, 123456])
def test_anything_but_six_digits_is_not_a_totp_code(code):
    assert verify_totp(SECRET, code, NOON, None) is None


def test_wrong_totp_code_is_refused():
    right = code_at(NOON)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    assert verify_totp(SECRET, wrong, NOON, None) is None


def test_new_secret_works_with_an_authenticator_app():
    secret = new_totp_secret()
    assert len(secret) == 32
    app_code = pyotp.TOTP(secret).at(NOON)
    assert verify_totp(secret, app_code, NOON, None) is not None


def test_otpauth_uri_names_the_issuer_and_the_login():
    uri = urlparse(otpauth_uri(SECRET, "jkowalski"))
    assert uri.scheme == "otpauth" and uri.netloc == "totp"
    assert uri.path == "/Introserv:jkowalski"
    query = parse_qs(uri.query)
    assert query["secret"] == [SECRET] and query["issuer"] == ["Introserv"]


# --------------------------------------------------------------------------- recovery codes


def test_ten_recovery_codes_in_the_printed_format():
    codes, hashes = new_recovery_codes()
    assert len(codes) == len(hashes) == 10
    assert len(set(codes)) == 10
    for code in codes:
        assert len(code) == 12 and code[4] == "-" and code[9] == "-"
        assert code.replace("-", "").isalnum()
        assert not set(code) & set("01ilo")  # nothing to misread off paper
    assert not set(codes) & set(hashes)


def test_each_recovery_code_matches_its_own_hash():
    codes, hashes = new_recovery_codes(10)
    assert [match_recovery_code(code, hashes) for code in codes] == list(range(10))


def test_recovery_code_matches_in_any_case_without_dashes_or_with_spaces():
    codes, hashes = new_recovery_codes(3)
    raw = codes[1].replace("-", "")
    assert match_recovery_code(codes[1].upper(), hashes) == 1
    assert match_recovery_code(raw, hashes) == 1
    assert match_recovery_code(f" {raw[:4]} {raw[4:8]} {raw[8:]} ", hashes) == 1


def test_used_recovery_code_does_not_match_once_removed():
    codes, hashes = new_recovery_codes(3)
    used = match_recovery_code(codes[0], hashes)
    remaining = hashes[:used] + hashes[used + 1:]
    assert match_recovery_code(codes[0], remaining) is None
    assert match_recovery_code(codes[2], remaining) == 1


def test_unknown_recovery_code_matches_nothing():
    _, hashes = new_recovery_codes(10)
    assert match_recovery_code("abcd-efgh-jk", hashes) is None
    assert match_recovery_code("", hashes) is None
    assert match_recovery_code(None, hashes) is None
    assert match_recovery_code("abcd-efgh-jk", []) is None


def test_same_recovery_code_hashes_differently_for_two_accounts():
    _, first = new_recovery_codes(1)
    _, second = new_recovery_codes(1)
    assert first != second


# --------------------------------------------------------------------------- login backoff


@pytest.mark.parametrize("failures", [0, 1, 4])
def test_fewer_than_five_failures_never_wait(failures):
    assert login_backoff(failures, NOON, NOON) == 0


@pytest.mark.parametrize("failures, wait", [(5, 1), (6, 2), (7, 4), (8, 8), (10, 32), (14, 512), (15, 900),
                                            (16, 900), (1000, 900), (10**9, 900)])
def test_backoff_doubles_from_one_second_after_five_failures_up_to_fifteen_minutes(failures, wait):
    assert login_backoff(failures, NOON, NOON) == wait


def test_backoff_counts_down_from_the_last_failure():
    clock = FrozenClock(NOON)
    assert login_backoff(9, NOON, clock.now()) == 16
    clock.advance(seconds=10)
    assert login_backoff(9, NOON, clock.now()) == 6
    clock.advance(seconds=6)
    assert login_backoff(9, NOON, clock.now()) == 0


def test_backoff_rounds_a_part_second_up_to_a_whole_one():
    assert login_backoff(5, NOON, NOON + timedelta(milliseconds=999)) == 1
    assert login_backoff(6, NOON, NOON + timedelta(milliseconds=500)) == 2


def test_no_failure_recorded_means_no_wait():
    assert login_backoff(50, None, NOON) == 0


@settings(max_examples=60)
@given(st.integers(min_value=0, max_value=10**12))
def test_backoff_never_becomes_a_permanent_lock(failures):
    clock = FrozenClock(NOON)
    assert 0 <= login_backoff(failures, NOON, clock.now()) <= 900
    clock.advance(minutes=15)
    assert login_backoff(failures, NOON, clock.now()) == 0


# --------------------------------------------------------------------------- per-IP and security code limits


def test_ip_with_twenty_nine_failures_in_a_minute_may_try_again():
    failures = [NOON - timedelta(seconds=s) for s in range(29)]
    assert ip_limited(failures, NOON) == 0


def test_ip_with_thirty_failures_in_a_minute_waits_until_the_oldest_leaves_the_window():
    failures = [NOON - timedelta(seconds=s) for s in range(0, 60, 2)]  # 30 failures, oldest 58 s ago
    assert ip_limited(failures, NOON) == 2


def test_ip_failures_older_than_a_minute_do_not_count():
    failures = [NOON - timedelta(seconds=60 + s) for s in range(100)]
    assert ip_limited(failures, NOON) == 0


def test_ip_limit_and_window_are_adjustable():
    failures = [NOON - timedelta(seconds=1), NOON - timedelta(seconds=3)]
    assert ip_limited(failures, NOON, limit=2, window=timedelta(seconds=10)) == 7


def test_ip_retry_after_is_at_least_one_second():
    failures = [NOON - timedelta(seconds=59, milliseconds=999)] * 30
    assert ip_limited(failures, NOON) == 1


def test_ip_failure_times_may_come_in_any_order():
    failures = [NOON - timedelta(seconds=s) for s in range(30)]
    assert ip_limited(list(reversed(failures)), NOON) == ip_limited(failures, NOON) == 31


def test_fifth_wrong_security_code_in_an_hour_blocks_further_checks():
    clock = FrozenClock(NOON)
    failures = [NOON - timedelta(minutes=m) for m in (50, 40, 30, 20)]
    assert security_code_check_limited(failures, clock.now()) == 0
    failures.append(NOON)
    assert security_code_check_limited(failures, clock.now()) == 10 * 60
    clock.advance(minutes=10)
    assert security_code_check_limited(failures, clock.now()) == 0
