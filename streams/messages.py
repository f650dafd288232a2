"""Reading snapshot-topic messages into the worker's inputs, and writing usage
and dead-letter records.

A message that cannot be read becomes a :class:`Rejected` with the reason, for
the dead-letter topic; nothing here raises on bad input.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stackmeter.codec import SchemaRegistry
from stackmeter.errors import CodecError
from stackmeter.resources import type_of_schema
from stackmeter.streams.existence import RunCompleted, Sighting
from stackmeter.streams.hours import UsageRecord, to_ms
from stackmeter.streams.state import Observation, ResourceKey, Scope

RUN_MARKER_SCHEMA = "stackmeter.RunMarker"
USAGE_SCHEMA = "stackmeter.Usage"
DEAD_LETTER_SCHEMA = "stackmeter.DeadLetter"
STAGE = "worker"


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message the worker cannot use, and why."""

    reason: str


def read_snapshot_message(
    registry: SchemaRegistry, resource_type: str, value: bytes | None
) -> Sighting | RunCompleted | Rejected:
    """The sighting or run marker a message of ``resource_type``'s topic holds."""
    if value is None:
        return Rejected("message has no value (a tombstone) on a snapshot topic")
    try:
        decoded = registry.decode(value)
    except CodecError as exc:
        return Rejected(str(exc))
    record = decoded.record
    if decoded.schema_name == RUN_MARKER_SCHEMA:
        if record["resource_type"] != resource_type:
            return Rejected(
                f"run marker for {record['resource_type']!r} on the topic of "
                f"{resource_type!r}"
            )
        return RunCompleted(
            scope=Scope(record["platform_id"], resource_type),
            run_id=record["run_id"],
            sampled_at_ms=to_ms(record["sampled_at"]),
            resource_count=record["resource_count"],
        )
    snapshot_type = type_of_schema(decoded.schema_name)
    if snapshot_type is None:
        return Rejected(
            f"expected a snapshot or run marker, got a {decoded.schema_name} record"
        )
    if snapshot_type != resource_type:
        return Rejected(f"{snapshot_type!r} snapshot on the topic of {resource_type!r}")
    envelope = record["envelope"]
    return Sighting(
        key=ResourceKey(
            envelope["platform_id"], resource_type, envelope["resource_id"]
        ),
        observation=Observation(
            run_id=envelope["run_id"],
            sampled_at_ms=to_ms(envelope["sampled_at"]),
            project_id=envelope["project_id"],
            resource_name=envelope["resource_name"],
            traits=dict(record["traits"]),
        ),
    )


def encode_usage(registry: SchemaRegistry, record: UsageRecord) -> tuple[bytes, bytes]:
    """Key and value of a usage message: the usage id and the Avro record."""
    return record.usage_id.encode(), registry.encode(USAGE_SCHEMA, record.to_avro())


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a message was read, and its raw key and value."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def encode_dead_letter(registry: SchemaRegistry, origin: Origin, reason: str) -> bytes:
    """A ``stackmeter.DeadLetter`` for a message the worker could not use."""
    record: dict[str, Any] = {
        "stage": STAGE,
        "reason": reason,
        "source_topic": origin.topic,
        "source_partition": origin.partition,
        "source_offset": origin.offset,
        "key": origin.key,
        "value": origin.value,
        "failed_at": datetime.now(UTC),
    }
    return registry.encode(DEAD_LETTER_SCHEMA, record)
