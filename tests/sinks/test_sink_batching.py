"""Sink batches without Kafka or ClickHouse: sealing, offsets, tokens, back-off."""

from __future__ import annotations

import random

import pytest

from stackmeter.sinks.batching import (
    OffsetRange,
    RefusedMessage,
    TopicBatch,
    TopicPipeline,
    backoff_s,
)
from stackmeter.sinks.rows import RATED_USAGE, RUN_MARKERS


def filled(topic: str = "t", spans: dict[int, range] | None = None) -> TopicBatch:
    batch = TopicBatch(topic, RATED_USAGE)
    for partition, offsets in (spans or {0: range(5, 10), 2: range(0, 3)}).items():
        for offset in offsets:
            batch.add_row(partition, offset, (partition, offset), now=1.0)
    return batch


def test_offsets_to_commit_are_one_past_the_last_read_per_partition() -> None:
    batch = filled()
    batch.add_skipped(1, 40, now=1.0)

    assert batch.ranges() == [
        OffsetRange(0, 5, 9),
        OffsetRange(1, 40, 40),
        OffsetRange(2, 0, 2),
    ]
    assert batch.offsets_to_commit() == {0: 10, 1: 41, 2: 3}
    assert batch.size == 8  # the skipped message is not held


def test_token_depends_on_topic_and_offset_ranges_only() -> None:
    first = filled()
    again = filled()
    assert first.dedup_token() == again.dedup_token()
    assert first.dedup_token().startswith("rated_usage-")

    other_topic = filled(topic="u")
    assert other_topic.dedup_token() != first.dedup_token()
    longer = filled(spans={0: range(5, 11), 2: range(0, 3)})
    assert longer.dedup_token() != first.dedup_token()


def test_a_batch_is_due_by_rows_or_by_age() -> None:
    batch = TopicBatch("t", RATED_USAGE)
    assert not batch.due(100.0, batch_rows=3, batch_s=1.0)

    batch.add_row(0, 0, ("a",), now=10.0)
    assert not batch.due(10.5, batch_rows=3, batch_s=1.0)
    assert batch.due(11.0, batch_rows=3, batch_s=1.0)

    batch.add_row(0, 1, ("b",), now=10.1)
    batch.add_row(0, 2, ("c",), now=10.2)
    assert batch.due(10.2, batch_rows=3, batch_s=1.0)


def test_refused_messages_count_and_are_kept_apart_from_rows() -> None:
    batch = TopicBatch("t", RATED_USAGE)
    batch.add_row(0, 0, ("a",), now=0.0)
    refused = RefusedMessage(0, 1, b"k", b"junk", "not Avro")
    batch.add_refused(refused, now=0.0)

    assert batch.rows() == [("a",)]
    assert batch.refused() == [refused]
    assert batch.size == 2
    assert batch.offsets_to_commit() == {0: 2}


def test_run_markers_read_from_every_partition_are_inserted_once() -> None:
    batch = TopicBatch("snapshots", RUN_MARKERS)
    marker = ("run-1", "p", "nova.server", "t", 3)
    for partition in range(3):
        batch.add_row(partition, 7, marker, now=0.0)

    assert batch.rows() == [marker]
    assert batch.offsets_to_commit() == {0: 8, 1: 8, 2: 8}


def test_offsets_going_back_within_a_partition_are_refused() -> None:
    batch = filled()
    with pytest.raises(ValueError, match="offset 3 read after 9"):
        batch.add_row(0, 3, ("x",), now=1.0)


def test_revoked_partitions_are_forgotten() -> None:
    batch = filled()
    dropped = batch.drop_partitions([0, 7])

    assert dropped == 5
    assert batch.size == 3
    assert batch.offsets_to_commit() == {2: 3}
    batch.drop_partitions([2])
    assert batch.empty
    assert not batch.due(1e9, batch_rows=1, batch_s=0.1)


def test_pipeline_seals_one_batch_at_a_time_and_holds_back_when_full() -> None:
    pipeline = TopicPipeline("t", RATED_USAGE)
    for offset in range(4):
        pipeline.open.add_row(0, offset, (offset,), now=0.0)

    assert pipeline.seal_if_due(0.0, batch_rows=4, batch_s=5.0)
    sealed = pipeline.sealed
    assert sealed is not None
    assert sealed.size == 4
    assert pipeline.open.empty
    assert pipeline.ready(0.0)

    for offset in range(4, 8):
        pipeline.open.add_row(0, offset, (offset,), now=0.1)
    # The sealed batch is not stored yet: the next one waits, full, and
    # reading goes on while the insert is merely under way.
    assert not pipeline.seal_if_due(0.2, batch_rows=4, batch_s=5.0)
    assert not pipeline.holds_back(batch_rows=4)

    pipeline.failed(now=1.0, delay_s=2.0)
    assert pipeline.failed_attempts == 1
    assert pipeline.holds_back(batch_rows=4)  # ClickHouse is in trouble
    assert not pipeline.ready(2.9)
    assert pipeline.ready(3.0)
    assert pipeline.sealed is sealed  # a retry sends the very same batch

    assert pipeline.stored() is sealed
    assert not pipeline.holds_back(batch_rows=4)
    assert pipeline.seal_if_due(3.0, batch_rows=4, batch_s=5.0)
    assert pipeline.sealed is not None
    assert pipeline.sealed.offsets_to_commit() == {0: 8}


def test_reading_stops_at_two_full_batches_even_without_failures() -> None:
    pipeline = TopicPipeline("t", RATED_USAGE)
    pipeline.open.add_row(0, 0, (0,), now=0.0)
    assert pipeline.seal_if_due(0.0, batch_rows=1, batch_s=5.0)

    pipeline.open.add_row(0, 1, (1,), now=0.0)
    assert not pipeline.holds_back(batch_rows=1)
    pipeline.open.add_row(0, 2, (2,), now=0.0)
    assert pipeline.holds_back(batch_rows=1)


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    rand = random.Random(7)
    delays = [backoff_s(attempt, 0.5, 4.0, rand) for attempt in range(1, 8)]

    caps = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    for delay, cap in zip(delays, caps, strict=True):
        assert cap / 2 <= delay <= cap
