"""Which bearer tokens the profile service vouched for, kept as long as their sessions (issue 19).

Every authenticated request used to cost one ``profile.authenticate`` RPC before its own call.
The gateway remembers profile's answer per (token, client IP) until the session expires, and is
told at once when it stops being true: profile announces ``session_access_changed`` (through
its outbox, in the transaction that ended a session or narrowed access) for a logout, "log out
others", one session deleted, a password changed or reset, an account frozen (by its owner or
an operator) and an IP list changed; every gateway replica hears it on a queue of its own
(:class:`AccessChanged`) and drops the account's answers. Only answers that let a request in
are kept: a refusal is asked again every time.

What keeps the API's guarantees (a session ended, a password changed, an IP list changed or an
account frozen stops working at once):
- through this replica: every profile call that can end sessions or narrow access
  (``ACCESS_CHANGING``) forgets the account's tokens here when it returns or fails, before
  the customer has the answer;
- through another replica or an operator: the event, within the time it takes to publish and
  deliver (README Performance);
- an answer that was in flight while something was forgotten is not kept (the epoch);
- a different client IP is a different entry, so the IP list is checked for it afresh;
- the replica keeps nothing while it is not listening: before its event queue is consuming,
  and from the moment its connection to the broker is lost until it consumes again, when it
  starts from an empty memory (events published meanwhile went nowhere: the queue is the
  replica's own and goes with its connection);
- once a minute (``AUTH_CACHE_SECONDS``) a session in use is asked about again, off the
  request's path: profile writes its ``last_seen_at`` (to the minute), and a refusal then
  drops it, which also bounds what a lost event could cost.
"""
from __future__ import annotations

import contextlib
import hashlib
import time
from collections import OrderedDict
from datetime import datetime

import eventlet
import structlog
from kombu import Queue
from nameko.events import BROADCAST, EventHandler
from nameko.extensions import DependencyProvider, SharedExtension

from services.common.clock import clock
from services.common.config import env_float
from services.common.consumer import ResilientQueueConsumer
from services.common.errors import DomainError
from services.common.rpc import ServiceRpc

log = structlog.get_logger(__name__)

# Profile calls after which a token that worked may no longer work. Each names the account first,
# except log_out (the token) and confirm_password_reset (no session: its answer names the account).
ACCESS_CHANGING = frozenset({"log_out", "end_other_sessions", "end_session", "change_password",
                             "set_ip_restriction", "freeze", "confirm_password_reset"})
# profile's event when sessions of an account ended or their access narrowed (docs/CONTRACTS.md)
ACCESS_CHANGED = "session_access_changed"


def _digest(token: str) -> str:
    # The raw token never stays in the gateway's memory.
    return hashlib.sha256(token.encode()).hexdigest()


class VouchedSessions(SharedExtension):
    """Profile's "yes, this token may be used from this IP" answers, bounded in size; one per
    gateway container, shared by its profile proxy, its event entrypoint and its requests."""

    def __init__(self, seconds: float | None = None, size: int = 100_000, now=time.monotonic, wall=clock.now):
        # How often a session in use is asked about again (its last_seen_at); 0 turns remembering off.
        self.seconds = env_float("AUTH_CACHE_SECONDS", 60.0) if seconds is None else seconds
        self.size = size
        self._now = now
        self._wall = wall
        self._answers: OrderedDict[tuple[str, str], list] = OrderedDict()
        self.epoch = 0
        self.listening = False

    def lookup(self, token: str, ip: str) -> dict | None:
        """Profile's answer for this token and IP while its session lasts, or None: ask profile."""
        key = (_digest(token), ip)
        entry = self._answers.get(key)
        if entry is None or not self.listening:
            return None
        _, expires_at, who = entry
        if expires_at is not None and self._wall() >= expires_at:
            self._answers.pop(key, None)
            return None
        return who

    def due(self, token: str, ip: str) -> bool:
        """Whether profile should hear of this session again (once every ``seconds``); true once a period."""
        entry = self._answers.get((_digest(token), ip))
        if entry is None or self._now() < entry[0]:
            return False
        entry[0] = self._now() + self.seconds
        return True

    def remember(self, token: str, ip: str, who: dict, epoch: int) -> None:
        """Keep ``who`` unless something was forgotten since the lookup began (``epoch``), or
        this replica is not listening to profile's events."""
        if self.seconds <= 0 or epoch != self.epoch or not self.listening:
            return
        expires_at = who.get("expires_at")
        key = (_digest(token), ip)
        self._answers[key] = [self._now() + self.seconds,
                              datetime.fromisoformat(expires_at) if expires_at else None,
                              {"account_id": who["account_id"], "session_id": who["session_id"]}]
        self._answers.move_to_end(key)
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

    def listen(self) -> None:
        """Profile's events reach this replica (again): start from nothing, keep answers from now on."""
        self.forget_all()
        self.listening = True

    def stop_listening(self) -> None:
        """Events may be missed from now on: keep nothing and use nothing until :meth:`listen`."""
        self.listening = False
        self.forget_all()


class _ListeningQueueConsumer(ResilientQueueConsumer):
    """The consumer of the session events alone (a connection of its own), which tells its
    entrypoints when it starts consuming and when it stops, whatever the reason."""

    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        for provider in list(self._providers):
            provider.consuming()
        super().on_consume_ready(connection, channel, consumers, **kwargs)

    @contextlib.contextmanager
    def consumer_context(self, **kwargs):
        try:
            with super().consumer_context(**kwargs) as found:
                yield found
        finally:   # the connection was lost (or the service stops): events may go by unheard
            for provider in list(self._providers):
                provider.not_consuming()


class AccessChanged(EventHandler):
    """``@AccessChanged.decorator()``: profile's ``session_access_changed`` on this
    replica's own queue (Nameko's BROADCAST: exclusive, deleted with its connection), handled
    by the entrypoint itself, without waiting for a worker: the account's answers are dropped."""

    queue_consumer = _ListeningQueueConsumer()
    vouched = VouchedSessions()

    def __init__(self, **kwargs):
        super().__init__("profile", ACCESS_CHANGED, handler_type=BROADCAST, reliable_delivery=False, **kwargs)

    def setup(self):
        super().setup()
        # Not durable: it dies with its connection anyway, and so a vhost whose default queue type
        # is quorum (Kubernetes) leaves it classic.
        queue = self.queue
        self.queue = Queue(queue.name, exchange=queue.exchange, routing_key=queue.routing_key, durable=False,
                           auto_delete=True, exclusive=True)

    def consuming(self) -> None:
        self.vouched.listen()
        log.info("listening to profile's session events; remembered sessions start afresh")

    def not_consuming(self) -> None:
        self.vouched.stop_listening()
        log.info("not listening to profile's session events; every token is asked about")

    def handle_message(self, body, message):
        account_id = body.get("account_id") if isinstance(body, dict) else None
        if isinstance(account_id, str):
            self.vouched.forget(account_id=account_id)
        else:
            self.vouched.forget_all()
        self.queue_consumer.ack_message(message)


def ask_again_later(profile, vouched: VouchedSessions, token: str, ip: str) -> None:
    """Off the request's path: profile writes the session's ``last_seen_at``; a refusal forgets it."""
    def ask():
        try:
            profile.authenticate(token, ip)
        except DomainError as refusal:
            if refusal.error_code != "service_unavailable":
                vouched.forget(token=token)
        except Exception as exc:  # never the request's failure
            log.warning("could not ask profile about a remembered session", error=repr(exc))
    eventlet.spawn_n(ask)


class Vouched(DependencyProvider):
    """``vouched = Vouched()``: the container's :class:`VouchedSessions`."""

    sessions = VouchedSessions()

    def get_dependency(self, worker_ctx):
        return self.sessions


class ProfileRpc(ServiceRpc):
    """The gateway's profile proxy: calls that change access forget the vouched tokens."""

    vouched = VouchedSessions()

    def __init__(self, **options):
        super().__init__("profile", **options)

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
