"""The sampler: lists OpenStack resources on an interval and publishes Avro
snapshots and run markers to Kafka (see DESIGN.md §3)."""

from stackmeter.producers.clock import Clock, HttpClock, PolledClock, WallClock
from stackmeter.producers.collectors import COLLECTORS, Observation, gib_from_bytes
from stackmeter.producers.runs import RunResult
from stackmeter.producers.sampler import (
    PROJECTS_RUN,
    Sampler,
    run_sampler,
    sample_once,
)

__all__ = [
    "COLLECTORS",
    "PROJECTS_RUN",
    "Clock",
    "HttpClock",
    "Observation",
    "PolledClock",
    "RunResult",
    "Sampler",
    "WallClock",
    "gib_from_bytes",
    "run_sampler",
    "sample_once",
]
