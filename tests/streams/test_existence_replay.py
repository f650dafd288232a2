"""Crash and replay: whatever prefix of a step's writes survives a crash, replaying
from an earlier committed offset publishes nothing but records already published
and ends in the same state as an uninterrupted run."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Hashable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from meter_support import Driver, Event, Run, at, events_of, server_traits, sighting

from stackmeter.streams.existence import MeterSettings, Sighting
from stackmeter.streams.hours import UsageRecord
from stackmeter.streams.state import TRAIT_POLICIES

RESOURCES = ("r0", "r1", "r2", "r3")
MINUTE_MS = 60_000


def frozen(record: UsageRecord) -> Hashable:
    return (
        record.usage_id,
        record.revision,
        record.project_id,
        record.resource_name,
        record.hour_ms,
        record.samples_observed,
        record.samples_expected,
        record.estimated,
        tuple(sorted(record.traits.items())),
        record.last_sampled_at_ms,
    )


def instant_of(event: Event) -> int:
    if isinstance(event, Sighting):
        return event.observation.sampled_at_ms
    return event.sampled_at_ms


@st.composite
def timelines(draw: st.DrawFn) -> list[Event]:
    """Runs 5 minutes apart with occasional gaps of hours, failures, and late
    snapshots from runs that never completed."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    instant = at("10:00")
    runs: list[Run] = []
    for _ in range(draw(st.integers(3, 45))):
        instant += 5 * MINUTE_MS * rng.choice([1, 1, 1, 1, 1, 1, 2, 13, 25])
        seen = [r for r in RESOURCES if rng.random() < 0.75]
        traits = {
            r: server_traits(rng.choice(["ACTIVE", "SHUTOFF"]), rng.randint(1, 4))
            for r in seen
        }
        rng.shuffle(seen)
        runs.append(Run(instant, seen, completed=rng.random() < 0.85, traits=traits))
    events = events_of(runs)
    for number in range(draw(st.integers(0, 4))):
        position = rng.randrange(len(events) + 1)
        before = [instant_of(e) for e in events[:position]] or [at("10:00")]
        back_ms = rng.randint(0, 180) * MINUTE_MS
        late_at = max(at("10:00"), max(before) - back_ms)
        resource = rng.choice(RESOURCES)
        events.insert(position, sighting(resource, late_at, run=f"late-{number}"))
    return events


meter_settings = st.builds(
    MeterSettings,
    grace_ms=st.sampled_from([0, 5 * MINUTE_MS, 15 * MINUTE_MS]),
    gap_fill=st.booleans(),
    gap_fill_max_hours=st.integers(1, 3),
    trait_policy=st.sampled_from(TRAIT_POLICIES),
    correction_horizon_hours=st.integers(0, 3),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=timelines(), config=meter_settings, data=st.data())
def test_replay_after_a_crash_publishes_only_what_an_uninterrupted_run_does(
    events: list[Event], config: MeterSettings, data: st.DataObject
) -> None:
    baseline = Driver(settings=config)
    baseline.feed(events)

    crashed = Driver(settings=config)
    k = data.draw(st.integers(0, len(events) - 1), label="crashing event")
    crashed.feed(events[:k])
    step = crashed.step(events[k])
    kept_writes = data.draw(st.integers(0, len(step.writes)), label="writes kept")
    # Writes start only after every record of the step is acknowledged.
    sent = (
        len(step.usage) if kept_writes else data.draw(st.integers(0, len(step.usage)))
    )
    crashed.usage.extend(step.usage[:sent])
    crashed.store.apply(step.writes[:kept_writes])
    committed = data.draw(st.integers(0, k), label="committed offset")
    crashed.feed(events[committed:])

    assert {frozen(r) for r in crashed.usage} == {frozen(r) for r in baseline.usage}
    assert crashed.store.clocks == baseline.store.clocks
    assert crashed.store.resources == baseline.store.resources
    assert crashed.store.emitted_hours == baseline.store.emitted_hours


@settings(max_examples=200, deadline=None)
@given(events=timelines(), config=meter_settings)
def test_revisions_of_a_usage_id_count_up_from_1_and_never_disagree(
    events: list[Event], config: MeterSettings
) -> None:
    driver = Driver(settings=config)
    driver.feed(events)
    contents: dict[tuple[str, int], set[Hashable]] = defaultdict(set)
    for record in driver.usage:
        contents[(record.usage_id, record.revision)].add(frozen(record))
    assert all(len(found) == 1 for found in contents.values())
    revisions: dict[str, list[int]] = defaultdict(list)
    for record in driver.usage:
        revisions[record.usage_id].append(record.revision)
    for found in revisions.values():
        assert found == list(range(1, len(found) + 1))
    for record in driver.usage:
        assert 0 <= record.samples_observed <= record.samples_expected
        assert not record.estimated or record.samples_observed == 0
