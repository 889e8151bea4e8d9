"""The limits a stranger meets at the login form, over HTTP against the whole stack (issue 17).

Each client speaks from a loopback address of its own (127.0.0.2, .3, ...: the socket is bound
to it), and the stack trusts no proxy, so the address the limits count is the TCP peer's.
"""
from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
import uuid

from requests.adapters import HTTPAdapter

from tests.support import Api, error_code

OWNER, STRANGER, NOISY = "127.0.0.2", "127.0.0.3", "127.0.0.4"


class FromAddress(HTTPAdapter):
    """Connections bound to one local address: the gateway sees the client at that address."""

    def __init__(self, address: str):
        self.address = address
        super().__init__(pool_maxsize=64)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def client_at(api: Api, address: str) -> Api:
    client = Api(api.base_url)
    client.http.mount("http://", FromAddress(address))
    return client


def log_in(client: Api, login: str, password: str):
    return client.post("/api/v1/sessions", {"login": login, "password": password})


def test_the_owner_logs_in_from_home_while_a_stranger_is_held_at_429(api, customer):
    anna = customer()
    login, owner, stranger = anna.profile["login"], client_at(api, OWNER), client_at(api, STRANGER)
    assert log_in(owner, login, anna.password).status_code == 201  # home: a good login makes it familiar
    answers = [log_in(stranger, login, f"guess number {n}") for n in range(7)]
    assert [a.status_code for a in answers[:5]] == [401] * 5
    held = answers[5]
    assert held.status_code == 429 and error_code(held) == "rate_limited" and int(held.headers["Retry-After"]) >= 1
    assert log_in(stranger, login, anna.password).status_code == 429  # even with the right password
    at_home = log_in(owner, login, anna.password)
    assert at_home.status_code == 201, at_home.text
    seen = [(item["ip"], item["success"]) for item in anna.get("/api/v1/security/logins").json()["items"]]
    assert seen[0] == (OWNER, True) and seen.count((STRANGER, False)) == 5


def test_sixty_failures_sent_at_once_from_one_address_are_judged_thirty_times(api):
    noisy = client_at(api, NOISY)
    with ThreadPoolExecutor(max_workers=60) as pool:
        answers = list(pool.map(lambda n: log_in(noisy, f"nobody-{n}-{uuid.uuid4().hex[:6]}", "whatever it is"),
                                range(60)))
    seen = Counter(a.status_code for a in answers)
    assert seen == {401: 30, 429: 30}, seen
    assert all(1 <= int(a.headers["Retry-After"]) <= 60 for a in answers if a.status_code == 429)
