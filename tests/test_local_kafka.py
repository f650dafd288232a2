"""The local Kafka broker: a real round trip, the jar cache, and clean shutdown."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import UnknownTopicOrPartitionError

from stackmeter.local_kafka import (
    KAFKA_VERSION,
    LocalKafka,
    LocalKafkaError,
    fetch_kafka,
    kafka_home,
)

PARTITION_COUNT = 3
RECORD_COUNT = 60

Received = dict[tuple[int, int], tuple[bytes | None, bytes | None]]


async def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
        )
    finally:
        await admin.close()
    assert [error[1] for error in response.topic_errors] == [0]


async def _produce(
    bootstrap: str, topic: str
) -> tuple[Received, dict[bytes, set[int]]]:
    """Send keyed records, a few pinned to each partition.

    Returns where each record went, and the partitions each key went to when
    the producer chose.
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        compression_type="lz4",
        linger_ms=5,
    )
    await producer.start()
    try:
        pending = []
        for index in range(RECORD_COUNT):
            key = f"resource-{index % 11}".encode()
            value = f"snapshot-{index}".encode() * 20
            pinned = index % PARTITION_COUNT if index % 10 == 0 else None
            delivery = await producer.send(topic, value, key=key, partition=pinned)
            pending.append((key, value, pinned, delivery))
        await producer.flush()
    finally:
        await producer.stop()

    sent: Received = {}
    chosen: dict[bytes, set[int]] = {}
    for key, value, pinned, delivery in pending:
        metadata = delivery.result()
        if pinned is None:
            chosen.setdefault(key, set()).add(metadata.partition)
        else:
            assert metadata.partition == pinned
        sent[(metadata.partition, metadata.offset)] = (key, value)
    return sent, chosen


async def _consume(bootstrap: str, topic: str, group: str, count: int) -> Received:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    received: Received = {}
    try:
        async with asyncio.timeout(60):
            while len(received) < count:
                batches = await consumer.getmany(timeout_ms=500)
                for partition, records in batches.items():
                    for record in records:
                        where = (partition.partition, record.offset)
                        received[where] = (record.key, record.value)
        await consumer.commit()
    finally:
        await consumer.stop()
    return received


async def _committed_offsets(bootstrap: str, group: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {partition.partition: meta.offset for partition, meta in offsets.items()}


@pytest.mark.kafka
async def test_round_trip_keeps_keys_values_and_partitions(
    kafka_bootstrap: str, topic_name: str
) -> None:
    await _create_topic(kafka_bootstrap, topic_name, PARTITION_COUNT)
    sent, chosen = await _produce(kafka_bootstrap, topic_name)
    group = f"{topic_name}-group"

    received = await _consume(kafka_bootstrap, topic_name, group, len(sent))

    assert received == sent
    assert {partition for partition, _ in sent} == set(range(PARTITION_COUNT))
    assert all(len(partitions) == 1 for partitions in chosen.values())
    end_offsets = {
        partition: max(offset for p, offset in sent if p == partition) + 1
        for partition in range(PARTITION_COUNT)
    }
    assert await _committed_offsets(kafka_bootstrap, group) == end_offsets


@pytest.mark.kafka
async def test_topics_are_not_created_implicitly(
    kafka_bootstrap: str, topic_name: str
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, request_timeout_ms=2000
    )
    await producer.start()
    try:
        with pytest.raises(UnknownTopicOrPartitionError):
            await producer.send_and_wait(topic_name, b"value")
    finally:
        await producer.stop()


def test_second_fetch_reuses_the_cached_jars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = fetch_kafka()
    manifest = home / "manifest.txt"
    before = manifest.stat().st_mtime_ns

    # Without Maven on PATH, anything but reuse would fail.
    monkeypatch.setenv("PATH", str(tmp_path))

    assert fetch_kafka() == home
    assert manifest.stat().st_mtime_ns == before
    assert (home / "libs" / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file()


def test_interrupted_fetch_is_not_taken_for_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STACKMETER_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    partial = tmp_path / f".kafka-{KAFKA_VERSION}.partial-abc123" / "libs"
    partial.mkdir(parents=True)
    (partial / f"kafka_2.13-{KAFKA_VERSION}.jar").write_bytes(b"truncated")
    unfinished = kafka_home() / "libs"
    unfinished.mkdir(parents=True)

    with pytest.raises(LocalKafkaError, match="Maven"):
        fetch_kafka()

    assert not partial.parent.exists()
    assert not kafka_home().exists()


def _process_exists(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    # A zombie is dead; only its parent (or init) has yet to collect it.
    return state != "Z"


@pytest.mark.kafka
def test_stop_leaves_no_java_process_and_no_folder() -> None:
    broker = LocalKafka(heap_mib=256)
    broker.start()
    try:
        pid = broker.pid
        log_path = broker.log_path
        assert pid is not None and log_path is not None
        assert _process_exists(pid)
        assert broker.bootstrap_servers.startswith("127.0.0.1:")
    finally:
        broker.stop()

    assert not _process_exists(pid)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    assert not log_path.parent.exists()
    broker.stop()  # a second stop is harmless


@pytest.mark.kafka
def test_failed_start_reports_the_tool_output_and_cleans_up() -> None:
    broker = LocalKafka(properties={"node.id": "not-a-number"})

    with pytest.raises(LocalKafkaError, match="not-a-number"):
        broker.start()

    assert broker.pid is None
    assert broker.log_path is None


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


@pytest.mark.kafka
def test_broker_dies_with_a_killed_python(tmp_path: Path) -> None:
    with (tmp_path / "cli.log").open("wb") as cli_log:
        cli = subprocess.Popen(
            [sys.executable, "-m", "stackmeter.local_kafka", "run"],
            stdout=subprocess.PIPE,
            stderr=cli_log,
        )
    workdir: Path | None = None
    try:
        assert cli.stdout is not None
        bootstrap = cli.stdout.readline().decode().strip()
        assert bootstrap.startswith("127.0.0.1:"), (tmp_path / "cli.log").read_text()
        (java_pid,) = _children(cli.pid)
        workdir = Path(os.readlink(f"/proc/{java_pid}/cwd"))

        cli.send_signal(signal.SIGKILL)
        cli.wait()
        deadline = time.monotonic() + 10
        while _process_exists(java_pid) and time.monotonic() < deadline:
            time.sleep(0.1)

        assert not _process_exists(java_pid)
    finally:
        cli.kill()
        cli.wait()
        if cli.stdout is not None:
            cli.stdout.close()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
