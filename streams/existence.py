"""The existence check and hourly usage of one partition, as a synchronous state
machine fed with snapshots and run markers (DESIGN.md §3 and §4).

Each input yields a :class:`Step`: the usage records to publish and the state
writes to apply afterwards. The caller publishes the records, waits until Kafka
has them, then applies the writes in order. A crash can therefore keep any
prefix of a step's writes, and replaying inputs from the last committed offset
over such a state emits only records identical to ones already published and
ends in the state an uninterrupted run reaches (a property test checks this).
Three rules make that hold: a marker writes its run clock first and, when the
marker that wrote the clock is replayed, does its resource work again (every
part of it is idempotent); published hours are written before the resource
drops their buckets; and a resource that still holds a bucket for a closed
hour (its marker was cut off) keeps taking sightings into it.

Semantics, per partition and scope (one platform and resource type):

- A *sighting* is a snapshot of resource R by run X at instant t; it puts X in
  R's bucket for hour ``H = floor(t)`` and picks the bucket's traits by the
  trait policy (the latest observation by default). Sightings of failed runs
  count the same: presence is presence.
- A *run marker* says run X at instant t is complete. Each partition gets every
  marker, after the run's snapshots on that partition.
- ``samples_expected`` of (R, H) is the number of completed runs of the scope
  in H; ``samples_observed`` is how many of those saw R. A sighting by a run
  that never completed adds presence (R is billed for H) but not to
  ``samples_observed``, which never exceeds ``samples_expected``.
- Life: R's tracked life starts at its first sighting. A marker of run X at t
  ends it when R's latest sighting is older than t, that is X did not see R
  (and no later run did). Only the partition that holds R's snapshots can
  decide that, which is why R's state lives there. A sighting after the
  ending instant starts a new life; one at or before it belongs to the old
  life (it arrived late). A failed run ends nothing.
- Stream time of the scope on the partition is the latest marker instant.
  Hour H closes when stream time passes ``H + 1h + grace``. Closing emits one
  record per resource with a bucket in H (revision 1, or the next revision if
  the hour was already published with other content, which happens only when
  a crash is replayed). Partitions without resources still close hours,
  since markers reach every partition.
- Gap policy: when a living R is seen at t after its previous sighting at s,
  every whole hour strictly between hour(s) and hour(t) that has no completed
  run gets an *estimated* bucket carrying the observation at s (samples
  observed and expected 0). It is decided when R is seen again, which is
  always before the markers that close those hours: a completed run that
  follows the gap and does not see R ends R's life first, so a resource
  deleted during the gap gets no estimated hours. A gap longer than
  ``gap_fill_max_hours`` is not filled and is reported in the step instead.
- A sighting for a closed hour corrects the published record: same usage id,
  revision + 1, only if the content changed (a replayed duplicate changes
  nothing). It does not change R's life. Published hours are kept for
  ``correction_horizon_hours`` behind the first open hour; a sighting older
  than that cannot be applied and is returned as rejected, for the
  dead-letter topic.
- A marker for an hour already closed is treated as the marker of a failed
  run: its hour was published and it changes no record and ends no life.
  A replayed marker other than the latest changes nothing.

State is bounded by the live resources: a resource's state is dropped once its
life ended and its hours closed, and its published hours once they fall out of
the correction horizon.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from stackmeter.config import WorkerConfig
from stackmeter.streams.hours import (
    HOUR_MS,
    UsageRecord,
    first_open_hour,
    hour_label,
    hour_start,
    usage_id,
)
from stackmeter.streams.state import (
    Clock,
    EmittedHour,
    EmittedHours,
    HourBucket,
    Observation,
    ResourceKey,
    ResourceState,
    Scope,
    TraitPolicy,
    first_bucket,
    later,
    new_life,
)
from stackmeter.streams.store import (
    ClockWrite,
    EmittedWrite,
    ResourceWrite,
    WindowStore,
    Write,
)


@dataclass(frozen=True, slots=True)
class MeterSettings:
    """The knobs of the existence check and the hour windows."""

    grace_ms: int = 300_000
    gap_fill: bool = True
    gap_fill_max_hours: int = 24
    trait_policy: TraitPolicy = "last"
    correction_horizon_hours: int = 6

    @property
    def horizon_ms(self) -> int:
        return self.correction_horizon_hours * HOUR_MS

    @classmethod
    def from_config(cls, worker: WorkerConfig) -> MeterSettings:
        policy: TraitPolicy = "last"
        if worker.trait_policy in ("first", "max"):
            policy = "first" if worker.trait_policy == "first" else "max"
        return cls(
            grace_ms=round(worker.grace_s * 1000),
            gap_fill=worker.gap_fill,
            gap_fill_max_hours=worker.gap_fill_max_h,
            trait_policy=policy,
            correction_horizon_hours=worker.correction_horizon_h,
        )


@dataclass(frozen=True, slots=True)
class Sighting:
    """A snapshot: resource ``key`` observed by a run."""

    key: ResourceKey
    observation: Observation


@dataclass(frozen=True, slots=True)
class RunCompleted:
    """A run marker: every snapshot of the run precedes it on the partition."""

    scope: Scope
    run_id: str
    sampled_at_ms: int
    resource_count: int = 0


@dataclass(slots=True)
class Step:
    """What one input changes: records to publish, then writes to apply."""

    usage: list[UsageRecord] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    # Why a sighting could not be applied; it belongs on the dead-letter topic.
    rejected: str | None = None
    duplicate: bool = False
    late_run: bool = False
    closed_hours: list[int] = field(default_factory=list)
    lives_ended: int = 0
    estimated_hours: int = 0
    unfilled_gap_hours: int = 0


class PartitionMeter:
    """The state machine of one partition over a :class:`WindowStore`."""

    def __init__(self, store: WindowStore, settings: MeterSettings) -> None:
        self._store = store
        self._settings = settings

    def observe(self, sighting: Sighting) -> Step:
        """Account for one snapshot."""
        key, obs = sighting.key, sighting.observation
        hour = hour_start(obs.sampled_at_ms)
        clock = self._store.clock(key.scope)
        state = self._store.resource(key)
        open_from = clock.open_from_ms if clock is not None else None
        # An hour below the open hour that the resource still holds was cut
        # off by a crash before the marker that closes it finished; the
        # replay of that marker publishes it, so it still takes sightings.
        held = state is not None and hour in state.hours
        closed = open_from is not None and hour < open_from
        if clock is not None and open_from is not None and closed and not held:
            return self._correct(key, obs, hour, clock, open_from)
        step = Step()
        tracked = self._track(state, obs, clock, step)
        if tracked == state:
            step.duplicate = True
        else:
            step.writes.append(ResourceWrite(key, tracked))
        return step

    def complete_run(self, run: RunCompleted) -> Step:
        """Account for one run marker: end lives, advance time, close hours."""
        old = self._store.clock(run.scope) or Clock()
        repeated = old.has_run(run.run_id, run.sampled_at_ms)
        if repeated and run.run_id != old.last_run_id:
            return Step(duplicate=True)
        if not repeated and old.is_closed(hour_start(run.sampled_at_ms)):
            return Step(late_run=True)
        clock = old if repeated else self._advance(old, run)
        open_from = clock.open_from_ms
        step = Step()
        # The clock is written first. The marker that wrote it, when replayed
        # after a crash, ends lives and closes hours once more: that finishes
        # whatever part of its work the crash cut off, and repeats none.
        if clock != old:
            step.writes.append(ClockWrite(run.scope, clock))
        if open_from is None:
            return step
        if old.open_from_ms is not None:
            step.closed_hours = list(range(old.open_from_ms, open_from, HOUR_MS))
        keep_from = open_from - self._settings.horizon_ms
        for resource_id, entry in sorted(self._store.index(run.scope).items()):
            ends_life = entry.alive and entry.last_seen_ms < run.sampled_at_ms
            closes = (
                entry.first_open_hour_ms is not None
                and entry.first_open_hour_ms < open_from
            )
            prunes = (
                entry.first_emitted_hour_ms is not None
                and entry.first_emitted_hour_ms < keep_from
            )
            if ends_life or closes or prunes:
                key = ResourceKey(*run.scope, resource_id)
                self._settle(key, run.sampled_at_ms, clock, step)
        step.duplicate = repeated and not step.writes
        return step

    def _advance(self, clock: Clock, run: RunCompleted) -> Clock:
        """The clock with the run added and stream time moved forward."""
        hour = hour_start(run.sampled_at_ms)
        runs = dict(clock.runs)
        runs[hour] = tuple(sorted((*clock.runs_in(hour), run.run_id)))
        stream_ms = max(clock.stream_ms or run.sampled_at_ms, run.sampled_at_ms)
        open_from = first_open_hour(stream_ms, self._settings.grace_ms)
        prune_below = open_from - self._settings.horizon_ms
        if clock.open_from_ms is not None:
            open_from = max(open_from, clock.open_from_ms)
            # Hours this marker closes keep their runs until the next marker,
            # so a replay of this one counts them alike.
            prune_below = min(open_from - self._settings.horizon_ms, clock.open_from_ms)
        kept = {h: r for h, r in runs.items() if h >= prune_below}
        return Clock(stream_ms, open_from, kept, last_run_id=run.run_id)

    def _track(
        self,
        state: ResourceState | None,
        obs: Observation,
        clock: Clock | None,
        step: Step,
    ) -> ResourceState:
        hour = hour_start(obs.sampled_at_ms)
        if state is None:
            state = new_life(obs)
        elif not state.alive and obs.sampled_at_ms > (state.ended_ms or 0):
            state = replace(new_life(obs), hours=state.hours)
        hours = dict(state.hours)
        if state.alive:
            hours.update(self._bridge(state, obs, clock, step))
        bucket = hours.get(hour)
        if bucket is None:
            hours[hour] = first_bucket(obs)
        else:
            hours[hour] = bucket.with_observation(obs, self._settings.trait_policy)
        return replace(state, last=later(state.last, obs), hours=hours)

    def _bridge(
        self, state: ResourceState, obs: Observation, clock: Clock | None, step: Step
    ) -> dict[int, HourBucket]:
        """Estimated buckets for whole hours without a run between two sightings."""
        gap = range(
            hour_start(state.last_seen_ms) + HOUR_MS,
            hour_start(obs.sampled_at_ms),
            HOUR_MS,
        )
        if not gap or not self._settings.gap_fill:
            return {}
        if len(gap) > self._settings.gap_fill_max_hours:
            step.unfilled_gap_hours = len(gap)
            return {}
        carried = HourBucket(chosen=state.last, estimated=True)
        filled = {
            hour: carried
            for hour in gap
            if hour not in state.hours
            and (clock is None or not (clock.is_closed(hour) or clock.runs_in(hour)))
        }
        step.estimated_hours = len(filled)
        return filled

    def _settle(self, key: ResourceKey, run_ms: int, clock: Clock, step: Step) -> None:
        """End the life, publish closed hours and prune one resource."""
        open_from = clock.open_from_ms or 0
        state = self._store.resource(key)
        emitted = self._store.emitted(key)
        published = dict(emitted.hours) if emitted is not None else {}
        remaining: dict[int, HourBucket] = {}
        settled = state
        if state is not None:
            if state.alive and state.last_seen_ms < run_ms:
                settled = replace(state, alive=False, ended_ms=run_ms)
                step.lives_ended += 1
            for hour, bucket in sorted(state.hours.items()):
                if hour >= open_from:
                    remaining[hour] = bucket
                    continue
                record = self._publish(key, hour, bucket, clock, published)
                if record is not None:
                    step.usage.append(record)

        keep_from = open_from - self._settings.horizon_ms
        kept = {h: e for h, e in published.items() if h >= keep_from}
        new_emitted = EmittedHours(kept) if kept else None
        # Published hours are written before the resource drops its buckets,
        # so no prefix of these writes forgets an hour that was published.
        if new_emitted != emitted:
            step.writes.append(EmittedWrite(key, new_emitted))
        if settled is not None:
            new_state: ResourceState | None = replace(settled, hours=remaining)
            if new_state is not None and not new_state.alive and not remaining:
                new_state = None
            if new_state != state:
                step.writes.append(ResourceWrite(key, new_state))

    def _publish(
        self,
        key: ResourceKey,
        hour: int,
        bucket: HourBucket,
        clock: Clock,
        published: dict[int, EmittedHour],
    ) -> UsageRecord | None:
        runs = clock.runs_in(hour)
        candidate = EmittedHour(1, bucket, len(runs), bucket.observed(runs))
        prior = published.get(hour)
        if prior is not None:
            if prior.same_content(candidate):
                return None
            candidate = replace(candidate, revision=prior.revision + 1)
        published[hour] = candidate
        return usage_record(key, hour, candidate)

    def _correct(
        self,
        key: ResourceKey,
        obs: Observation,
        hour: int,
        clock: Clock,
        open_from: int,
    ) -> Step:
        """A sighting for a closed hour: a corrected record, if anything changed."""
        horizon_start = open_from - self._settings.horizon_ms
        if hour < horizon_start:
            return Step(
                rejected=(
                    f"snapshot sampled in hour {hour_label(hour)} arrived after that "
                    f"hour closed and beyond the correction horizon of "
                    f"{self._settings.correction_horizon_hours} h (hours from "
                    f"{hour_label(horizon_start)} can still be corrected)"
                )
            )
        emitted = self._store.emitted(key) or EmittedHours()
        prior = emitted.hours.get(hour)
        policy = self._settings.trait_policy
        if prior is None:
            bucket = first_bucket(obs)
        else:
            bucket = prior.bucket.with_observation(obs, policy)
        runs = clock.runs_in(hour)
        revision = 1 if prior is None else prior.revision + 1
        candidate = EmittedHour(revision, bucket, len(runs), bucket.observed(runs))
        if prior is not None and prior.same_content(candidate):
            return Step(duplicate=True)
        hours = dict(emitted.hours)
        hours[hour] = candidate
        return Step(
            usage=[usage_record(key, hour, candidate)],
            writes=[EmittedWrite(key, EmittedHours(hours))],
        )


def usage_record(key: ResourceKey, hour: int, emitted: EmittedHour) -> UsageRecord:
    """The usage record of one published hour."""
    chosen = emitted.bucket.chosen
    return UsageRecord(
        usage_id=usage_id(key.platform_id, key.resource_type, key.resource_id, hour),
        revision=emitted.revision,
        platform_id=key.platform_id,
        resource_type=key.resource_type,
        project_id=chosen.project_id,
        resource_id=key.resource_id,
        resource_name=chosen.resource_name,
        hour_ms=hour,
        samples_observed=emitted.samples_observed,
        samples_expected=emitted.samples_expected,
        estimated=emitted.bucket.estimated,
        traits=dict(chosen.traits),
        last_sampled_at_ms=chosen.sampled_at_ms,
    )
