"""Scenario building for the worker's tests: a timeline of sampling runs turned
into snapshots and markers, and a driver that feeds them to a partition meter."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from stackmeter.streams.existence import (
    MeterSettings,
    PartitionMeter,
    RunCompleted,
    Sighting,
    Step,
)
from stackmeter.streams.hours import UsageRecord
from stackmeter.streams.state import Observation, ResourceKey, Scope
from stackmeter.streams.store import MemoryWindowStore

PLATFORM = "openstack.test-1"
SERVER = "nova.server"
SCOPE = Scope(PLATFORM, SERVER)
DAY = datetime(2025, 3, 3, tzinfo=UTC)
PROJECT = "p-0001"

Event = Sighting | RunCompleted


def at(clock_time: str, day: int = 0) -> int:
    """Milliseconds of ``HH:MM`` (or ``HH:MM:SS``) on the test day (plus days)."""
    parts = [int(p) for p in clock_time.split(":")]
    hours, minutes, seconds = [*parts, 0, 0][:3]
    base = int(DAY.timestamp() * 1000) + day * 86_400_000
    return base + ((hours * 60 + minutes) * 60 + seconds) * 1000


def hour(clock_time: str) -> int:
    """Milliseconds of the start of an hour given as ``HH``."""
    return at(f"{clock_time}:00")


def server_traits(state: str = "ACTIVE", vcpu: int = 2) -> dict[str, int | str | None]:
    return {
        "disk": 20,
        "diskEphemeral": 0,
        "diskRoot": 20,
        "flavor": "m1.small",
        "ramMb": 2048,
        "state": state,
        "vcpu": vcpu,
    }


def run_id(instant_ms: int, tag: str = "") -> str:
    """A stable run id per instant, so tests can name runs."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"run/{instant_ms}/{tag}"))


def sighting(
    resource_id: str,
    instant_ms: int,
    *,
    run: str | None = None,
    traits: dict[str, int | str | None] | None = None,
    scope: Scope = SCOPE,
) -> Sighting:
    return Sighting(
        key=ResourceKey(scope.platform_id, scope.resource_type, resource_id),
        observation=Observation(
            run_id=run or run_id(instant_ms),
            sampled_at_ms=instant_ms,
            project_id=PROJECT,
            resource_name=f"name-{resource_id}",
            traits=server_traits() if traits is None else traits,
        ),
    )


def marker(
    instant_ms: int, *, run: str | None = None, scope: Scope = SCOPE
) -> RunCompleted:
    return RunCompleted(
        scope=scope, run_id=run or run_id(instant_ms), sampled_at_ms=instant_ms
    )


@dataclass
class Run:
    """One sampling run: when, what it saw, whether it completed."""

    instant_ms: int
    seen: Sequence[str]
    completed: bool = True
    traits: dict[str, dict[str, int | str | None]] = field(default_factory=dict)

    def events(self, scope: Scope = SCOPE) -> list[Event]:
        rid = run_id(self.instant_ms)
        found: list[Event] = [
            sighting(
                resource,
                self.instant_ms,
                run=rid,
                traits=self.traits.get(resource),
                scope=scope,
            )
            for resource in self.seen
        ]
        if self.completed:
            found.append(marker(self.instant_ms, run=rid, scope=scope))
        return found


def every_5_min(start: str, end: str, seen: Sequence[str]) -> list[Run]:
    """Completed runs at each 5 minutes from ``start`` up to ``end`` included."""
    first, last = at(start), at(end)
    return [Run(t, list(seen)) for t in range(first, last + 1, 300_000)]


def events_of(runs: Iterable[Run], scope: Scope = SCOPE) -> list[Event]:
    return [event for run in runs for event in run.events(scope)]


@dataclass
class Driver:
    """Feeds events to one partition's meter, publishing then writing each step."""

    settings: MeterSettings = field(default_factory=MeterSettings)
    store: MemoryWindowStore = field(default_factory=MemoryWindowStore)
    usage: list[UsageRecord] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    def step(self, event: Event) -> Step:
        meter = PartitionMeter(self.store, self.settings)
        if isinstance(event, Sighting):
            return meter.observe(event)
        return meter.complete_run(event)

    def feed(self, events: Iterable[Event]) -> list[UsageRecord]:
        """Process events fully; returns the usage they published."""
        published: list[UsageRecord] = []
        for event in events:
            step = self.step(event)
            self.steps.append(step)
            published.extend(step.usage)
            if step.rejected is not None:
                self.rejected.append(step.rejected)
            self.store.apply(step.writes)
        self.usage.extend(published)
        return published

    def by_hour(self, resource_id: str) -> dict[int, UsageRecord]:
        """The latest revision of each hour published for a resource."""
        found: dict[int, UsageRecord] = {}
        for record in self.usage:
            if record.resource_id != resource_id:
                continue
            prior = found.get(record.hour_ms)
            if prior is None or record.revision > prior.revision:
                found[record.hour_ms] = record
        return found
