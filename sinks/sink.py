"""The sink: usage, rated usage, projects and run markers from Kafka into ClickHouse.

One aiokafka consumer in one group reads every topic. Each topic fills its own
batch, stored by a task of its own when it reaches ``batch_rows`` or
``batch_s``, so the next batch is decoded while the previous one is inserted.
Offsets are committed per partition only after the batch's insert returned: a
crash re-reads at most the batches not yet committed, and their rows replace
themselves on ReplacingMergeTree keys without changing any sum. A batch retried
after a failed attempt carries the same deduplication token and is stored
once. While ClickHouse is down the batch is retried with back-off and the
topic's partitions are paused once the next batch is full: nothing is skipped
and memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from prometheus_client import Counter, Gauge

from stackmeter.codec import SchemaRegistry, default_registry
from stackmeter.config import Config
from stackmeter.errors import CodecError, StorageError
from stackmeter.sinks.batching import (
    RefusedMessage,
    TopicBatch,
    TopicPipeline,
    backoff_s,
)
from stackmeter.sinks.completeness import record_expectations, runs_expected_per_hour
from stackmeter.sinks.migrations import apply_migrations, check_database_name
from stackmeter.sinks.routes import MessageReader, sink_routes
from stackmeter.storage import Storage, open_storage
from stackmeter.topics import TopicNames, ensure_topics, pipeline_topics

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEAD_LETTER_SCHEMA = "stackmeter.DeadLetter"

# Longest wait for new messages before batches are checked again; shorter
# while partitions are paused, since a paused partition is resumed only at a
# poll and waits for the fetch that follows.
_POLL_MAX_S = 0.2
_POLL_PAUSED_S = 0.01
# How long a graceful stop keeps trying to store what was read.
_DRAIN_TIMEOUT_S = 10.0

ROWS_STORED = Counter(
    "stackmeter_sink_rows_total", "Rows the sink inserted into ClickHouse.", ["table"]
)
DEAD_LETTERS = Counter(
    "stackmeter_sink_dead_letters_total",
    "Messages the sink could not store, sent to the dead-letter topic.",
    ["topic"],
)
INSERT_FAILURES = Counter(
    "stackmeter_sink_insert_failures_total",
    "Failed attempts to store a batch; each is retried after a back-off.",
    ["table"],
)
PAUSED_PARTITIONS = Gauge(
    "stackmeter_sink_paused_partitions",
    "Partitions paused because their topic's batches wait to be stored.",
)


@dataclass
class SinkCounters:
    """What the sink has done so far; read by progress displays and tests."""

    rows_stored: dict[str, int] = field(default_factory=dict)
    messages_read: int = 0
    messages_skipped: int = 0
    dead_letters: int = 0
    batches_stored: int = 0
    insert_failures: int = 0
    commit_failures: int = 0
    assigned_partitions: int = 0
    paused_partitions: int = 0
    last_error: str | None = None

    @property
    def total_rows(self) -> int:
        return sum(self.rows_stored.values())


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, sink: Sink) -> None:
        self._sink = sink

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._sink._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._sink._on_assigned(assigned)


class Sink:
    """Runs the sink in this process until a stop event is set.

    ``storage`` is used as given and left open; without it the sink opens
    ``sink.clickhouse`` itself and closes it at the end. Storage calls run
    one at a time on a thread of their own, since the adapters block.
    """

    def __init__(
        self,
        config: Config,
        *,
        storage: Storage | None = None,
        registry: SchemaRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._settings = config.sink
        self._database = check_database_name(config.sink.database)
        self._names = TopicNames(config.kafka.topic_prefix)
        self._registry = registry or default_registry()
        self._reader = MessageReader(sink_routes(self._names), self._registry)
        self._pipelines = {
            topic: TopicPipeline(topic, self._reader.route(topic).table)
            for topic in sink_routes(self._names)
        }
        self._storage = storage
        self._owns_storage = storage is None
        self._clock = clock
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sink-storage")
        self._consumer: Any = None
        self._storers: dict[str, asyncio.Task[None]] = {}
        self._producer: Any = None
        self.counters = SinkCounters()

    @property
    def topics(self) -> list[str]:
        return list(self._pipelines)

    @property
    def idle(self) -> bool:
        """Every message read so far is stored and its offset committed."""
        return all(pipeline.idle for pipeline in self._pipelines.values())

    async def run(self, stop: asyncio.Event) -> SinkCounters:
        """Consume and store until ``stop`` is set; then store what was read."""
        try:
            await self._prepare(stop)
            if stop.is_set():
                return self.counters
            await self._start_kafka()
            try:
                logger.info(
                    "sink started database=%s topics=%d group=%s",
                    self._database,
                    len(self._pipelines),
                    self._settings.group_id,
                )
                while not stop.is_set():
                    await self._step()
                await self._drain()
            finally:
                await self._cancel_storers()
                await self._stop_kafka()
        finally:
            if self._owns_storage and self._storage is not None:
                await self._in_thread(self._storage.close)
            self._executor.shutdown(wait=False)
        logger.info(
            "sink stopped rows=%d dead_letters=%d",
            self.counters.total_rows,
            self.counters.dead_letters,
        )
        return self.counters

    # -- start and stop ---------------------------------------------------------

    async def _prepare(self, stop: asyncio.Event) -> None:
        """Open storage, migrate, record expectations and create the topics.

        ClickHouse and Kafka may still be starting: each step is retried with
        back-off until it succeeds or the sink is told to stop.
        """
        if self._storage is None:
            target = self._settings.clickhouse
            self._storage = await self._in_thread(open_storage, target)
        storage = self._storage
        await self._retrying(
            stop, "migrate", lambda: self._in_thread(self._migrate, storage)
        )
        names = self._names
        specs = pipeline_topics(names, self._config.kafka.partitions)
        await self._retrying(
            stop,
            "create topics",
            lambda: ensure_topics(
                self._config.kafka.bootstrap_servers,
                specs,
                self._config.kafka.replication_factor,
            ),
        )

    def _migrate(self, storage: Storage) -> None:
        apply_migrations(storage, self._database)
        record_expectations(
            storage,
            self._database,
            self._config.sampler.types,
            runs_expected_per_hour(self._config),
            datetime.now(UTC),
        )

    async def _retrying(
        self,
        stop: asyncio.Event,
        what: str,
        attempt: Callable[[], Any],
    ) -> None:
        failures = 0
        while not stop.is_set():
            try:
                await attempt()
                return
            except (StorageError, KafkaError, OSError) as exc:
                if isinstance(exc, StorageError) and not exc.retriable:
                    raise
                failures += 1
                delay = self._backoff(failures)
                self.counters.last_error = str(exc)
                logger.warning(
                    "cannot %s yet attempt=%d retry_in_s=%.1f reason=%s",
                    what,
                    failures,
                    delay,
                    exc,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)

    async def _start_kafka(self) -> None:
        kafka = self._config.kafka
        self._producer = AIOKafkaProducer(
            bootstrap_servers=kafka.bootstrap_servers,
            client_id="stackmeter-sink",
            acks="all",
            enable_idempotence=True,
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers,
            client_id="stackmeter-sink",
            group_id=self._settings.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=self._settings.batch_rows,
            # Partitions with nothing new would otherwise hold each fetch
            # for 500 ms, delaying the partitions resumed meanwhile.
            fetch_max_wait_ms=100,
        )
        await self._producer.start()
        try:
            # Subscribed once: re-subscribing would force a rebalance and
            # throw away every position that is not committed.
            self._consumer.subscribe(self.topics, listener=_Rebalance(self))
            await self._consumer.start()
        except BaseException:
            await self._producer.stop()
            raise

    async def _stop_kafka(self) -> None:
        consumer, self._consumer = self._consumer, None
        producer, self._producer = self._producer, None
        if consumer is not None:
            await consumer.stop()
        if producer is not None:
            await producer.stop()

    async def _drain(self) -> None:
        """Store and commit what was read before stopping, for a short while.

        Whatever is still unstored when the time is up is left uncommitted
        and is read again at the next start.
        """
        deadline = self._clock() + _DRAIN_TIMEOUT_S
        while self._clock() < deadline:
            self._check_storers()
            if not self._storers and self.idle:
                return
            self._start_storers(self._clock(), force=True)
            await asyncio.sleep(0.05)
        left = sum(
            p.open.size + (p.sealed.size if p.sealed else 0)
            for p in self._pipelines.values()
        )
        logger.warning(
            "stopping with messages not stored count=%d; they are read again "
            "at the next start",
            left,
        )

    async def _cancel_storers(self) -> None:
        storers, self._storers = list(self._storers.values()), {}
        for task in storers:
            task.cancel()
        # A cancelled insert may still finish in its thread; its offsets are
        # never committed, so the rows are read and replaced again.
        await asyncio.gather(*storers, return_exceptions=True)

    # -- the loop -----------------------------------------------------------------

    async def _step(self) -> None:
        fetched = await self._consumer.getmany(
            timeout_ms=int(self._poll_timeout_s() * 1000),
            max_records=self._settings.batch_rows,
        )
        now = self._clock()
        for tp, messages in fetched.items():
            pipeline = self._pipelines[tp.topic]
            for message in messages:
                self._accept(pipeline, message, now)
        self._check_storers()
        self._start_storers(now)
        self._hold_back()

    def _poll_timeout_s(self) -> float:
        """Until the earliest batch is due or may be retried, at most 0.2 s."""
        now = self._clock()
        wait = _POLL_PAUSED_S if self.counters.paused_partitions else _POLL_MAX_S
        for pipeline in self._pipelines.values():
            if pipeline.topic in self._storers:
                continue
            if pipeline.sealed is not None:
                wait = min(wait, pipeline.retry_at - now)
            elif pipeline.open.opened_at is not None:
                wait = min(wait, pipeline.open.opened_at + self._settings.batch_s - now)
        return max(wait, 0.0)

    def _start_storers(self, now: float, *, force: bool = False) -> None:
        """Start storing every topic whose batch is due and not being stored.

        Storing runs beside reading: while one batch is inserted, the next
        is decoded. ``force`` seals whatever was read, for a stop.
        """
        rows = 0 if force else self._settings.batch_rows
        batch_s = 0.0 if force else self._settings.batch_s
        for pipeline in self._pipelines.values():
            if pipeline.topic in self._storers:
                continue
            pipeline.seal_if_due(now, rows, batch_s)
            if pipeline.ready(now):
                self._storers[pipeline.topic] = asyncio.create_task(
                    self._store_while_due(pipeline, rows, batch_s),
                    name=f"sink-store-{pipeline.topic}",
                )

    def _check_storers(self) -> None:
        """Forget finished storers; re-raise what stopped one for good."""
        for topic, task in list(self._storers.items()):
            if task.done():
                del self._storers[topic]
                task.result()

    async def _store_while_due(
        self, pipeline: TopicPipeline, batch_rows: int, batch_s: float
    ) -> None:
        while pipeline.ready(self._clock()):
            if not await self._store(pipeline):
                return
            pipeline.seal_if_due(self._clock(), batch_rows, batch_s)
            # Resume now rather than at the next poll: reading and decoding
            # must go on while the batch just sealed is inserted.
            if self._consumer is not None:
                self._hold_back()

    def _accept(self, pipeline: TopicPipeline, message: Any, now: float) -> None:
        self.counters.messages_read += 1
        partition, offset = message.partition, message.offset
        try:
            row = self._reader.read(pipeline.topic, message.value, partition, offset)
        except CodecError as exc:
            logger.warning(
                "refusing message topic=%s partition=%d offset=%d reason=%s",
                pipeline.topic,
                partition,
                offset,
                exc,
            )
            refused = RefusedMessage(
                partition, offset, message.key, message.value, str(exc)
            )
            pipeline.open.add_refused(refused, now)
            return
        if row is None:
            self.counters.messages_skipped += 1
            pipeline.open.add_skipped(partition, offset, now)
        else:
            pipeline.open.add_row(partition, offset, row, now)

    async def _store(self, pipeline: TopicPipeline) -> bool:
        """Dead letters, then the insert, then the commit; back off on failure.

        Returns whether the sealed batch is stored.
        """
        batch = pipeline.sealed
        if batch is None:
            return True
        table = batch.table.name
        try:
            await self._send_dead_letters(batch)
            rows = batch.rows()
            if rows:
                await self._in_thread(
                    self._insert, table, batch.table.columns, rows, batch.dedup_token()
                )
        except (StorageError, KafkaError) as exc:
            if isinstance(exc, StorageError) and not exc.retriable:
                logger.error(
                    "ClickHouse refused a batch, stopping table=%s rows=%d "
                    "reason=%s; nothing of it is committed",
                    table,
                    batch.size,
                    exc,
                )
                raise
            delay = self._backoff(pipeline.failed_attempts + 1)
            pipeline.failed(self._clock(), delay)
            self.counters.insert_failures += 1
            self.counters.last_error = str(exc)
            INSERT_FAILURES.labels(table).inc()
            logger.warning(
                "cannot store batch yet table=%s rows=%d attempt=%d "
                "retry_in_s=%.1f reason=%s",
                table,
                batch.size,
                pipeline.failed_attempts,
                delay,
                exc,
            )
            return False
        await self._commit(batch)
        pipeline.stored()
        self.counters.batches_stored += 1
        stored = len(rows)
        self.counters.rows_stored[table] = (
            self.counters.rows_stored.get(table, 0) + stored
        )
        ROWS_STORED.labels(table).inc(stored)
        logger.debug(
            "stored batch table=%s rows=%d ranges=%s",
            table,
            stored,
            batch.ranges(),
        )
        return True

    def _insert(
        self,
        table: str,
        columns: tuple[str, ...],
        rows: list[tuple[Any, ...]],
        token: str,
    ) -> None:
        storage = self._storage
        if storage is None:
            raise RuntimeError("the sink has no storage open")
        storage.insert(f"{self._database}.{table}", columns, rows, dedup_token=token)

    async def _send_dead_letters(self, batch: TopicBatch) -> None:
        refused = batch.refused()
        if batch.refused_sent or not refused:
            return
        failed_at = datetime.now(UTC)
        sends = []
        for message in refused:
            value = self._registry.encode(
                DEAD_LETTER_SCHEMA,
                {
                    "stage": "sink",
                    "reason": message.reason,
                    "source_topic": batch.topic,
                    "source_partition": message.partition,
                    "source_offset": message.offset,
                    "key": message.key,
                    "value": message.value,
                    "failed_at": failed_at,
                },
            )
            sends.append(
                await self._producer.send(
                    self._names.dead_letter, value=value, key=message.key
                )
            )
        await asyncio.gather(*sends)
        batch.refused_sent = True
        self.counters.dead_letters += len(refused)
        DEAD_LETTERS.labels(batch.topic).inc(len(refused))
        logger.info(
            "sent to the dead-letter topic topic=%s count=%d", batch.topic, len(refused)
        )

    async def _commit(self, batch: TopicBatch) -> None:
        """Commit the batch's offsets for the partitions this consumer still owns.

        A failed commit loses nothing: the rows are stored, and the messages
        are read and stored again by whoever owns the partition next.
        """
        assigned = self._consumer.assignment()
        offsets = {
            TopicPartition(batch.topic, partition): offset
            for partition, offset in batch.offsets_to_commit().items()
            if TopicPartition(batch.topic, partition) in assigned
        }
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            self.counters.commit_failures += 1
            logger.warning(
                "offsets not committed topic=%s reason=%s; the stored rows will "
                "be read again and replace themselves",
                batch.topic,
                exc,
            )

    def _hold_back(self) -> None:
        """Pause exactly the assigned partitions whose topic cannot take more."""
        consumer = self._consumer
        assigned = consumer.assignment()
        wanted = {
            tp
            for tp in assigned
            if self._pipelines[tp.topic].holds_back(self._settings.batch_rows)
        }
        paused = consumer.paused() & assigned
        if wanted - paused:
            consumer.pause(*(wanted - paused))
            logger.info(
                "holding back partitions while batches wait to be stored count=%d",
                len(wanted - paused),
            )
        if paused - wanted:
            consumer.resume(*(paused - wanted))
            logger.info("resuming partitions count=%d", len(paused - wanted))
        self.counters.paused_partitions = len(wanted)
        PAUSED_PARTITIONS.set(len(wanted))

    # -- rebalancing ----------------------------------------------------------------

    def _on_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        by_topic: dict[str, list[int]] = {}
        for tp in revoked:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        for topic, partitions in by_topic.items():
            pipeline = self._pipelines.get(topic)
            if pipeline is None:
                continue
            dropped = pipeline.open.drop_partitions(partitions)
            logger.info(
                "partitions revoked topic=%s partitions=%s unstored_dropped=%d",
                topic,
                sorted(partitions),
                dropped,
            )

    def _on_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        partitions = sorted((tp.topic, tp.partition) for tp in assigned)
        self.counters.assigned_partitions = len(partitions)
        logger.info("partitions assigned count=%d", len(partitions))
        logger.debug("assigned partitions=%s", partitions)
        # A new assignment starts unpaused; pause again what must wait.
        self._hold_back()

    # -- small parts ----------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        return backoff_s(
            attempt, self._settings.retry_initial_s, self._settings.retry_max_s
        )

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(function, *args)
        )


async def run_sink(
    config: Config,
    stop: asyncio.Event,
    *,
    storage: Storage | None = None,
    counters_ready: Callable[[SinkCounters], None] | None = None,
) -> SinkCounters:
    """Run a sink until ``stop`` is set; ``counters_ready`` gets its live counters.

    The entry point for running the sink inside another program (``stackmeter
    up``): the counters object is updated in place as batches are stored.
    """
    sink = Sink(config, storage=storage)
    if counters_ready is not None:
        counters_ready(sink.counters)
    return await sink.run(stop)
