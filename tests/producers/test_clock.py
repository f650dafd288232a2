"""The clocks a sampler can be given, and the schedule it keeps with them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from prometheus_client import REGISTRY, generate_latest

from stackmeter.producers import metrics
from stackmeter.producers.clock import (
    HttpClock,
    PolledClock,
    WallClock,
    jittered,
    to_millis,
)
from stackmeter.producers.runs import RunResult
from stackmeter.producers.sampler import _next_slot
from stackmeter.simulator import Scenario, SimClock, Simulator

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def test_to_millis_drops_microseconds_and_converts_to_utc() -> None:
    moment = datetime(2026, 1, 5, 9, 0, 0, 123987, tzinfo=timezone(timedelta(hours=1)))
    assert to_millis(moment) == datetime(2026, 1, 5, 8, 0, 0, 123000, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        to_millis(datetime(2026, 1, 5))


async def test_polled_clock_waits_for_a_frozen_clock_to_be_moved() -> None:
    sim = SimClock(T0)
    clock = PolledClock(sim.now, poll_s=0.01)
    waiter = asyncio.create_task(clock.sleep_until(T0 + timedelta(minutes=5)))
    await asyncio.sleep(0.1)
    assert not waiter.done()
    sim.advance(300)
    await asyncio.wait_for(waiter, timeout=5)
    assert clock.now() == T0 + timedelta(minutes=5)


async def test_polled_clock_follows_an_accelerated_clock() -> None:
    clock = PolledClock(SimClock(T0, speed=3600.0).now, poll_s=0.01)
    # One simulated hour passes in about one real second.
    await asyncio.wait_for(clock.sleep_until(T0 + timedelta(minutes=6)), timeout=5)


def test_http_clock_reads_the_simulator_control_endpoint(
    start_simulator: Callable[[Scenario], Simulator],
) -> None:
    simulator = start_simulator(Scenario(start=T0 + timedelta(seconds=7.5)))
    clock = HttpClock(simulator.base_url)
    assert clock.now() == T0 + timedelta(seconds=7.5)
    simulator.clock.advance(3600)
    assert clock.now() == T0 + timedelta(hours=1, seconds=7.5)


async def test_wall_clock_does_not_wait_for_the_past() -> None:
    clock = WallClock()
    await asyncio.wait_for(clock.sleep_until(clock.now() - timedelta(hours=1)), 1)


def test_jitter_only_ever_delays() -> None:
    assert jittered(T0, 10.0, lambda: 0.0) == T0
    assert jittered(T0, 10.0, lambda: 0.5) == T0 + timedelta(seconds=5)


def test_next_slot_keeps_the_schedule_and_skips_overrun_slots() -> None:
    interval = timedelta(minutes=5)
    assert _next_slot(T0, interval, T0 + timedelta(seconds=30), "t") == T0 + interval
    overran = _next_slot(T0, interval, T0 + timedelta(minutes=12), "t")
    assert overran == T0 + timedelta(minutes=15)


def test_run_outcomes_are_exposed_for_prometheus() -> None:
    labels = {"platform": "openstack.metrics-test", "type": "nova.server"}
    api_failure = RunResult(
        type_id="nova.server",
        platform_id="openstack.metrics-test",
        run_id="r1",
        sampled_at=T0,
        resources=40,
        pages=2,
        seconds=1.5,
        published=40,
        completed=False,
        error="HTTP 500",
        error_kind="api",
    )
    metrics.record_run(api_failure)
    metrics.record_run(replace(api_failure, error_kind="publish", error="Kafka"))
    metrics.record_run(
        replace(api_failure, completed=True, resources=90, error=None, error_kind=None)
    )

    value = REGISTRY.get_sample_value
    assert value("stackmeter_sampler_api_errors_total", labels) == 1
    assert value("stackmeter_sampler_publish_errors_total", labels) == 1
    assert value("stackmeter_sampler_runs_total", {**labels, "outcome": "failed"}) == 2
    completed = {**labels, "outcome": "completed"}
    assert value("stackmeter_sampler_runs_total", completed) == 1
    assert value("stackmeter_sampler_run_duration_seconds_count", labels) == 3
    assert value("stackmeter_sampler_run_resources", labels) == 90
    last = value("stackmeter_sampler_last_completed_run_timestamp_seconds", labels)
    assert last == T0.timestamp()
    assert b"stackmeter_sampler_run_pages{" in generate_latest(REGISTRY)
