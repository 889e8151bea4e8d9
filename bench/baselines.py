"""The physical limits the panel is measured against: Nameko with nothing behind it.

``nameko run bench.baselines:Echo`` answers an RPC with its argument, ``bench.baselines:Hello``
answers an HTTP GET with a constant; both are what any Nameko service costs before it does
any work, on the same broker and machine as the panel.
"""
from __future__ import annotations

from nameko.rpc import rpc
from nameko.web.handlers import http


class Echo:
    name = "echo"

    @rpc
    def echo(self, value):
        return value


class Hello:
    name = "hello"

    @http("GET", "/hello")
    def hello(self, request):
        return 200, '{"hello": "world"}'
