"""Private stacks' ports: never the same twice, never where outgoing connections take theirs."""
from __future__ import annotations

import socket

from deploy.ports import ephemeral_ports, free_port


def test_a_process_never_hands_out_the_same_port_twice_even_when_it_is_free_again():
    ports = [free_port() for _ in range(300)]   # each closed at once: the kernel would answer some again
    assert len(set(ports)) == len(ports)


def test_ports_lie_outside_the_range_outgoing_connections_take_theirs_from():
    ephemeral = ephemeral_ports()
    assert not [port for port in (free_port() for _ in range(100)) if port in ephemeral]


def test_a_port_something_listens_on_is_not_handed_out(monkeypatch):
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", free_port()))
        listening.listen()
        taken = listening.getsockname()[1]
        monkeypatch.setattr("deploy.ports.candidate_ports", lambda: [taken, taken + 1])
        monkeypatch.setattr("deploy.ports._handed_out", set())
        assert free_port() == taken + 1
