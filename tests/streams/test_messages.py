"""Reading snapshot-topic messages into the worker's inputs, and what it rejects."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from meter_support import PLATFORM, SERVER, at, server_traits

from stackmeter.codec import default_registry
from stackmeter.streams.existence import RunCompleted, Sighting
from stackmeter.streams.hours import UsageRecord, hour_start
from stackmeter.streams.messages import (
    Origin,
    Rejected,
    encode_dead_letter,
    encode_usage,
    read_snapshot_message,
)
from stackmeter.streams.state import Scope

REGISTRY = default_registry()
SAMPLED = datetime(2025, 3, 3, 10, 50, tzinfo=UTC)


def server_snapshot(**envelope: object) -> bytes:
    return REGISTRY.encode(
        "stackmeter.snapshot.Server",
        {
            "envelope": {
                "platform_id": PLATFORM,
                "project_id": "p-1",
                "resource_id": "srv-1",
                "resource_name": "web",
                "run_id": "run-1",
                "sampled_at": SAMPLED,
                **envelope,
            },
            "traits": server_traits(),
        },
    )


def marker(resource_type: str = SERVER) -> bytes:
    return REGISTRY.encode(
        "stackmeter.RunMarker",
        {
            "run_id": "run-1",
            "platform_id": PLATFORM,
            "resource_type": resource_type,
            "sampled_at": SAMPLED,
            "resource_count": 3,
        },
    )


def test_snapshot_becomes_a_sighting() -> None:
    item = read_snapshot_message(REGISTRY, SERVER, server_snapshot())
    assert isinstance(item, Sighting)
    assert tuple(item.key) == (PLATFORM, SERVER, "srv-1")
    obs = item.observation
    assert (obs.run_id, obs.sampled_at_ms, obs.project_id, obs.resource_name) == (
        "run-1",
        at("10:50"),
        "p-1",
        "web",
    )
    assert obs.traits == server_traits()


def test_marker_becomes_a_completed_run() -> None:
    item = read_snapshot_message(REGISTRY, SERVER, marker())
    assert item == RunCompleted(Scope(PLATFORM, SERVER), "run-1", at("10:50"), 3)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "tombstone"),
        (b"not avro at all", "not Avro single-object encoding"),
        (b"\xc3\x01" + bytes(8) + b"body", "unknown writer schema fingerprint"),
        (marker("cinder.volume"), "run marker for 'cinder.volume'"),
    ],
)
def test_unusable_messages_are_rejected_with_the_reason(
    value: bytes | None, reason: str
) -> None:
    item = read_snapshot_message(REGISTRY, SERVER, value)
    assert isinstance(item, Rejected)
    assert reason in item.reason


def test_snapshot_of_another_type_or_a_usage_record_is_rejected() -> None:
    item = read_snapshot_message(REGISTRY, "cinder.volume", server_snapshot())
    assert item == Rejected("'nova.server' snapshot on the topic of 'cinder.volume'")

    usage = UsageRecord(
        usage_id="u",
        revision=1,
        platform_id=PLATFORM,
        resource_type=SERVER,
        project_id="p",
        resource_id="r",
        resource_name="",
        hour_ms=hour_start(at("10:50")),
        samples_observed=1,
        samples_expected=1,
        estimated=False,
        traits={"state": "ACTIVE"},
        last_sampled_at_ms=at("10:50"),
    )
    key, value = encode_usage(REGISTRY, usage)
    assert key == b"u"
    assert UsageRecord.from_avro(REGISTRY.decode(value).record) == usage
    rejected = read_snapshot_message(REGISTRY, SERVER, value)
    assert isinstance(rejected, Rejected)
    assert "got a stackmeter.Usage record" in rejected.reason


def test_dead_letter_keeps_the_message_and_the_reason() -> None:
    origin = Origin("t.snapshot.nova.server", 2, 41, b"srv-1", b"garbage")
    decoded = REGISTRY.decode(encode_dead_letter(REGISTRY, origin, "bad bytes"))
    assert decoded.schema_name == "stackmeter.DeadLetter"
    record = decoded.record
    assert (record["stage"], record["reason"]) == ("worker", "bad bytes")
    assert (record["source_topic"], record["source_partition"]) == (origin.topic, 2)
    assert (record["source_offset"], record["key"], record["value"]) == (
        41,
        b"srv-1",
        b"garbage",
    )
