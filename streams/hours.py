"""Hour arithmetic on event time and the usage record the worker emits.

Times are integer milliseconds since the epoch, UTC, as the Avro
``timestamp-millis`` fields carry them; an hour is named by its start.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

HOUR_MS = 3_600_000

TraitValue = int | str | None


def hour_start(ms: int) -> int:
    """The start of the UTC hour that holds ``ms``."""
    return ms - ms % HOUR_MS


def next_hour_start(ms: int) -> int:
    """The first hour start at or after ``ms``."""
    return -(-ms // HOUR_MS) * HOUR_MS


def first_open_hour(stream_ms: int, grace_ms: int) -> int:
    """The first hour still open when stream time is ``stream_ms``.

    Hour ``H`` closes once stream time passes ``H + 1h + grace``, that is when
    ``H < stream_ms - grace_ms - 1h``; every hour before the returned one is
    closed, it and every later one are open.
    """
    return next_hour_start(stream_ms - grace_ms - HOUR_MS)


def to_datetime(ms: int) -> datetime:
    """A tz-aware UTC datetime, as fastavro reads ``timestamp-millis``."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def to_ms(value: datetime | int) -> int:
    """Milliseconds since the epoch from a decoded ``timestamp-millis``."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        # Integer arithmetic: float seconds would round some millisecond values.
        delta = value - datetime(1970, 1, 1, tzinfo=UTC)
        return (
            delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000
        )
    return int(value)


def hour_label(hour_ms: int) -> str:
    """The hour start as ISO 8601 UTC with a ``Z``, e.g. ``2025-03-01T10:00:00Z``."""
    return to_datetime(hour_ms).strftime("%Y-%m-%dT%H:%M:%SZ")


def usage_id(
    platform_id: str, resource_type: str, resource_id: str, hour_ms: int
) -> str:
    """The deterministic id of one resource's usage in one hour.

    The first 32 hex digits of SHA-256 over
    ``platform_id|resource_type|resource_id|hour`` (hour as :func:`hour_label`
    gives it), so any worker, and any replay, names the same hour alike.
    """
    text = f"{platform_id}|{resource_type}|{resource_id}|{hour_label(hour_ms)}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One ``stackmeter.Usage`` record, as the worker publishes it."""

    usage_id: str
    revision: int
    platform_id: str
    resource_type: str
    project_id: str
    resource_id: str
    resource_name: str
    hour_ms: int
    samples_observed: int
    samples_expected: int
    estimated: bool
    traits: dict[str, TraitValue]
    last_sampled_at_ms: int

    def to_avro(self) -> dict[str, Any]:
        """The record in the shape ``stackmeter.Usage`` encodes."""
        return {
            "usage_id": self.usage_id,
            "revision": self.revision,
            "platform_id": self.platform_id,
            "resource_type": self.resource_type,
            "project_id": self.project_id,
            "resource_id": self.resource_id,
            "resource_name": self.resource_name,
            "hour_start": to_datetime(self.hour_ms),
            "samples_observed": self.samples_observed,
            "samples_expected": self.samples_expected,
            "estimated": self.estimated,
            "traits": dict(self.traits),
            "last_sampled_at": to_datetime(self.last_sampled_at_ms),
        }

    @classmethod
    def from_avro(cls, record: dict[str, Any]) -> UsageRecord:
        """Read back a decoded ``stackmeter.Usage`` record."""
        return cls(
            usage_id=record["usage_id"],
            revision=record["revision"],
            platform_id=record["platform_id"],
            resource_type=record["resource_type"],
            project_id=record["project_id"],
            resource_id=record["resource_id"],
            resource_name=record["resource_name"],
            hour_ms=to_ms(record["hour_start"]),
            samples_observed=record["samples_observed"],
            samples_expected=record["samples_expected"],
            estimated=record["estimated"],
            traits=dict(record["traits"]),
            last_sampled_at_ms=to_ms(record["last_sampled_at"]),
        )
