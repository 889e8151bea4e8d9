"""The physical limits the panel is measured against: Nameko with nothing behind it.

``nameko run bench.baselines:Echo`` answers an RPC with its argument, ``bench.baselines:Hello``
answers an HTTP GET with a constant; both are what any Nameko service costs before it does
any work, on the same broker and machine as the panel.
"""
from __future__ import annotations

from nameko.rpc import Rpc, rpc
from nameko.web.handlers import http

from services.common.consumer import TransientReplies


class Echo:
    name = "echo"

    @rpc
    def echo(self, value):
        return value


class _TransientReplyRpc(Rpc):
    rpc_consumer = TransientReplies()


class TunedEcho:
    """The echo, its replies sent as the services send theirs (transient, unconfirmed): the bus
    settings measured on their own (``rpc_echo_transient``, ``rpc_echo_unconfirmed``)."""

    name = "tuned_echo"

    @_TransientReplyRpc.decorator
    def echo(self, value):
        return value


class Hello:
    name = "hello"

    @http("GET", "/hello")
    def hello(self, request):
        return 200, '{"hello": "world"}'
