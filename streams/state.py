"""The worker's window state: observations, hour buckets, resource lives and run
clocks, as immutable values with the JSON form they take in the Faust table.

Every value is replaced, never changed in place, so a state machine step can be
computed first and written afterwards (see :mod:`stackmeter.streams.existence`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, NamedTuple

from stackmeter.streams.hours import TraitValue, hour_start

TraitPolicy = Literal["last", "first", "max"]
TRAIT_POLICIES: tuple[TraitPolicy, ...] = ("last", "first", "max")


class Scope(NamedTuple):
    """What one sampling run lists: one resource type on one platform."""

    platform_id: str
    resource_type: str


class ResourceKey(NamedTuple):
    """One resource; OpenStack never reuses its id within a platform and type."""

    platform_id: str
    resource_type: str
    resource_id: str

    @property
    def scope(self) -> Scope:
        return Scope(self.platform_id, self.resource_type)


@dataclass(frozen=True, slots=True)
class Observation:
    """What one snapshot said about a resource, without the resource's key."""

    run_id: str
    sampled_at_ms: int
    project_id: str
    resource_name: str
    traits: dict[str, TraitValue]

    def order(self) -> tuple[int, str]:
        """Sort key; the run id breaks ties so replays choose alike."""
        return (self.sampled_at_ms, self.run_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "at": self.sampled_at_ms,
            "project": self.project_id,
            "name": self.resource_name,
            "traits": self.traits,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Observation:
        return cls(
            run_id=data["run"],
            sampled_at_ms=data["at"],
            project_id=data["project"],
            resource_name=data["name"],
            traits=data["traits"],
        )


def later(a: Observation, b: Observation) -> Observation:
    """The later of two observations."""
    return b if b.order() > a.order() else a


def choose(current: Observation, new: Observation, policy: TraitPolicy) -> Observation:
    """The observation whose traits represent an hour after ``new`` arrives.

    ``last`` keeps the latest observation, ``first`` the earliest; ``max``
    takes the latest observation with each integer trait raised to the
    largest value seen in the hour (text traits stay the latest ones), so a
    volume resized down within the hour is billed at its larger size.
    """
    if policy == "last":
        return later(current, new)
    if policy == "first":
        return current if current.order() <= new.order() else new
    latest, other = (new, current) if new.order() > current.order() else (current, new)
    traits = dict(latest.traits)
    for name, value in other.traits.items():
        mine = traits.get(name)
        if isinstance(value, int) and (not isinstance(mine, int) or value > mine):
            traits[name] = value
    return replace(latest, traits=traits)


@dataclass(frozen=True, slots=True)
class HourBucket:
    """Sightings of one resource in one hour.

    ``seen_runs`` holds every run whose snapshot saw the resource in the hour,
    completed or not; ``chosen`` is the observation whose traits the usage
    reports. An ``estimated`` bucket has no sighting: it fills an hour inside a
    sampling gap and carries the last observation before the gap.
    """

    chosen: Observation
    seen_runs: tuple[str, ...] = ()
    estimated: bool = False

    def with_observation(self, obs: Observation, policy: TraitPolicy) -> HourBucket:
        if self.estimated:
            return HourBucket(chosen=obs, seen_runs=(obs.run_id,))
        runs = self.seen_runs
        if obs.run_id not in runs:
            runs = tuple(sorted((*runs, obs.run_id)))
        return HourBucket(chosen=choose(self.chosen, obs, policy), seen_runs=runs)

    def observed(self, completed_runs: tuple[str, ...]) -> int:
        """How many of the hour's completed runs saw the resource."""
        return len(set(self.seen_runs).intersection(completed_runs))

    def to_json(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen.to_json(),
            "runs": list(self.seen_runs),
            "estimated": self.estimated,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HourBucket:
        return cls(
            chosen=Observation.from_json(data["chosen"]),
            seen_runs=tuple(data["runs"]),
            estimated=data["estimated"],
        )


def first_bucket(obs: Observation) -> HourBucket:
    return HourBucket(chosen=obs, seen_runs=(obs.run_id,))


@dataclass(frozen=True, slots=True)
class ResourceState:
    """A resource's tracked life and its sightings in hours not yet closed.

    ``last`` is the latest observation of the resource. ``alive`` turns false
    when a completed run sampled after ``last`` did not see it; ``ended_ms``
    is that run's sampling instant.
    """

    alive: bool
    last: Observation
    ended_ms: int | None = None
    hours: dict[int, HourBucket] = field(default_factory=dict)

    @property
    def last_seen_ms(self) -> int:
        return self.last.sampled_at_ms

    def first_open_hour(self) -> int | None:
        return min(self.hours) if self.hours else None

    def to_json(self) -> dict[str, Any]:
        return {
            "alive": self.alive,
            "last": self.last.to_json(),
            "ended": self.ended_ms,
            "hours": {str(h): b.to_json() for h, b in sorted(self.hours.items())},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResourceState:
        return cls(
            alive=data["alive"],
            last=Observation.from_json(data["last"]),
            ended_ms=data["ended"],
            hours={int(h): HourBucket.from_json(b) for h, b in data["hours"].items()},
        )


def new_life(obs: Observation) -> ResourceState:
    """A resource seen for the first time, or again after its life ended."""
    return ResourceState(alive=True, last=obs, hours={})


@dataclass(frozen=True, slots=True)
class EmittedHour:
    """An hour already published for a resource, kept to issue corrections."""

    revision: int
    bucket: HourBucket
    samples_expected: int
    samples_observed: int

    def same_content(self, other: EmittedHour) -> bool:
        """True when both would publish the same record, revision aside."""
        return (
            self.bucket.chosen == other.bucket.chosen
            and self.bucket.estimated == other.bucket.estimated
            and self.samples_expected == other.samples_expected
            and self.samples_observed == other.samples_observed
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "bucket": self.bucket.to_json(),
            "expected": self.samples_expected,
            "observed": self.samples_observed,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EmittedHour:
        return cls(
            revision=data["revision"],
            bucket=HourBucket.from_json(data["bucket"]),
            samples_expected=data["expected"],
            samples_observed=data["observed"],
        )


@dataclass(frozen=True, slots=True)
class EmittedHours:
    """A resource's published hours within the correction horizon."""

    hours: dict[int, EmittedHour] = field(default_factory=dict)

    def first_hour(self) -> int | None:
        return min(self.hours) if self.hours else None

    def to_json(self) -> dict[str, Any]:
        return {str(h): e.to_json() for h, e in sorted(self.hours.items())}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EmittedHours:
        return cls({int(h): EmittedHour.from_json(e) for h, e in data.items()})


@dataclass(frozen=True, slots=True)
class Clock:
    """Stream time of one scope on one partition, and its completed runs.

    ``stream_ms`` is the latest sampling instant of a run marker seen;
    ``open_from_ms`` is the first hour not yet closed (None before the first
    marker); ``runs`` lists the completed runs of each open hour and of each
    closed hour within the correction horizon; ``last_run_id`` is the run of
    the marker that wrote this clock, the only one whose work a crash may
    have cut short.
    """

    stream_ms: int | None = None
    open_from_ms: int | None = None
    runs: dict[int, tuple[str, ...]] = field(default_factory=dict)
    last_run_id: str | None = None

    def is_closed(self, hour_ms: int) -> bool:
        return self.open_from_ms is not None and hour_ms < self.open_from_ms

    def runs_in(self, hour_ms: int) -> tuple[str, ...]:
        return self.runs.get(hour_ms, ())

    def has_run(self, run_id: str, sampled_at_ms: int) -> bool:
        return run_id in self.runs_in(hour_start(sampled_at_ms))

    def to_json(self) -> dict[str, Any]:
        return {
            "stream": self.stream_ms,
            "open_from": self.open_from_ms,
            "runs": {str(h): list(r) for h, r in sorted(self.runs.items())},
            "last_run": self.last_run_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Clock:
        return cls(
            stream_ms=data["stream"],
            open_from_ms=data["open_from"],
            runs={int(h): tuple(r) for h, r in data["runs"].items()},
            last_run_id=data["last_run"],
        )
