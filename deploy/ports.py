"""Ports for private stacks and stand-ins: below the kernel's ephemeral range, never handed out twice.

``bind(("127.0.0.1", 0))`` answers with a port from the ephemeral range, the range every outgoing
connection (to RabbitMQ, to PostgreSQL, a health check's) takes its local port from. Between that
probe and the service binding the port, an outgoing connection may take it, and a later probe may
answer the same port again: a private stack takes about twenty ports, and a test run starts dozens
of stacks while CI's PostgreSQL lanes start theirs. Either way a service cannot listen, and the
stack never becomes healthy.

So ports are drawn at random from below the ephemeral range, where nothing connects from, and a
process never hands out the same one twice.
"""
from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

PRIVATE_PORTS = range(20000, 32768)   # below Linux's default ephemeral range (32768-60999)
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")

_handed_out: set[int] = set()
_lock = threading.Lock()
_random = random.Random()   # its own: a test that seeds `random` must not make two processes agree


def ephemeral_ports() -> range:
    """The range the kernel takes outgoing connections' local ports from."""
    try:
        low, high = (int(part) for part in EPHEMERAL_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return range(32768, 61000)
    return range(low, high + 1)


def candidate_ports() -> list[int]:
    ephemeral = ephemeral_ports()
    outside = [port for port in PRIVATE_PORTS if port not in ephemeral]
    # A kernel set to hand out nearly every port leaves none outside; any unprivileged one then.
    return outside or [port for port in range(1024, 65536) if port not in ephemeral] or list(range(1024, 65536))


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now, outside the ephemeral range, not handed out before by this process."""
    candidates = candidate_ports()
    with _lock:
        for _ in range(1000):
            port = _random.choice(candidates)
            if port in _handed_out:
                continue
            with socket.socket() as probe:
                try:
                    probe.bind((host, port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port among {len(candidates)} tried 1,000 times on {host}")
