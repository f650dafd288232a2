"""Rows per second from a pre-filled rated usage topic into ClickHouse through the sink.

Starts its own Kafka broker (LocalKafka), fills the rated usage topic with N
Avro records (200,000 by default), then measures in the same run, on the same
rows and the same storage:

- baseline: a bare insert of the rows, already converted to tuples, in
  batches of ``batch_rows`` through the storage port (no Kafka, no decoding);
- for reference, a bare read of the topic with aiokafka (no decoding, no
  group, no commits);
- sink: ``stackmeter.sinks.Sink`` reading the topic from offset 0 in its own
  consumer group, decoding, batching, inserting and committing, until every
  row is stored and committed.

It prints rows per second for both and the ratio sink / baseline. The sink
figure is given from its first read message (steady state) and from its start
(with migrations, topic checks and joining the group). Storage is chDB in a
temporary folder unless ``--clickhouse`` names a folder or an http(s) URL.
Run: ``.venv/bin/python benchmarks/sink_throughput.py [--rows N] [--batch-rows N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stackmeter.codec import default_registry
from stackmeter.config import Config
from stackmeter.local_kafka import LocalKafka
from stackmeter.sinks import Sink, apply_migrations
from stackmeter.sinks.rows import RATED_USAGE, to_row
from stackmeter.storage import Storage, open_storage
from stackmeter.topics import TopicNames, ensure_topics, pipeline_topics

PARTITIONS = 6
MONTH_START = datetime(2026, 11, 1, tzinfo=UTC)
QUANTUM = Decimal("0.000000001")
PRODUCTS = (
    ("compute.vcpu", "vCPU hour", "h", Decimal("0.011")),
    ("compute.ram", "RAM GiB hour", "GiBy.h", Decimal("0.0015")),
    ("storage.ssd", "SSD GiB hour", "GiBy.h", Decimal("0.00014")),
)


def rated_record(index: int) -> dict[str, Any]:
    """Charge ``index``: three products per usage hour, 720 hours per resource."""
    usage = index // 3
    resource, hour = divmod(usage, 720)
    product_id, product_name, unit, price = PRODUCTS[index % 3]
    hour_start = MONTH_START + timedelta(hours=hour)
    usage_id = hashlib.sha256(f"{resource}/{hour}".encode()).hexdigest()[:32]
    charge_id = hashlib.sha256(f"{usage_id}\n{product_id}".encode()).hexdigest()
    quantity = Decimal(1 + resource % 8).quantize(QUANTUM)
    return {
        "charge_id": charge_id[:32],
        "usage_id": usage_id,
        "usage_revision": 1,
        "platform_id": "openstack.eu-west",
        "resource_type": "nova.server",
        "project_id": f"project-{resource % 50}",
        "resource_id": f"server-{resource:06d}",
        "resource_name": f"vm-{resource}",
        "hour_start": hour_start,
        "estimated": False,
        "rated": True,
        "unrated_reason": None,
        "product_id": product_id,
        "product_name": product_name,
        "quantity": quantity,
        "unit": unit,
        "unit_price": price.quantize(QUANTUM),
        "amount": (quantity * price).quantize(QUANTUM),
        "currency": "EUR",
        "catalog_version": "bench",
    }


async def fill_topic(
    bootstrap: str, topic: str, values: list[tuple[bytes, bytes]]
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        compression_type="lz4",
        linger_ms=20,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    try:
        pending = []
        for key, value in values:
            pending.append(await producer.send(topic, value=value, key=key))
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def bare_consume(bootstrap: str, topic: str, count: int) -> float:
    """Seconds to read ``count`` messages with aiokafka alone, nothing decoded."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=5000
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        await consumer.seek_to_beginning()
        started = time.perf_counter()
        read = 0
        while read < count:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            read += sum(len(messages) for messages in batches.values())
        return time.perf_counter() - started
    finally:
        await consumer.stop()


def bare_insert(
    storage: Storage, database: str, rows: list[Any], batch_rows: int
) -> float:
    """Seconds to insert every row in batches, as the sink's inserts would be."""
    table = f"{database}.{RATED_USAGE.name}"
    started = time.perf_counter()
    for start in range(0, len(rows), batch_rows):
        chunk = rows[start : start + batch_rows]
        storage.insert(table, RATED_USAGE.columns, chunk, dedup_token=f"bare-{start}")
    return time.perf_counter() - started


async def run_sink(config: Config, storage: Storage, rows: int) -> tuple[float, float]:
    """Seconds from the sink's start and from its first read to all rows committed."""
    sink = Sink(config, storage=storage)
    stop = asyncio.Event()
    started = time.perf_counter()
    first_read: float | None = None
    task = asyncio.create_task(sink.run(stop))
    try:
        while not (
            sink.counters.rows_stored.get("rated_usage", 0) >= rows and sink.idle
        ):
            if task.done():
                task.result()
                raise RuntimeError("the sink stopped before storing every row")
            if first_read is None and sink.counters.messages_read:
                first_read = time.perf_counter()
            await asyncio.sleep(0.01)
        finished = time.perf_counter()
    finally:
        stop.set()
        await task
    return finished - started, finished - (first_read or started)


async def main_async(args: argparse.Namespace) -> None:
    registry = default_registry()
    records = [rated_record(index) for index in range(args.rows)]
    values = [
        (r["charge_id"].encode(), registry.encode("stackmeter.RatedUsage", r))
        for r in records
    ]
    rows = [to_row(RATED_USAGE, r, 0, offset) for offset, r in enumerate(records)]

    with tempfile.TemporaryDirectory() as folder, LocalKafka() as broker:
        names = TopicNames("bench")
        await ensure_topics(
            broker.bootstrap_servers, pipeline_topics(names, PARTITIONS)
        )
        filled = time.perf_counter()
        await fill_topic(broker.bootstrap_servers, names.rated_usage, values)
        fill_s = time.perf_counter() - filled
        consume_s = await bare_consume(
            broker.bootstrap_servers, names.rated_usage, args.rows
        )

        storage = open_storage(args.clickhouse or f"{folder}/chdb")
        try:
            apply_migrations(storage, "bench_bare")
            bare_s = bare_insert(storage, "bench_bare", rows, args.batch_rows)

            config = Config()
            config.kafka.bootstrap_servers = broker.bootstrap_servers
            config.kafka.topic_prefix = names.prefix
            config.kafka.partitions = PARTITIONS
            config.sink.database = "bench_sink"
            config.sink.batch_rows = args.batch_rows
            config.sink.batch_s = 1.0
            config.sampler.types = []
            total_s, steady_s = await run_sink(config, storage, args.rows)
        finally:
            storage.close()

    bare_rate = args.rows / bare_s
    sink_rate = args.rows / steady_s
    print(f"rows: {args.rows:,}, batch_rows: {args.batch_rows:,}")
    print(f"rated usage topic: {PARTITIONS} partitions")
    print(f"topic filled in {fill_s:.1f} s ({args.rows / fill_s:,.0f} messages/s)")
    print(f"bare consume:  {args.rows / consume_s:12,.0f} msgs/s  ({consume_s:.2f} s)")
    print(f"bare insert:   {bare_rate:12,.0f} rows/s  ({bare_s:.2f} s)")
    print(f"sink (steady): {sink_rate:12,.0f} rows/s  ({steady_s:.2f} s)")
    total_rate = args.rows / total_s
    print(f"sink (total):  {total_rate:12,.0f} rows/s  ({total_s:.2f} s with start-up)")
    print(f"ratio sink / bare insert: {sink_rate / bare_rate:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch-rows", type=int, default=5000)
    parser.add_argument(
        "--clickhouse",
        help="chDB folder or http(s) URL (default: chDB in a temporary folder)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
