"""Which bearer tokens the profile service vouched for a moment ago (issue 10).

Every authenticated request used to cost one ``profile.authenticate`` RPC before its own
call, which halved the gateway's reads. The gateway now remembers profile's answer per
(token, client IP) for ``AUTH_CACHE_SECONDS`` (2 s by default, 0 turns it off), and never
past the session's own ``expires_at``. Only answers that let a request in are kept: a
refusal is asked again every time.

What keeps the API's guarantees (a session ended, a password changed, an IP list changed
or an account frozen stops working at once):
- every profile call through this gateway that can end sessions or narrow access
  (``ACCESS_CHANGING``) forgets the account's tokens here when it returns or fails;
- an answer that was in flight while something was forgotten is not kept (the epoch);
- a different client IP is a different entry, so the IP list is checked for it afresh.
The bound: a change made through another gateway replica, or by an operator over RPC,
is seen here at most ``AUTH_CACHE_SECONDS`` later.
"""
from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from datetime import datetime

from services.common.clock import clock
from services.common.config import env_float
from services.common.rpc import ServiceRpc

# Profile calls after which a token that worked may no longer work. Each names the account first,
# except log_out (the token) and confirm_password_reset (no session: its answer names the account).
ACCESS_CHANGING = frozenset({"log_out", "end_other_sessions", "end_session", "change_password",
                             "set_ip_restriction", "freeze", "confirm_password_reset"})


def _digest(token: str) -> str:
    # The raw token never stays in the gateway's memory.
    return hashlib.sha256(token.encode()).hexdigest()


class VouchedSessions:
    """Profile's recent "yes, this token may be used from this IP" answers, bounded in size."""

    def __init__(self, seconds: float | None = None, size: int = 10_000, now=time.monotonic, wall=clock.now):
        self.seconds = env_float("AUTH_CACHE_SECONDS", 2.0) if seconds is None else seconds
        self.size = size
        self._now = now
        self._wall = wall
        self._answers: OrderedDict[tuple[str, str], tuple[float, datetime | None, dict]] = OrderedDict()
        self.epoch = 0

    def lookup(self, token: str, ip: str) -> dict | None:
        """Profile's answer for this token and IP if it is recent and the session has not expired."""
        key = (_digest(token), ip)
        entry = self._answers.get(key)
        if entry is None:
            return None
        fresh_until, expires_at, who = entry
        if self._now() >= fresh_until or (expires_at is not None and self._wall() >= expires_at):
            self._answers.pop(key, None)
            return None
        return who

    def remember(self, token: str, ip: str, who: dict, epoch: int) -> None:
        """Keep ``who`` unless something was forgotten since the lookup began (``epoch``)."""
        if self.seconds <= 0 or epoch != self.epoch:
            return
        expires_at = who.get("expires_at")
        self._answers[(_digest(token), ip)] = (
            self._now() + self.seconds, datetime.fromisoformat(expires_at) if expires_at else None,
            {"account_id": who["account_id"], "session_id": who["session_id"]})
        while len(self._answers) > self.size:
            self._answers.popitem(last=False)

    def forget(self, account_id: str | None = None, token: str | None = None) -> None:
        """Drop every answer for the account (or for one token); answers in flight are not kept."""
        self.epoch += 1
        digest = _digest(token) if isinstance(token, str) else None
        for key, (_, _, who) in list(self._answers.items()):
            if key[0] == digest or who["account_id"] == account_id:
                self._answers.pop(key, None)

    def forget_all(self) -> None:
        """Drop every answer: for a change whose account is not known here (a reset that failed midway)."""
        self.epoch += 1
        self._answers.clear()


class ProfileRpc(ServiceRpc):
    """The gateway's profile proxy: calls that change access forget the vouched tokens."""

    def __init__(self, vouched: VouchedSessions, **options):
        super().__init__("profile", **options)
        self.vouched = vouched

    def get_dependency(self, worker_ctx):
        return _ForgettingProxy(super().get_dependency(worker_ctx), self.vouched)


class _ForgettingProxy:
    def __init__(self, proxy, vouched: VouchedSessions):
        self._proxy = proxy
        self._vouched = vouched

    def __getattr__(self, name):
        method = getattr(self._proxy, name)
        if name not in ACCESS_CHANGING:
            return method

        def invoke(*args, **kwargs):
            answer = None
            try:
                answer = method(*args, **kwargs)
                return answer
            finally:
                # Also after a failure or a timeout: the change may have happened anyway.
                if name == "log_out":
                    self._vouched.forget(token=args[0] if args else kwargs.get("token"))
                elif name == "confirm_password_reset":
                    if isinstance(answer, dict) and answer.get("account_id"):
                        self._vouched.forget(account_id=answer["account_id"])
                    else:
                        self._vouched.forget_all()  # a refusal changed nothing, but a timeout may have
                else:
                    self._vouched.forget(account_id=args[0] if args else kwargs.get("account_id"))
        return invoke
