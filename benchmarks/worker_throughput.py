"""Snapshots per second through the usage worker, from a pre-filled topic to
emitted usage, beside a plain aiokafka consumer that only decodes the same
messages in the same run.

Both read the same pre-filled snapshot topic from the start. The baseline is
one aiokafka consumer without a group that decodes every value with the codec;
the worker is ``stackmeter worker`` run in this process (rating off), timed
from its first processed message until its last usage record is acknowledged,
so start-up and rebalancing are left out (they are printed apart). The ratio
says what the existence check, the window table with its changelog and Faust
cost per message; absolute rates depend on the machine.

Run: ``.venv/bin/python benchmarks/worker_throughput.py [--resources N]
[--hours H] [--partitions P] [--store memory://|rocksdb://]
[--bootstrap HOST:PORT]``. Without ``--bootstrap`` a local broker is started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import REGISTRY

from stackmeter.codec import default_registry
from stackmeter.config import Config, KafkaConfig, WorkerConfig
from stackmeter.local_kafka import LocalKafka
from stackmeter.logs import setup_logging
from stackmeter.streams.runner import prepare_topics, run_worker
from stackmeter.topics import TopicNames

TYPE_ID = "nova.server"
SCHEMA = "stackmeter.snapshot.Server"
PLATFORM = "openstack.bench"
RUN_INTERVAL = timedelta(minutes=5)
START = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def build_messages(
    resources: int, hours: int, partitions: int
) -> tuple[list[tuple[int, bytes, bytes]], int, int]:
    """(partition, key, value) of every run, the snapshot count and the usage
    count the worker will publish: every resource in every run, and enough
    runs past the last hour to close it."""
    registry = default_registry()
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench/{n}")) for n in range(resources)]
    runs = int(timedelta(hours=hours) / RUN_INTERVAL) + 3
    messages: list[tuple[int, bytes, bytes]] = []
    snapshots = 0
    for number in range(runs):
        instant = START + number * RUN_INTERVAL
        run_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-run/{number}"))
        for index, resource_id in enumerate(ids):
            value = registry.encode(SCHEMA, _snapshot(resource_id, run_id, instant))
            messages.append((index % partitions, resource_id.encode(), value))
            snapshots += 1
        marker = registry.encode(
            "stackmeter.RunMarker",
            {
                "run_id": run_id,
                "platform_id": PLATFORM,
                "resource_type": TYPE_ID,
                "sampled_at": instant,
                "resource_count": resources,
            },
        )
        messages.extend((p, run_id.encode(), marker) for p in range(partitions))
    return messages, snapshots, resources * hours


def _snapshot(resource_id: str, run_id: str, instant: datetime) -> dict[str, object]:
    return {
        "envelope": {
            "platform_id": PLATFORM,
            "project_id": "8c1f0b8e2f8f4a43a6b1f6f1d1e1c1b1",
            "resource_id": resource_id,
            "resource_name": f"vm-{resource_id[:8]}",
            "run_id": run_id,
            "sampled_at": instant,
        },
        "traits": {
            "disk": 20,
            "diskEphemeral": 0,
            "diskRoot": 20,
            "flavor": "v4.large",
            "ramMb": 8192,
            "state": "ACTIVE",
            "vcpu": 4,
        },
    }


async def prefill(
    bootstrap: str, topic: str, messages: list[tuple[int, bytes, bytes]]
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    try:
        pending = [
            await producer.send(topic, value, key=key, partition=partition)
            for partition, key, value in messages
        ]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def decode_only(bootstrap: str, topic: str, expected: int) -> float:
    """Seconds a plain consumer takes to fetch and decode ``expected`` messages."""
    registry = default_registry()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        seen = 0
        started: float | None = None
        while seen < expected:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            if started is None and batch:
                started = time.perf_counter()
            for records in batch.values():
                for record in records:
                    registry.decode(record.value)
                    seen += 1
        return time.perf_counter() - (started or time.perf_counter())
    finally:
        await consumer.stop()


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def _usage_published() -> float:
    return sum(
        _sample("stackmeter_worker_usage_records_total", {"kind": kind})
        for kind in ("first", "correction", "estimated")
    )


def time_worker(config: Config, usage_expected: int) -> tuple[float, float]:
    """(processing seconds, seconds from start to the last usage record)."""
    stop = threading.Event()
    marks: dict[str, float] = {}
    launched = time.perf_counter()

    def watch() -> None:
        while not stop.is_set():
            now = time.perf_counter()
            snapshots = {"kind": "snapshot"}
            processed = _sample("stackmeter_worker_messages_total", snapshots)
            if processed and "first" not in marks:
                marks["first"] = now
            if _usage_published() >= usage_expected:
                marks["done"] = now
                stop.set()
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    run_worker(config, stop)
    watcher.join()
    return marks["done"] - marks["first"], marks["done"] - launched


@contextlib.contextmanager
def broker(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    with LocalKafka() as local:
        yield local.bootstrap_servers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resources", type=int, default=2000)
    parser.add_argument("--hours", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--store", default="memory://")
    parser.add_argument("--bootstrap", help="existing broker (default: start one)")
    args = parser.parse_args()
    setup_logging("WARNING")

    messages, snapshots, usage_expected = build_messages(
        args.resources, args.hours, args.partitions
    )
    with broker(args.bootstrap) as bootstrap, tempfile.TemporaryDirectory() as tmp:
        prefix = f"bench{uuid.uuid4().hex[:8]}"
        config = Config(
            kafka=KafkaConfig(
                bootstrap_servers=bootstrap,
                topic_prefix=prefix,
                partitions=args.partitions,
            ),
            worker=WorkerConfig(
                store=args.store,
                data_dir=str(Path(tmp) / "worker"),
                app_id=f"{prefix}-worker",
                rating=False,
                session_timeout_s=10,
            ),
        )
        asyncio.run(prepare_topics(config))
        topic = TopicNames(prefix).snapshots(TYPE_ID)
        asyncio.run(prefill(bootstrap, topic, messages))

        baseline_s = asyncio.run(decode_only(bootstrap, topic, len(messages)))
        worker_s, end_to_end_s = time_worker(config, usage_expected)

    baseline_rate = snapshots / baseline_s
    worker_rate = snapshots / worker_s
    print(
        f"messages: {len(messages)} ({snapshots} snapshots of {args.resources} "
        f"resources, {len(messages) - snapshots} markers), {args.partitions} "
        f"partitions, usage records: {usage_expected}, store: {args.store}"
    )
    print(f"aiokafka consumer, decode only: {baseline_rate:12,.0f} snapshots/s")
    print(f"stackmeter worker, to usage:    {worker_rate:12,.0f} snapshots/s")
    print(f"ratio worker / baseline:        {worker_rate / baseline_rate:12.3f}")
    print(f"worker start to last usage:     {end_to_end_s:12.1f} s")


if __name__ == "__main__":
    main()
