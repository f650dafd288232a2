"""The sink end to end: a real Kafka broker into chDB and into a server over HTTP.

Every test runs once per adapter. Faults are real where the adapter allows: the
HTTP server process is stopped for the outage. chDB lives inside the test
process and cannot stop alone, so there the same outage is a switch on a thin
wrapper that makes every storage call fail as a refused connection would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC
from decimal import Decimal
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from chdb_http import ChdbHttpServer
from sink_clickhouse import ClickHouse
from sink_records import MONTH, Dataset, Message

from stackmeter.codec import default_registry
from stackmeter.config import Config
from stackmeter.sinks.migrations import refresh_rollups
from stackmeter.sinks.report import monthly_report
from stackmeter.sinks.sink import Sink
from stackmeter.storage import QueryResult, Storage, StorageUnavailableError
from stackmeter.topics import TopicNames, ensure_topics, pipeline_topics

pytestmark = pytest.mark.kafka

PARTITIONS = 3
WAIT_S = 120.0


class SimulatedCrashError(Exception):
    """The process dies: raised right after an insert, before its commit."""


class FaultyStorage:
    """The real storage, with an outage switch and a crash after the n-th insert."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.down = False
        self.crash_table: str | None = None
        self.crash_after_inserts = 0
        self.inserts: dict[str, list[int]] = {}

    @property
    def target(self) -> str:
        return self.inner.target

    def _check(self) -> None:
        if self.down:
            raise StorageUnavailableError(f"connection to {self.target} refused")

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        self._check()
        self.inner.command(sql, parameters)

    def query(
        self, sql: str, parameters: Mapping[str, Any] | None = None
    ) -> QueryResult:
        self._check()
        return self.inner.query(sql, parameters)

    def insert(
        self,
        table: str,
        column_names: Sequence[str],
        rows: Sequence[Sequence[Any]],
        dedup_token: str | None = None,
    ) -> None:
        self._check()
        self.inner.insert(table, column_names, rows, dedup_token)
        name = table.rsplit(".", 1)[-1]
        done = self.inserts.setdefault(name, [])
        done.append(len(rows))
        if name == self.crash_table and len(done) == self.crash_after_inserts:
            raise SimulatedCrashError(f"killed after insert {len(done)} into {name}")

    def ping(self) -> bool:
        return not self.down and self.inner.ping()

    def close(self) -> None:
        self.inner.close()


class Outage:
    """Takes ClickHouse away from the sink and brings it back."""

    def __init__(self, clickhouse: ClickHouse, faulty: FaultyStorage) -> None:
        self._clickhouse = clickhouse
        self._faulty = faulty
        self._server: ChdbHttpServer | None = None

    def attach_server(self, server: ChdbHttpServer) -> None:
        self._server = server

    def begin(self) -> None:
        if self._server is not None:
            self._server.stop()
        else:
            self._faulty.down = True

    def end(self) -> None:
        if self._server is not None:
            self._server.start()
        else:
            self._faulty.down = False


@pytest.fixture
def names(topic_name: str) -> TopicNames:
    return TopicNames(prefix=topic_name)


@pytest.fixture
def config(kafka_bootstrap: str, clickhouse: ClickHouse, names: TopicNames) -> Config:
    config = Config()
    config.kafka.bootstrap_servers = kafka_bootstrap
    config.kafka.topic_prefix = names.prefix
    config.kafka.partitions = PARTITIONS
    config.sampler.types = ["nova.server"]
    config.sampler.interval_s = 900.0
    config.sink.clickhouse = clickhouse.target
    config.sink.database = clickhouse.database
    config.sink.group_id = f"{names.prefix}-sink"
    config.sink.batch_rows = 50
    config.sink.batch_s = 0.3
    config.sink.retry_initial_s = 0.1
    config.sink.retry_max_s = 1.0
    return config


@pytest.fixture
def faulty(clickhouse: ClickHouse) -> FaultyStorage:
    return FaultyStorage(clickhouse.storage)


@pytest.fixture
def outage(
    request: pytest.FixtureRequest, clickhouse: ClickHouse, faulty: FaultyStorage
) -> Iterator[Outage]:
    outage = Outage(clickhouse, faulty)
    if clickhouse.kind == "http":
        outage.attach_server(request.getfixturevalue("clickhouse_http_server"))
    yield outage
    outage.end()


async def produce(config: Config, messages: list[Message]) -> None:
    names = TopicNames(config.kafka.topic_prefix)
    topics = {
        "projects": names.projects,
        "usage": names.usage,
        "rated": names.rated_usage,
        "snapshots": names.snapshots("nova.server"),
    }
    await ensure_topics(
        config.kafka.bootstrap_servers, pipeline_topics(names, PARTITIONS)
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=config.kafka.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
    )
    await producer.start()
    try:
        sent = [
            await producer.send(
                topics[m.kind], value=m.value, key=m.key, partition=m.partition
            )
            for m in messages
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def wait_until(
    condition: Callable[[], bool], task: asyncio.Task[Any], what: str
) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if task.done():
            task.result()  # raises what stopped the sink
            raise AssertionError(f"the sink stopped before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def run_sink(sink: Sink, messages: int) -> None:
    """Run until ``messages`` were read and everything read is committed."""
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(stop))
    try:
        await wait_until(
            lambda: sink.counters.messages_read >= messages and sink.idle,
            task,
            f"{messages} messages stored",
        )
    finally:
        stop.set()
        await task


async def dead_letters(config: Config, count: int) -> list[dict[str, Any]]:
    topic = TopicNames(config.kafka.topic_prefix).dead_letter
    consumer = AIOKafkaConsumer(
        bootstrap_servers=config.kafka.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while len(found) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                found.extend(
                    default_registry().decode(m.value).record for m in messages
                )
        return found
    finally:
        await consumer.stop()


async def committed_offsets(config: Config) -> dict[TopicPartition, int]:
    """The sink group's committed offset of every partition it committed."""
    admin = AIOKafkaAdminClient(bootstrap_servers=config.kafka.bootstrap_servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(config.sink.group_id)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items()}


async def committed_positions(config: Config, topic: str) -> dict[int, int]:
    """Committed offset per partition of one topic; 0 where none is committed."""
    offsets = await committed_offsets(config)
    return {p: offsets.get(TopicPartition(topic, p), 0) for p in range(PARTITIONS)}


async def committed(config: Config, topic: str | None = None) -> int:
    """Messages the sink's group has committed, on one topic or on all.

    Every topic starts at offset 0, so an offset is a count of messages.
    """
    offsets = await committed_offsets(config)
    return sum(o for tp, o in offsets.items() if topic is None or tp.topic == topic)


def query(clickhouse: ClickHouse, sql: str) -> list[tuple[Any, ...]]:
    return clickhouse.storage.query(sql.replace("{db}", clickhouse.database)).rows


def figures(clickhouse: ClickHouse) -> dict[str, Any]:
    """Every sum a BI user or the report would read."""
    refresh_rollups(clickhouse.storage, clickhouse.database)
    report = monthly_report(clickhouse.storage, clickhouse.database, MONTH)
    return {
        "report": sorted(
            (line.project_id, line.product_id, line.amount, line.charges)
            for line in report.lines
        ),
        "charges": query(
            clickhouse, "SELECT sum(amount), count() FROM {db}.charges_current"
        ),
        "usage": query(
            clickhouse,
            "SELECT count(), sum(samples_observed) FROM {db}.usage FINAL",
        ),
        "projects": query(clickhouse, "SELECT count() FROM {db}.projects FINAL"),
        "runs": query(clickhouse, "SELECT uniqExact(run_id) FROM {db}.run_markers"),
        "daily": query(
            clickhouse,
            "SELECT project_id, product_id, sum(amount), sum(charges) "
            "FROM {db}.cost_daily GROUP BY 1, 2 ORDER BY 1, 2",
        ),
        "monthly": query(
            clickhouse,
            "SELECT project_id, product_id, amount, charges "
            "FROM {db}.cost_monthly ORDER BY 1, 2",
        ),
    }


def assert_exact(clickhouse: ClickHouse, data: Dataset) -> None:
    """Current figures in ClickHouse are those the dataset defines."""
    got = figures(clickhouse)
    current = data.current_charges()
    assert got["charges"] == [
        (sum((r["amount"] for r in current.values()), Decimal(0)), len(current))
    ]
    assert got["usage"] == [
        (
            len(data.current_usage()),
            sum(u["samples_observed"] for u in data.current_usage().values()),
        )
    ]
    assert got["projects"] == [(len(data.projects),)]
    assert got["runs"] == [(len(data.markers),)]
    rated = {(p, q): a for p, q, a, _ in got["report"] if q}
    assert rated == data.cost_by_project_and_product()
    assert {(p, q): a for p, q, a, _ in got["monthly"] if q} == rated


async def test_every_record_reaches_its_table_with_equal_values(
    config: Config, clickhouse: ClickHouse
) -> None:
    data = Dataset.build()
    bad = Dataset.bad_messages()
    messages = data.messages()
    await produce(config, messages + bad)
    sink = Sink(config, storage=clickhouse.storage)

    await run_sink(sink, len(messages) + len(bad))

    usage = {
        row[0]: row
        for row in query(
            clickhouse,
            "SELECT usage_id, revision, project_id, resource_id, hour_start, "
            "samples_observed, samples_expected, estimated, traits_int, traits_text, "
            "last_sampled_at, resource_name FROM {db}.usage FINAL",
        )
    }
    assert usage.keys() == data.current_usage().keys()
    for usage_id, record in data.current_usage().items():
        traits = record["traits"]
        assert usage[usage_id][1:] == (
            record["revision"],
            record["project_id"],
            record["resource_id"],
            record["hour_start"].replace(tzinfo=None),
            record["samples_observed"],
            record["samples_expected"],
            record["estimated"],
            {k: v for k, v in traits.items() if isinstance(v, int)},
            {k: v for k, v in traits.items() if isinstance(v, str)},
            record["last_sampled_at"],
            record["resource_name"],
        )

    charges = {
        row[0]: row
        for row in query(
            clickhouse,
            "SELECT charge_id, usage_revision, project_id, rated, unrated_reason, "
            "product_id, quantity, unit_price, amount, currency, catalog_version "
            "FROM {db}.rated_usage FINAL",
        )
    }
    newest = {r["charge_id"]: r for r in data.rated}
    assert charges.keys() == newest.keys()
    for charge_id, record in newest.items():
        assert charges[charge_id][1:] == (
            record["usage_revision"],
            record["project_id"],
            record["rated"],
            record["unrated_reason"] or "",
            record["product_id"] or "",
            record["quantity"],
            record["unit_price"],
            record["amount"],
            record["currency"] or "",
            record["catalog_version"],
        )

    projects = query(
        clickhouse,
        "SELECT project_id, name, tags, sampled_at FROM {db}.projects FINAL "
        "ORDER BY project_id",
    )
    assert projects == [
        (p["project_id"], p["name"], p["tags"], p["sampled_at"]) for p in data.projects
    ]
    markers = query(
        clickhouse,
        "SELECT run_id, sampled_at, resource_count FROM {db}.run_markers FINAL "
        "ORDER BY sampled_at",
    )
    assert markers == [
        (m["run_id"], m["sampled_at"], m["resource_count"]) for m in data.markers
    ]
    assert sink.counters.messages_skipped == data.snapshot_count
    assert_exact(clickhouse, data)

    refused = await dead_letters(config, len(bad))
    assert sink.counters.dead_letters == len(bad) == len(refused)
    names = TopicNames(config.kafka.topic_prefix)
    assert {r["key"] for r in refused} == {m.key for m in bad}
    by_key = {r["key"]: r for r in refused}
    assert by_key[b"junk"]["source_topic"] == names.usage
    assert by_key[b"junk"]["value"] == b"this is not Avro"
    assert "not Avro single-object encoding" in by_key[b"junk"]["reason"]
    assert "unknown writer schema fingerprint" in by_key[b"unknown"]["reason"]
    assert "got a stackmeter.Project" in by_key[b"misplaced"]["reason"]
    assert "hour_start: 2200-01-01" in by_key[b"future"]["reason"]
    assert all(r["stage"] == "sink" and r["source_offset"] >= 0 for r in refused)
    assert all(r["failed_at"].tzinfo == UTC for r in refused)


async def test_replaying_every_topic_from_offset_zero_changes_no_sum(
    config: Config, clickhouse: ClickHouse
) -> None:
    data = Dataset.build()
    messages = data.messages()
    await produce(config, messages)
    await run_sink(Sink(config, storage=clickhouse.storage), len(messages))
    before = figures(clickhouse)

    # A new group starts at offset 0; other batch sizes give other tokens, so
    # every row really is inserted a second time.
    config.sink.group_id += "-replay"
    config.sink.batch_rows = 17
    replay = Sink(config, storage=clickhouse.storage)
    await run_sink(replay, len(messages))

    assert replay.counters.rows_stored["rated_usage"] == len(data.rated)
    assert replay.counters.rows_stored["usage"] == len(data.usage)
    assert figures(clickhouse) == before
    assert_exact(clickhouse, data)


async def test_a_sink_killed_between_insert_and_commit_loses_and_doubles_nothing(
    config: Config, clickhouse: ClickHouse, faulty: FaultyStorage
) -> None:
    data = Dataset.build()
    messages = data.messages()
    await produce(config, messages)
    faulty.crash_table = "rated_usage"
    faulty.crash_after_inserts = 2
    sink = Sink(config, storage=faulty)

    with pytest.raises(SimulatedCrashError):
        await run_sink(sink, len(messages))

    rated_topic = TopicNames(config.kafka.topic_prefix).rated_usage
    first, _second = faulty.inserts["rated_usage"]
    # The second batch is stored but its offsets are not committed.
    positions = await committed_positions(config, rated_topic)
    assert sum(positions.values()) == first
    beyond = " OR ".join(
        f"(source_partition = {p} AND source_offset >= {o})"
        for p, o in positions.items()
    )
    uncommitted = f"SELECT count() FROM {{db}}.rated_usage WHERE {beyond}"
    assert query(clickhouse, uncommitted)[0][0] > 0

    restarted = Sink(config, storage=clickhouse.storage)
    await run_sink(restarted, len(messages) - await committed(config))

    assert_exact(clickhouse, data)
    assert await committed(config, rated_topic) == len(data.rated)


async def test_a_clickhouse_outage_is_ridden_out(
    config: Config, clickhouse: ClickHouse, faulty: FaultyStorage, outage: Outage
) -> None:
    data = Dataset.build()
    messages = data.messages()
    first, second = messages[: len(messages) // 3], messages[len(messages) // 3 :]
    config.sink.batch_rows = 30
    sink = Sink(config, storage=faulty)
    stop = asyncio.Event()
    await produce(config, first)
    task = asyncio.create_task(sink.run(stop))
    try:
        await wait_until(
            lambda: sink.counters.messages_read >= len(first) and sink.idle,
            task,
            "the first part stored",
        )

        outage.begin()
        await produce(config, second)
        await wait_until(
            lambda: sink.counters.insert_failures >= 3,
            task,
            "inserts failing during the outage",
        )
        await wait_until(
            lambda: sink.counters.paused_partitions > 0,
            task,
            "partitions held back while batches wait",
        )
        stored_during_outage = sink.counters.total_rows
        await asyncio.sleep(2.0)
        assert sink.counters.total_rows == stored_during_outage
        outage.end()

        await wait_until(
            lambda: sink.counters.messages_read >= len(messages) and sink.idle,
            task,
            "everything stored after the outage",
        )
    finally:
        outage.end()
        stop.set()
        await task

    assert sink.counters.paused_partitions == 0
    assert_exact(clickhouse, data)


async def test_two_sinks_in_one_group_share_the_partitions_exactly(
    config: Config, clickhouse: ClickHouse
) -> None:
    data = Dataset.build()
    messages = data.messages()
    half = len(messages) // 2
    config.sink.batch_rows = 20
    first, second = (Sink(config, storage=clickhouse.storage) for _ in range(2))
    stop = asyncio.Event()
    await produce(config, messages[:half])
    first_task = asyncio.create_task(first.run(stop))
    second_task: asyncio.Task[Any] | None = None
    try:
        await wait_until(lambda: first.counters.total_rows > 0, first_task, "rows")
        # A second member joins: a rebalance hands it part of the partitions.
        second_task = asyncio.create_task(second.run(stop))
        await wait_until(
            lambda: second.counters.assigned_partitions > 0,
            second_task,
            "partitions for the second sink",
        )
        await produce(config, messages[half:])
        deadline = time.monotonic() + WAIT_S
        while await committed(config) < len(messages):
            for task in (first_task, second_task):
                if task.done():
                    task.result()
            assert time.monotonic() < deadline, "timed out waiting for commits"
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.gather(first_task, *([second_task] if second_task else []))

    assert second.counters.messages_read > 0
    assert_exact(clickhouse, data)
