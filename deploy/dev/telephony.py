"""A telephony gateway stand-in: places flash calls, voice calls and SMS on paper, lists them, breaks on demand.

    python -m deploy.dev.telephony --port 8010 --name primary
    python -m deploy.dev.telephony --port 8011 --name fallback

``POST /v1/calls`` (bearer key) places a call, ``GET /calls?to=PHONE`` lists what was
placed (newest first), ``DELETE /calls`` forgets it, ``PUT /control {"mode": "ok" |
"fail" | "timeout"}`` breaks it, ``GET /health``. See README.md.
"""
from __future__ import annotations

import argparse
import hmac
import itertools
import os
import re
import secrets
import threading
from http.server import ThreadingHTTPServer

from deploy.dev import Record, StandInApi, serve_until_stopped
from services.common.clock import clock, iso

MODES = ("ok", "fail", "timeout")
CHANNELS = ("flash_call", "voice", "sms")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
CALLER_ID_POOLS = {"primary": "+4822307", "fallback": "+4858881"}  # +48 22 307 ####, +48 58 881 ####
OTHER_POOL = "+4812345"


class Gateway(Record):
    """What this gateway has done, newest first, and how it behaves (its mode)."""

    def __init__(self, name: str, api_key: str, caller_id_prefix: str, hold_seconds: float):
        super().__init__(MODES)
        self.name = name
        self.api_key = api_key
        self.caller_id_prefix = caller_id_prefix
        self.hold_seconds = hold_seconds
        self.stopping = threading.Event()
        self._ids = itertools.count(1)

    def place(self, to: str, channel: str, text: str | None) -> dict:
        call = {"id": f"{self.name}-{next(self._ids)}", "to": to, "channel": channel,
                "caller_id": None, "spoken_code": None, "text": None, "at": iso(clock.now())}
        if channel == "flash_call":
            # The customer types the last four digits of the number that rang.
            call["caller_id"] = f"{self.caller_id_prefix}{secrets.randbelow(10_000):04d}"
        elif channel == "voice":
            call["spoken_code"] = f"{secrets.randbelow(10_000):04d}"
        else:
            call["text"] = text
        return self.keep(call)


class TelephonyApi(StandInApi):
    """``POST /v1/calls`` places a call; ``/calls``: what was placed, for a number with ``?to=``."""

    listing_path = "/calls"

    @property
    def gateway(self) -> Gateway:
        return self.record

    def health(self) -> dict:
        return {**super().health(), "name": self.gateway.name}

    def is_to(self, item: dict, to: str) -> bool:
        return re.sub(r"\D", "", item["to"]) == re.sub(r"\D", "", to)

    def do_POST(self):
        if self.route != "/v1/calls":
            return self.not_found()
        body = self.read_json()
        if body is None:
            return
        if self.gateway.mode == "fail":
            return self.send_error_json(503, "unavailable", f"{self.gateway.name} gateway is down (stand-in mode fail)")
        if self.gateway.mode == "timeout":
            # Hold this request in its own thread; the server keeps answering others.
            self.gateway.stopping.wait(self.gateway.hold_seconds)
            return self.send_error_json(504, "timeout", f"{self.gateway.name} gateway held the call and gave up")
        if not self._authorised():
            return self.send_error_json(401, "unauthorised", "send Authorization: Bearer <api key>")
        problem = self._problem_with(body)
        if problem:
            return self.send_error_json(422, "invalid_request", problem)
        call = self.gateway.place(body["to"], body["channel"], body.get("text"))
        answer = {"id": call["id"], "to": call["to"], "channel": call["channel"]}
        if call["caller_id"]:
            answer["caller_id"] = call["caller_id"]
        if call["spoken_code"]:
            answer["code"] = call["spoken_code"]
        self.send_json(201, answer)

    def _authorised(self) -> bool:
        scheme, _, key = (self.headers.get("Authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(key.strip().encode(), self.gateway.api_key.encode())

    @staticmethod
    def _problem_with(body) -> str | None:
        if not isinstance(body, dict):
            return "the body must be a JSON object"
        if not isinstance(body.get("to"), str) or not E164.match(body["to"]):
            return "to must be a phone number in E.164 form, e.g. +48600100200"
        if body.get("channel") not in CHANNELS:
            return f"channel must be one of {', '.join(CHANNELS)}"
        if body["channel"] == "sms" and not (isinstance(body.get("text"), str) and body["text"].strip()):
            return "an sms needs a non-empty text"
        return None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy.dev.telephony", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("TELEPHONY_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("TELEPHONY_PORT", 8010)))
    parser.add_argument("--name", default="primary", help="how this gateway names itself (primary, fallback)")
    parser.add_argument("--api-key", default=os.environ.get("TELEPHONY_API_KEY", "dev"))
    parser.add_argument("--caller-id-prefix", default=None,
                        help="flash calls ring from this prefix plus four random digits "
                             "(default +4822307 for primary, +4858881 for fallback)")
    parser.add_argument("--hold-seconds", type=float, default=float(os.environ.get("TELEPHONY_HOLD_SECONDS", 30)),
                        help="how long mode timeout holds a call request unanswered")
    parser.add_argument("--verbose", action="store_true", help="log every HTTP request")
    args = parser.parse_args(argv)

    prefix = args.caller_id_prefix or CALLER_ID_POOLS.get(args.name, OTHER_POOL)
    gateway = Gateway(args.name, args.api_key, prefix, args.hold_seconds)
    web = ThreadingHTTPServer((args.host, args.port), TelephonyApi.serving(gateway, args.verbose))
    serve_until_stopped(web, f"telephony stand-in {args.name}: http://{args.host}:{args.port} (flash calls from {prefix}####)",
                        on_stop=gateway.stopping.set)


if __name__ == "__main__":
    main()
