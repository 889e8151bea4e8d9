"""The benchmark's CPU accounting (bench/run.py): what a cell's requests cost each process, from
/proc times read on a settled stack before and after the cell."""
from __future__ import annotations

import itertools
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from bench import run as bench
from bench.run import Run, cell_cpu, cpu_by_name, cpu_table


def test_cpu_is_summed_by_name_and_a_process_started_meanwhile_counts_whole():
    before = {1: ("gateway", 5.0), 2: ("PostgreSQL", 1.0), 4: ("PostgreSQL", 3.0)}
    after = {1: ("gateway", 6.5), 2: ("PostgreSQL", 1.25), 3: ("PostgreSQL", 0.5)}   # 4 ended meanwhile
    assert cpu_by_name(before, after) == {"gateway": 1.5, "PostgreSQL": 0.75}


def test_a_cells_cpu_is_per_request_less_what_each_process_uses_at_rest():
    before = (10.0, {1: ("gateway", 5.0), 2: ("notifier", 2.0)}, {"gateway": 0.01, "notifier": 0.5})
    after = (20.0, {1: ("gateway", 6.0), 2: ("notifier", 2.1)}, {})
    cost = cell_cpu(before, after, requests=100, load_generator=0.3)
    assert cost == pytest.approx({"gateway": 9.0, "notifier": 0.0, "load generator": 3.0})


def test_the_table_names_the_processes_that_did_something_in_the_chains_order():
    rows = [{"profile": "1 replica", "target": "profile", "clients": 1,
             "cpu": {"PostgreSQL": 0.3, "profile": 2.0, "gateway": 1.7, "load generator": 0.4, "verification": 0.01}},
            {"profile": "1 replica", "target": "rpc_echo", "clients": 1,
             "cpu": {"baseline echo": 0.8, "RabbitMQ": 0.9, "load generator": 0.7}},
            {"profile": "month end", "target": "orders", "clients": 10}]
    header, rule, first, second = cpu_table(rows)[-4:]
    assert header == ("| profile | target | clients | all | gateway | profile | baseline echo | RabbitMQ | "
                      "PostgreSQL | load generator |")
    assert rule.count("|") == header.count("|")
    assert first == "| 1 replica | profile | 1 | 4.41 | 1.70 | 2.00 | 0.00 | 0.00 | 0.30 | 0.40 |"
    assert second == "| 1 replica | rpc_echo | 1 | 2.40 | 0.00 | 0.00 | 0.80 | 0.90 | 0.00 | 0.70 |"
    assert cpu_table([rows[2]]) == []


class Scripted(Run):
    """A run whose processes' CPU follows a script: the gateway's seconds at each second's reading."""

    def __init__(self, gateway_seconds):
        self.readings = iter(gateway_seconds)
        self.settled = None

    def cpu_snapshot(self):
        return {7: ("gateway", next(self.readings)), 9: ("RabbitMQ", 1.0)}

    def stack_cpu(self, snapshot):
        return snapshot[7][1]


@pytest.fixture
def seconds(monkeypatch):
    """The run's clock moves only when it sleeps."""
    now = [100.0]
    monkeypatch.setattr(bench.time, "sleep", lambda seconds: now.__setitem__(0, now[0] + seconds))
    monkeypatch.setattr(bench.time, "monotonic", lambda: now[0])
    return now


def test_the_stack_settles_after_three_quiet_seconds_and_keeps_their_rate(seconds):
    run = Scripted([0.0, 0.5, 1.0, 1.02, 1.04, 1.06, 9.9])   # busy for two seconds, then 0.02 a second
    run.settle()
    when, snapshot, at_rest = run.settled
    assert when == 105.0 and snapshot[7] == ("gateway", 1.06)
    assert at_rest["gateway"] == pytest.approx(0.02) and at_rest["RabbitMQ"] == 0.0


def test_a_stack_that_never_settles_is_measured_without_a_rate_at_rest(seconds):
    run = Scripted(itertools.count(0.0, 0.5))   # half a core, for ever
    run.settle(limit=30.0)
    assert run.settled[0] == 130.0 and run.settled[2] == {}


class Recorded(Run):
    """A run whose cells are only recorded: what was measured, in which order, with its CPU or not."""

    def __init__(self):
        self.cells = []

    def measure(self, setup_file, target, clients, profile, cpu=False):
        self.cells.append((target, clients, profile, cpu))
        return {"target": target, "clients": clients, "profile": profile, "rps": 100.0}


def test_a_target_is_measured_just_after_the_echo_it_is_held_against_and_only_the_target_is_accounted():
    run = Recorded()
    row = run.measure_beside_echo(None, "orders", 10, "2 replicas")
    assert run.cells == [("rpc_echo", 10, bench.PAIRED, False), ("orders", 10, "2 replicas", True)]
    assert row["echo_before"]["target"] == "rpc_echo"


def test_the_report_holds_each_target_against_the_first_echo_and_against_the_echo_just_before_it():
    def cell(profile, target, rps, **more):
        return {"profile": profile, "target": target, "clients": 1, "rps": rps, "p50": 0.004, "p95": 0.006,
                "p99": 0.008, "errors": 0, **more}
    echo_before = cell(bench.PAIRED, "rpc_echo", 400.0)
    rows = [cell("1 replica", "rpc_echo", 500.0), echo_before, cell("1 replica", "orders", 240.0, echo_before=echo_before)]
    run = SimpleNamespace(rows=rows, memory={"1 replica": {"orders": 80.0}}, requests=300)
    args = SimpleNamespace(accounts=10, order_every=4)
    table = bench.report(run, None, datetime(2026, 12, 7, tzinfo=timezone.utc), 60.0, args).splitlines()
    lines = [line for line in table if line.startswith("| 1 replica | orders |")]
    assert lines == ["| 1 replica | orders | 1 | 240.0 | 4.0 | 6.0 | 8.0 | 2.0 | 0 | rpc_echo | 0.48 | 400.0 | 0.60 | ≥ 0.5 |"]
    assert not [line for line in table if line.startswith(f"| {bench.PAIRED} |")]
