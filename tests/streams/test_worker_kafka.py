"""The worker over the real broker: ``stackmeter worker`` processes consume
snapshots as the sampler publishes them and publish usage, with hand-computed
expectations; then a worker killed mid-hour, and two workers in one group.

Runs are every 5 minutes and the grace is 5 minutes, so hour H closes at the
first marker after H + 1:05.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from meter_support import (
    PLATFORM,
    SERVER,
    Run,
    at,
    events_of,
    every_5_min,
    hour,
    server_traits,
    sighting,
)
from worker_support import (
    Outgoing,
    Pipeline,
    UsageLog,
    WorkerProcess,
    content,
    encode_events,
    produce,
    read_changelog_clocks,
    read_records,
    read_usage,
    reference_usage,
    stable_partition,
    wait_for_group,
)

from stackmeter.codec import default_registry
from stackmeter.streams.existence import MeterSettings
from stackmeter.streams.hours import to_datetime

pytestmark = pytest.mark.kafka

Summary = dict[tuple[str, str], tuple[int, int, bool, int]]


@pytest.fixture
def make_pipeline(kafka_bootstrap: str, tmp_path: Path) -> Callable[..., Pipeline]:
    def make(partitions: int = 2, **worker: Any) -> Pipeline:
        pipeline = Pipeline(
            kafka_bootstrap, tmp_path, partitions=partitions, extra_worker=worker
        )
        pipeline.create_topics()
        return pipeline

    return make


@contextmanager
def running_worker(pipeline: Pipeline, name: str = "worker") -> Iterator[WorkerProcess]:
    process = WorkerProcess(pipeline.config_path(name), pipeline.folder / f"{name}.log")
    try:
        yield process
    finally:
        process.stop()
        # Shown by pytest only when the test fails.
        print(f"--- {name} log ---\n{process.log_text()[-6000:]}")


def publish(
    pipeline: Pipeline, runs: list[Run], partition_of: Callable[[str], int]
) -> None:
    messages = encode_events(
        events_of(runs), pipeline.names, pipeline.partitions, partition_of
    )
    produce(pipeline.bootstrap, messages)


def summary(log: UsageLog) -> Summary:
    """``{(resource, "HH"): (observed, expected, estimated, revision)}``."""
    return {
        (r.resource_id, f"{(r.hour_ms - hour('00')) // 3_600_000:02d}"): (
            r.samples_observed,
            r.samples_expected,
            r.estimated,
            r.revision,
        )
        for r in log.latest().values()
    }


def usage_until(pipeline: Pipeline, count: int) -> UsageLog:
    """Usage records until ``count`` usage ids are there, plus a settling second."""
    return read_usage(
        pipeline.bootstrap, pipeline.names.usage, lambda log: len(log.latest()) >= count
    )


def test_server_created_10_50_and_deleted_11_05_is_billed_for_hours_10_and_11(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    pipeline = make_pipeline()
    runs = every_5_min("10:00", "12:10", ["keep"])
    for run in runs:
        if at("10:50") <= run.instant_ms <= at("11:00"):
            run.seen = ["keep", "srv"]
    publish(pipeline, runs, {"srv": 0, "keep": 1}.__getitem__)

    with running_worker(pipeline):
        log = usage_until(pipeline, 4)

    assert summary(log) == {
        ("srv", "10"): (2, 12, False, 1),  # seen at 10:50 and 10:55
        ("srv", "11"): (1, 12, False, 1),  # seen at 11:00, gone at 11:05
        ("keep", "10"): (12, 12, False, 1),
        ("keep", "11"): (12, 12, False, 1),
    }
    record = log.by_resource_hour()[("srv", hour("11"))]
    assert (record.platform_id, record.resource_type) == (PLATFORM, SERVER)
    assert record.last_sampled_at_ms == at("11:00")
    assert record.traits == server_traits()


def test_failed_listing_at_12_20_ends_no_life(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    # The run at 12:20 lists only A, then fails: no marker. The sampler is
    # then down until 14:00, so B gets estimated hour 13 only if the failed
    # run did not end B's life.
    pipeline = make_pipeline()
    runs = [
        *every_5_min("12:00", "12:15", ["a", "b"]),
        Run(at("12:20"), ["a"], completed=False),
        *every_5_min("14:00", "15:10", ["a", "b"]),
    ]
    publish(pipeline, runs, {"a": 0, "b": 1}.__getitem__)

    with running_worker(pipeline):
        log = usage_until(pipeline, 6)

    assert summary(log) == {
        ("a", "12"): (4, 4, False, 1),  # the failed run is not expected
        ("a", "13"): (0, 0, True, 1),
        ("a", "14"): (12, 12, False, 1),
        ("b", "12"): (4, 4, False, 1),
        ("b", "13"): (0, 0, True, 1),
        ("b", "14"): (12, 12, False, 1),
    }
    records = log.by_resource_hour()
    assert records[("a", hour("12"))].last_sampled_at_ms == at("12:20")
    assert records[("b", hour("12"))].last_sampled_at_ms == at("12:15")


def test_sampler_outage_13_to_15_estimates_hours_13_and_14_for_survivors_only(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    pipeline = make_pipeline()
    runs = [
        *every_5_min("12:00", "12:55", ["a", "b"]),
        *every_5_min("15:00", "16:10", ["a", "c"]),
    ]
    publish(pipeline, runs, {"a": 0, "b": 0, "c": 1}.__getitem__)

    with running_worker(pipeline):
        log = usage_until(pipeline, 6)

    assert summary(log) == {
        ("a", "12"): (12, 12, False, 1),
        ("a", "13"): (0, 0, True, 1),
        ("a", "14"): (0, 0, True, 1),
        ("a", "15"): (12, 12, False, 1),
        ("b", "12"): (12, 12, False, 1),  # deleted during the outage
        ("c", "15"): (12, 12, False, 1),  # created during the outage
    }
    estimated = log.by_resource_hour()[("a", hour("14"))]
    assert estimated.last_sampled_at_ms == at("12:55")


def test_late_snapshot_after_close_yields_revision_2_with_the_same_usage_id(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    pipeline = make_pipeline()
    publish(pipeline, every_5_min("10:00", "11:10", ["r"]), lambda _: 0)

    with running_worker(pipeline):
        (first,) = usage_until(pipeline, 1).records
        late = sighting(
            "r", at("10:58"), run="failed-run", traits=server_traits("SHUTOFF")
        )
        produce(
            pipeline.bootstrap,
            encode_events([late], pipeline.names, pipeline.partitions, lambda _: 0),
        )
        log = read_usage(
            pipeline.bootstrap,
            pipeline.names.usage,
            lambda log: any(r.revision == 2 for r in log.records),
        )

    assert [r.revision for r in log.records] == [1, 2]
    second = log.records[1]
    assert second.usage_id == first.usage_id
    assert (first.traits["state"], second.traits["state"]) == ("ACTIVE", "SHUTOFF")
    assert second.last_sampled_at_ms == at("10:58")
    assert (second.samples_observed, second.samples_expected) == (12, 12)


def test_empty_partition_still_closes_its_hours(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    # Three partitions; only partition 1 ever holds a resource, and b is
    # gone after 11:00, so from then on every partition sees markers only.
    pipeline = make_pipeline(partitions=3)
    runs = every_5_min("10:00", "12:10", [])
    for run in runs:
        if run.instant_ms <= at("11:00"):
            run.seen = ["b"]
    publish(pipeline, runs, lambda _: 1)

    with running_worker(pipeline):
        log = usage_until(pipeline, 2)
        changelog = f"{pipeline.prefix}-worker-windows-changelog"
        clocks = read_changelog_clocks(
            pipeline.bootstrap,
            changelog,
            lambda found: all(
                found.get(p, {}).get("open_from") == hour("12") for p in range(3)
            ),
        )

    assert summary(log) == {
        ("b", "10"): (12, 12, False, 1),
        ("b", "11"): (1, 12, False, 1),
    }
    assert {p: c["stream"] for p, c in clocks.items()} == {
        0: at("12:10"),
        1: at("12:10"),
        2: at("12:10"),
    }


def test_bad_messages_go_to_the_dead_letter_topic_and_billing_goes_on(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    pipeline = make_pipeline()
    topic = pipeline.names.snapshots(SERVER)
    wrong_marker = default_registry().encode(
        "stackmeter.RunMarker",
        {
            "run_id": "other-run",
            "platform_id": PLATFORM,
            "resource_type": "cinder.volume",
            "sampled_at": to_datetime(at("10:02")),
            "resource_count": 0,
        },
    )
    events = encode_events(
        events_of(every_5_min("10:00", "11:10", ["r"])),
        pipeline.names,
        pipeline.partitions,
        lambda _: 0,
    )
    produce(
        pipeline.bootstrap,
        [
            Outgoing(topic, 0, b"junk", b"not avro at all"),
            *events,
            Outgoing(topic, 1, b"other-run", wrong_marker),
        ],
    )

    with running_worker(pipeline):
        log = usage_until(pipeline, 1)
        letters = read_records(pipeline.bootstrap, pipeline.names.dead_letter, 2)

    assert summary(log) == {("r", "10"): (12, 12, False, 1)}
    by_partition = {letter["source_partition"]: letter for letter in letters}
    assert len(letters) == 2
    assert by_partition[0]["value"] == b"not avro at all"
    assert by_partition[0]["source_offset"] == 0
    assert "not Avro single-object encoding" in by_partition[0]["reason"]
    assert "run marker for 'cinder.volume'" in by_partition[1]["reason"]
    assert {letter["stage"] for letter in letters} == {"worker"}


def outage_scenario() -> list[Run]:
    """Six resources over four hours: created, deleted, failed runs, a gap."""
    runs = every_5_min("10:00", "13:10", [])
    for run in runs:
        t = run.instant_ms
        run.seen = [
            name
            for name, first, last in (
                ("r0", "10:00", "13:10"),
                ("r1", "10:20", "12:40"),
                ("r2", "11:35", "13:10"),
                ("r3", "10:00", "11:55"),
                ("r4", "12:05", "12:25"),
                ("r5", "10:00", "13:10"),
            )
            if at(first) <= t <= at(last)
        ]
        if t in (at("11:15"), at("12:45")):
            run.completed = False
            run.seen = run.seen[:2]
        if at("12:50") <= t <= at("12:55"):
            run.traits = {"r0": server_traits("SHUTOFF", vcpu=8)}
    return runs


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_worker_killed_mid_hour_resumes_without_loss_or_conflicting_records(
    make_pipeline: Callable[..., Pipeline], store: str
) -> None:
    # The restarted worker uses the same data folder: with RocksDB it finds
    # the files the killed one left behind.
    pipeline = make_pipeline(partitions=2, store=store)
    partition_of = stable_partition(2)
    runs = outage_scenario()
    reference = reference_usage(
        events_of(runs), 2, partition_of, MeterSettings(grace_ms=300_000)
    )
    reference_ids = {item[0] for item in reference}
    hour_11_ids = {item[0] for item in reference if item[7] == hour("11")}
    before = [r for r in runs if r.instant_ms <= at("12:35")]
    after = [r for r in runs if r.instant_ms > at("12:35")]

    publish(pipeline, before, partition_of)
    first = WorkerProcess(pipeline.config_path(), pipeline.folder / "first.log")
    try:
        # Hour 11 closes at the 12:10 marker. Kill once it is out on both
        # partitions, with hour 12 half read and its latest offsets most
        # likely not yet committed (Faust commits every 2.8 s).
        read_usage(
            pipeline.bootstrap,
            pipeline.names.usage,
            lambda log: set(log.latest()) >= hour_11_ids,
            settle_s=0.3,
        )
    finally:
        first.kill()
        print(f"--- first log ---\n{first.log_text()[-6000:]}")
    publish(pipeline, after, partition_of)

    with running_worker(pipeline) as second:
        log = read_usage(
            pipeline.bootstrap,
            pipeline.names.usage,
            lambda log: set(log.latest()) >= reference_ids,
            settle_s=2.0,
        )

    if store == "rocksdb://":
        assert "did not stop cleanly" in second.log_text()
    published = {content(record) for record in log.records}
    assert published == reference
    assert {record.revision for record in log.records} == {1}
    by_hour = summary(log)
    # Hour 12 has 11 completed runs (12:45 failed).
    assert by_hour[("r4", "12")] == (5, 11, False, 1)
    assert by_hour[("r0", "12")] == (11, 11, False, 1)


def partitions_in_log(text: str) -> set[int]:
    return {int(p) for p in re.findall(r"hours closed .* partition=(\d+)", text)}


def test_two_workers_split_the_partitions_and_publish_what_one_worker_does(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    pipeline = make_pipeline(partitions=4)
    partition_of = stable_partition(4)
    runs = outage_scenario()
    reference = reference_usage(
        events_of(runs), 4, partition_of, MeterSettings(grace_ms=300_000)
    )
    reference_ids = {item[0] for item in reference}

    with (
        running_worker(pipeline, "one") as one,
        running_worker(pipeline, "two") as two,
    ):
        wait_for_group(pipeline.bootstrap, f"{pipeline.prefix}-worker", members=2)
        publish(pipeline, runs, partition_of)
        log = read_usage(
            pipeline.bootstrap,
            pipeline.names.usage,
            lambda log: set(log.latest()) >= reference_ids,
            settle_s=2.0,
        )
        one_partitions = partitions_in_log(one.log_text())
        two_partitions = partitions_in_log(two.log_text())

    assert {content(record) for record in log.records} == reference
    assert one_partitions and two_partitions
    assert not one_partitions & two_partitions
    assert one_partitions | two_partitions == {0, 1, 2, 3}
