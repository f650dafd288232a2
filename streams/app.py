"""The Faust app of ``stackmeter worker``: every snapshot topic in, hourly usage
out, with the rating stage installed beside it.

The agent only routes: it reads a message, lets the partition's
:class:`~stackmeter.streams.existence.PartitionMeter` compute a step, publishes
the step's usage records and waits for Kafka's acknowledgement, then writes the
step's state changes to the table (whose changelog Faust flushes before it
commits offsets). Delivery is therefore at least once, and a replay publishes
only records identical to published ones, so consumers deduplicate by
``usage_id`` and ``revision``. Faust's ``exactly_once`` guarantee is not used:
its transactional producer has open duplicate and fencing bugs.

The agent's concurrency stays 1, because with more Faust can commit an offset
past an event still in progress; the worker scales with partitions and with
more workers in the consumer group.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import faust
from aiokafka.errors import KafkaError
from faust.exceptions import ProducerSendError

from stackmeter.codec import default_registry
from stackmeter.config import Config
from stackmeter.resources import RESOURCE_TYPE_IDS
from stackmeter.streams import metrics
from stackmeter.streams.existence import (
    MeterSettings,
    PartitionMeter,
    RunCompleted,
    Sighting,
    Step,
)
from stackmeter.streams.hours import UsageRecord, hour_label
from stackmeter.streams.messages import (
    Origin,
    Rejected,
    encode_dead_letter,
    encode_usage,
    read_snapshot_message,
)
from stackmeter.streams.tables import PartitionIndexes
from stackmeter.topics import TopicNames

logger = logging.getLogger(__name__)

TABLE_NAME = "windows"
AGENT_NAME = "stackmeter.hourly_usage"
RATING_MODULE = "stackmeter.streams.rating_stage"
_RETRY_FIRST_S = 0.5
_RETRY_MAX_S = 30.0


def raw_schema() -> faust.Schema[bytes, bytes]:
    """Bytes in, bytes out: the codec and the state classes do the decoding."""
    return faust.Schema(
        key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )


def app_settings(config: Config) -> dict[str, Any]:
    """Faust settings from the stackmeter configuration."""
    kafka, worker = config.kafka, config.worker
    hosts = [h.strip() for h in kafka.bootstrap_servers.split(",") if h.strip()]
    return {
        "broker": [f"kafka://{host}" for host in hosts],
        "store": worker.store,
        "datadir": worker.data_dir,
        "web_enabled": False,
        "autodiscover": False,
        "topic_partitions": kafka.partitions,
        "topic_replication_factor": kafka.replication_factor,
        # The leader topic serves Faust's timers-on-one-worker feature,
        # which the worker does not use.
        "topic_disable_leader": True,
        "processing_guarantee": "at_least_once",
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        # No warm copies of other workers' partitions: a reassigned
        # partition restores from its changelog, which compaction keeps
        # about as large as the live resources.
        "table_standby_replicas": 0,
        "broker_session_timeout": worker.session_timeout_s,
        "broker_heartbeat_interval": worker.session_timeout_s / 10,
    }


def build_app(config: Config) -> faust.App:
    """The worker's Faust app: the hourly usage agent, and rating if enabled."""
    app = faust.App(config.worker.app_id, **app_settings(config))
    HourlyUsageStage(app, config)
    if config.worker.rating:
        # Imported here so that the worker runs without the rating stage
        # (worker.rating: false) when the catalog is not wanted.
        importlib.import_module(RATING_MODULE).install(app, config)
    return app


class HourlyUsageStage:
    """The agent that turns snapshots and run markers into usage records."""

    def __init__(self, app: faust.App, config: Config) -> None:
        self._app = app
        self._names = TopicNames(config.kafka.topic_prefix)
        self._settings = MeterSettings.from_config(config.worker)
        self._registry = default_registry()
        self._types = {self._names.snapshots(t): t for t in RESOURCE_TYPE_IDS}
        # key_type and value_type bytes make the changelog raw too.
        self.table = app.Table(
            TABLE_NAME,
            key_type=bytes,
            value_type=bytes,
            partitions=config.kafka.partitions,
            help="Hour buckets, resource lives and run clocks per partition.",
        )
        self._indexes = PartitionIndexes(self.table)
        topic = app.topic(*self._types, schema=raw_schema())
        app.agent(topic, name=AGENT_NAME, concurrency=1)(self._consume)
        # mode types handlers with mypy_extensions' bare VarArg(), which
        # today's mypy matches against no function at all.
        app.on_partitions_revoked.connect(self._on_rebalance)  # type: ignore[arg-type]
        app.on_partitions_assigned.connect(self._on_rebalance)  # type: ignore[arg-type]

    async def _consume(self, stream: Any) -> None:
        async for event in stream.events():
            await self.handle(event.message)

    def _on_rebalance(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        self._indexes.invalidate()
        self._rewind_uncommitted_partitions()

    def _rewind_uncommitted_partitions(self) -> None:
        """Make the seek after a rebalance reach partitions committed at 0.

        Faust drops records it fetched while a rebalance was under way and
        relies on seeking every partition back to its committed offset, but
        aiokafka's ``seek_to_committed`` skips partitions whose committed
        offset is 0 or absent. Records dropped there would stay behind the
        position and never be processed; this seeks those partitions to the
        start explicitly. It covers every source topic of the app, the rating
        stage's too; changelog partitions are Faust's recovery's business.
        """
        consumer: Any = self._app.consumer
        if getattr(consumer, "_stackmeter_rewinds", False):
            return
        seek_to_committed = consumer.seek_to_committed
        changelogs = self._app.tables.changelog_topics

        async def seek_including_log_start() -> Mapping[Any, int | None]:
            committed: Mapping[Any, int | None] = await seek_to_committed()
            missed = [
                tp
                for tp, o in committed.items()
                if tp.topic not in changelogs and not o
            ]
            if missed:
                starts = await consumer.earliest_offsets(*missed)
                for tp in missed:
                    await consumer.seek(tp, committed[tp] or starts[tp])
            return committed

        # An instance attribute, so only this app's consumer changes.
        consumer.seek_to_committed = seek_including_log_start
        consumer._stackmeter_rewinds = True

    async def handle(self, message: Any) -> None:
        """Process one message of a snapshot topic."""
        origin = Origin(
            message.topic, message.partition, message.offset, message.key, message.value
        )
        try:
            item = read_snapshot_message(
                self._registry, self._types[message.topic], message.value
            )
            if isinstance(item, Rejected):
                metrics.MESSAGES.labels("unreadable").inc()
                await self._dead_letter(origin, item.reason, "unreadable")
                return
            store = self._indexes.store(message.partition)
            meter = PartitionMeter(store, self._settings)
            if isinstance(item, Sighting):
                step = meter.observe(item)
            else:
                step = meter.complete_run(item)
        except Exception as exc:
            # A bug on one message must not stop billing for everyone: keep
            # the message, with the error, on the dead-letter topic.
            logger.exception(
                "cannot process message topic=%s partition=%d offset=%d",
                origin.topic,
                origin.partition,
                origin.offset,
            )
            await self._dead_letter(origin, f"worker error: {exc!r}", "error")
            return
        if step.rejected is not None:
            await self._dead_letter(origin, step.rejected, "too_late")
        await self._publish(step.usage)
        store.apply(step.writes)
        self._account(origin.partition, item, step)

    async def _publish(self, records: Sequence[UsageRecord]) -> None:
        if not records:
            return
        messages = [encode_usage(self._registry, record) for record in records]
        await self._send_all(self._names.usage, messages)
        for record in records:
            if record.revision > 1:
                metrics.USAGE_RECORDS.labels("correction").inc()
            elif record.estimated:
                metrics.USAGE_RECORDS.labels("estimated").inc()
            else:
                metrics.USAGE_RECORDS.labels("first").inc()

    async def _dead_letter(self, origin: Origin, reason: str, kind: str) -> None:
        value = encode_dead_letter(self._registry, origin, reason)
        await self._send_all(self._names.dead_letter, [(origin.key, value)])
        metrics.DEAD_LETTERS.labels(kind).inc()
        logger.warning(
            "message sent to the dead-letter topic topic=%s partition=%d offset=%d "
            "reason=%s",
            origin.topic,
            origin.partition,
            origin.offset,
            reason,
        )

    async def _send_all(
        self, topic: str, messages: Sequence[tuple[bytes | None, bytes]]
    ) -> None:
        """Send and wait for every acknowledgement, retrying until Kafka takes them.

        A failed attempt sends the whole batch again; duplicates are identical
        upserts, and holding the stream here is the back-pressure the design
        asks for when Kafka is down.
        """
        delay_s = _RETRY_FIRST_S
        while True:
            try:
                pending = [
                    await self._app.producer.send(
                        topic, key, value, partition=None, timestamp=None, headers=None
                    )
                    for key, value in messages
                ]
                await asyncio.gather(*pending)
                return
            except (KafkaError, ProducerSendError) as exc:
                metrics.PUBLISH_RETRIES.inc()
                logger.warning(
                    "cannot publish, retrying topic=%s records=%d delay_s=%.1f "
                    "error=%r",
                    topic,
                    len(messages),
                    delay_s,
                    exc,
                )
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, _RETRY_MAX_S)

    def _account(
        self, partition: int, item: Sighting | RunCompleted, step: Step
    ) -> None:
        if isinstance(item, Sighting):
            metrics.MESSAGES.labels("snapshot").inc()
            if step.unfilled_gap_hours:
                metrics.UNFILLED_GAPS.inc()
                logger.warning(
                    "sampling gap too long to estimate resource=%s hours=%d",
                    item.key.resource_id,
                    step.unfilled_gap_hours,
                )
            return
        metrics.MESSAGES.labels("marker").inc()
        metrics.LIVES_ENDED.inc(step.lives_ended)
        scope = item.scope
        if step.late_run:
            metrics.LATE_RUNS.inc()
            logger.warning(
                "run marker for a closed hour, counted as a failed run run=%s "
                "platform=%s type=%s sampled_at=%s partition=%d",
                item.run_id,
                scope.platform_id,
                scope.resource_type,
                item.sampled_at_ms,
                partition,
            )
            return
        metrics.STREAM_TIME.labels(scope.platform_id, scope.resource_type).set(
            item.sampled_at_ms / 1000
        )
        logger.debug(
            "run completed run=%s type=%s partition=%d lives_ended=%d",
            item.run_id,
            scope.resource_type,
            partition,
            step.lives_ended,
        )
        if step.closed_hours:
            metrics.HOURS_CLOSED.inc(len(step.closed_hours))
            logger.info(
                "hours closed platform=%s type=%s partition=%d hours=%s usage=%d",
                scope.platform_id,
                scope.resource_type,
                partition,
                ",".join(hour_label(h) for h in step.closed_hours[-3:]),
                len(step.usage),
            )
