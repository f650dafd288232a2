"""Records into rows without Kafka or ClickHouse: routing, skipping and refusals."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sink_records import Dataset, project_record, server_snapshot, usage_record

from stackmeter.codec import default_registry
from stackmeter.errors import CodecError
from stackmeter.sinks.routes import MessageReader, sink_routes
from stackmeter.sinks.rows import (
    RATED_USAGE,
    USAGE,
    UnstorableRecordError,
    to_row,
)
from stackmeter.topics import TopicNames

NAMES = TopicNames("t")


@pytest.fixture
def reader() -> MessageReader:
    return MessageReader(sink_routes(NAMES), default_registry())


def encode(schema: str, record: dict[str, Any]) -> bytes:
    return default_registry().encode(schema, record)


def test_every_stored_topic_has_a_route() -> None:
    routes = sink_routes(NAMES)

    assert routes[NAMES.usage].table is USAGE
    assert routes[NAMES.rated_usage].table is RATED_USAGE
    assert routes[NAMES.projects].table.name == "projects"
    assert {routes[t].table.name for t in NAMES.all_snapshots()} == {"run_markers"}
    assert NAMES.dead_letter not in routes


def test_usage_becomes_a_row_with_typed_trait_maps(reader: MessageReader) -> None:
    record = usage_record(3, 1)
    row = reader.read(NAMES.usage, encode("stackmeter.Usage", record), 2, 41)

    assert row is not None
    values = dict(zip(USAGE.columns, row, strict=True))
    assert values["traits_int"] == {"vcpu": 2, "ramMb": 4096}
    assert values["traits_text"] == {"flavor": "m1.large", "state": "ACTIVE"}
    assert values["hour_start"] == record["hour_start"]
    assert (values["source_partition"], values["source_offset"]) == (2, 41)


def test_unrated_charge_stores_empty_product_and_currency() -> None:
    rated = Dataset.build(resources=7, hours=1).rated
    record = next(r for r in rated if not r["rated"])
    row = to_row(RATED_USAGE, record, 0, 0)

    values = dict(zip(RATED_USAGE.columns, row, strict=True))

    assert values["product_id"] == values["currency"] == ""
    assert values["unrated_reason"] == "no product prices nova.server"
    assert values["amount"] == Decimal(0)


def test_snapshots_are_skipped_and_markers_kept(reader: MessageReader) -> None:
    topic = NAMES.snapshots("nova.server")
    sampled_at = datetime(2026, 11, 1, tzinfo=UTC)
    snapshot = server_snapshot(1, "run-1", sampled_at)
    marker = Dataset.build(resources=1, hours=1).markers[0]

    assert (
        reader.read(topic, encode("stackmeter.snapshot.Server", snapshot), 0, 0) is None
    )
    row = reader.read(topic, encode("stackmeter.RunMarker", marker), 0, 1)
    assert row == (
        marker["run_id"],
        marker["platform_id"],
        "nova.server",
        marker["sampled_at"],
        marker["resource_count"],
    )


@pytest.mark.parametrize(
    ("topic", "value", "reason"),
    [
        (NAMES.usage, None, "tombstone"),
        (NAMES.usage, b"\x00\x01", "not Avro single-object encoding"),
        (NAMES.projects, encode("stackmeter.Usage", usage_record(0, 0)), "got a"),
        (
            NAMES.usage,
            encode("stackmeter.Project", project_record(1)),
            "carries stackmeter.Usage records",
        ),
    ],
)
def test_unreadable_messages_are_refused_with_a_reason(
    reader: MessageReader, topic: str, value: bytes | None, reason: str
) -> None:
    with pytest.raises(CodecError, match=reason):
        reader.read(topic, value, 0, 0)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"revision": -1}, "revision: expected 0..4294967295, got -1"),
        ({"samples_observed": 2**32}, "samples_observed: expected 0..4294967295"),
        (
            {"hour_start": datetime(1969, 12, 31, 23, tzinfo=UTC)},
            "hour_start: 1969-12-31T23:00:00\\+00:00 is outside 1970..2105",
        ),
        (
            {"last_sampled_at": datetime(2400, 1, 1, tzinfo=UTC)},
            "last_sampled_at: 2400-01-01T00:00:00\\+00:00 is outside 1900..2299",
        ),
    ],
)
def test_values_outside_their_columns_are_refused(
    change: dict[str, Any], reason: str
) -> None:
    record = {**usage_record(0, 0), **change}
    with pytest.raises(UnstorableRecordError, match=reason):
        to_row(USAGE, record, 0, 0)


def test_money_beyond_decimal_38_9_is_refused() -> None:
    record = Dataset.build(resources=1, hours=1).rated[0]
    too_big = {**record, "amount": Decimal(10) ** 29}
    too_fine = {**record, "amount": Decimal("0.0000000001")}

    with pytest.raises(UnstorableRecordError, match="does not fit Decimal"):
        to_row(RATED_USAGE, too_big, 0, 0)
    with pytest.raises(UnstorableRecordError, match="more than 9 decimals"):
        to_row(RATED_USAGE, too_fine, 0, 0)


def test_a_missing_field_is_refused_naming_the_table() -> None:
    record = usage_record(0, 0)
    del record["traits"]
    with pytest.raises(UnstorableRecordError, match="does not fit table usage"):
        to_row(USAGE, record, 0, 0)
