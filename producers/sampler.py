"""The sampler of one platform (a clouds.yaml cloud and region): it lists every
resource type on an interval, publishes snapshots and run markers, and
publishes the platform's Keystone projects alongside.

Each type runs on its own schedule with its own openstacksdk connection and
listing thread; all of them share one Kafka producer. :func:`sample_once` and
:func:`run_sampler` are the entry points for the command line and for
``stackmeter up``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

import openstack.connection
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from stackmeter.codec import SchemaRegistry, default_registry
from stackmeter.config import Config, PlatformConfig
from stackmeter.producers import metrics
from stackmeter.producers.clock import Clock, WallClock, jittered
from stackmeter.producers.collectors import (
    COLLECTORS,
    PROJECTS,
    Collector,
    Item,
    Listing,
    Lookup,
    project_record,
)
from stackmeter.producers.listing import iter_pages, open_connection, read_ahead
from stackmeter.producers.publisher import Delivery, PublishError, create_producer
from stackmeter.producers.runs import (
    Encode,
    Message,
    RunContext,
    RunPlan,
    RunResult,
    execute_run,
)
from stackmeter.resources import resource_type
from stackmeter.topics import TopicNames, ensure_topics, pipeline_topics

logger = logging.getLogger(__name__)

#: The run name of the Keystone project listing (not a metered resource type).
PROJECTS_RUN = "keystone.project"


class Sampler:
    """Samples one platform; use as ``async with Sampler(...) as sampler``."""

    def __init__(
        self,
        config: Config,
        platform: PlatformConfig,
        clock: Clock | None = None,
        *,
        registry: SchemaRegistry | None = None,
    ) -> None:
        self._config = config
        self._platform = platform
        self._clock: Clock = clock or WallClock()
        self._registry = registry or default_registry()
        self._topics = TopicNames(config.kafka.topic_prefix)
        self._plans = {name: self._snapshot_plan(c) for name, c in COLLECTORS.items()}
        self._plans[PROJECTS_RUN] = self._projects_plan()
        self._connections: dict[str, openstack.connection.Connection] = {}
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=len(self._plans), thread_name_prefix="stackmeter-listing"
        )
        self._producer: AIOKafkaProducer | None = None

    @property
    def platform_id(self) -> str:
        return self._platform.platform_id

    async def start(self) -> None:
        """Create the topics that are missing and start the producer."""
        kafka = self._config.kafka
        wanted = {*self._topics.all_snapshots(), self._topics.projects}
        specs = [
            spec
            for spec in pipeline_topics(self._topics, kafka.partitions)
            if spec.name in wanted
        ]
        producer = create_producer(
            kafka.bootstrap_servers, f"stackmeter-sampler-{self.platform_id}"
        )
        try:
            await ensure_topics(
                kafka.bootstrap_servers, specs, kafka.replication_factor
            )
            await producer.start()
        except KafkaError as exc:
            await producer.stop()
            raise PublishError(
                f"Kafka at {kafka.bootstrap_servers} is not usable: {exc!r}"
            ) from exc
        self._producer = producer
        logger.info(
            "sampler started platform=%s cloud=%s region=%s",
            self.platform_id,
            self._platform.cloud,
            self._platform.region,
        )

    async def stop(self) -> None:
        """Flush and stop the producer; close the API connections."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        # Listing threads of cancelled runs stop after their current request.
        self._executor.shutdown(wait=False, cancel_futures=True)
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()
        logger.info("sampler stopped platform=%s", self.platform_id)

    async def __aenter__(self) -> Sampler:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def sample(self, name: str) -> RunResult:
        """One run of a resource type (or :data:`PROJECTS_RUN`), logged and
        counted in the metrics. API and Kafka failures are in the result."""
        if self._producer is None:
            raise RuntimeError("Sampler.sample() before start()")
        plan = self._plans[name]
        context = RunContext.begin(self.platform_id, self._clock.now())
        logger.debug("run started type=%s run_id=%s", name, context.run_id)
        result = await execute_run(
            plan,
            context,
            source=self._page_source(name),
            delivery=Delivery(self._producer, plan.topic),
            registry=self._registry,
            executor=self._executor,
        )
        _log_result(result)
        metrics.record_run(result)
        return result

    async def sample_all(self, names: Sequence[str]) -> list[RunResult]:
        """One run of each name, all at the same time."""
        return list(await asyncio.gather(*(self.sample(name) for name in names)))

    async def run(self, names: Sequence[str], stop_event: asyncio.Event) -> None:
        """Sample every name on the interval until ``stop_event`` is set."""
        loops = [
            asyncio.create_task(self._run_loop(name, stop_event), name=f"sample {name}")
            for name in names
        ]
        try:
            await asyncio.gather(*loops)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    async def _run_loop(self, name: str, stop_event: asyncio.Event) -> None:
        interval = timedelta(seconds=self._config.sampler.interval_s)
        jitter_s = self._config.sampler.jitter_s
        slot = self._clock.now()
        while not stop_event.is_set():
            if not await _wait(
                self._clock, jittered(slot, jitter_s, random.random), stop_event
            ):
                return
            try:
                await self.sample(name)
            except Exception:
                # A bug rather than an API or Kafka failure; the next run may
                # still succeed, and stopping would leave the type unmetered.
                logger.exception(
                    "run crashed type=%s platform=%s", name, self.platform_id
                )
                metrics.RUNS.labels(self.platform_id, name, "crashed").inc()
            slot = _next_slot(slot, interval, self._clock.now(), name)

    def _page_source(
        self, name: str
    ) -> Callable[[Listing], Iterator[list[dict[str, Any]]]]:
        page_size = self._config.sampler.page_size
        connection = self._connection(name)

        def pages(listing: Listing) -> Iterator[list[dict[str, Any]]]:
            return read_ahead(iter_pages(connection, listing, page_size))

        return pages

    def _connection(self, name: str) -> openstack.connection.Connection:
        # One connection per run name: openstacksdk connections are not meant
        # to be shared between threads, and each name lists in its own thread.
        # Opened here on the event loop thread (see clouds.cloud_region).
        connection = self._connections.get(name)
        if connection is None:
            connection = open_connection(self._platform, self._config.sampler)
            self._connections[name] = connection
        return connection

    def _snapshot_plan(self, collector: Collector) -> RunPlan:
        schema_name = resource_type(collector.type_id).schema_name
        return RunPlan(
            name=collector.type_id,
            topic=self._topics.snapshots(collector.type_id),
            listing=collector.listing,
            lookup=collector.lookup,
            encode=_snapshot_encoder(collector, schema_name, self._registry),
        )

    def _projects_plan(self) -> RunPlan:
        registry = self._registry

        def encode(item: Item, lookup: Lookup, context: RunContext) -> Message:
            record = project_record(item, context.platform_id, context.sampled_at)
            key = f"{context.platform_id}/{record['project_id']}".encode()
            return key, registry.encode("stackmeter.Project", record)

        return RunPlan(
            name=PROJECTS_RUN,
            topic=self._topics.projects,
            listing=PROJECTS,
            encode=encode,
            marker_schema=None,
        )


def _snapshot_encoder(
    collector: Collector, schema_name: str, registry: SchemaRegistry
) -> Encode:
    def encode(item: Item, lookup: Lookup, context: RunContext) -> Message:
        observed = collector.observe(item, lookup)
        record = {
            "envelope": {
                "platform_id": context.platform_id,
                "project_id": observed.project_id,
                "resource_id": observed.resource_id,
                "resource_name": observed.resource_name,
                "run_id": context.run_id,
                "sampled_at": context.sampled_at_ms,
            },
            "traits": observed.traits,
        }
        return observed.resource_id.encode(), registry.encode(schema_name, record)

    return encode


async def _wait(clock: Clock, moment: datetime, stop_event: asyncio.Event) -> bool:
    """Wait until ``moment`` by ``clock``; False when stopped first."""
    sleeper = asyncio.create_task(clock.sleep_until(moment))
    stopper = asyncio.create_task(stop_event.wait())
    try:
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, stopper):
            task.cancel()
        await asyncio.gather(sleeper, stopper, return_exceptions=True)
    return not stop_event.is_set()


def _next_slot(
    slot: datetime, interval: timedelta, now: datetime, name: str
) -> datetime:
    """The next start on the schedule; slots a long run overran are skipped."""
    following = slot + interval
    if following > now:
        return following
    missed = int((now - slot) / interval)
    logger.warning(
        "run overran the interval type=%s skipped_runs=%d interval_s=%.0f",
        name,
        missed,
        interval.total_seconds(),
    )
    return slot + interval * (missed + 1)


def _log_result(result: RunResult) -> None:
    if result.completed:
        logger.info(
            "run completed type=%s platform=%s run_id=%s resources=%d pages=%d "
            "seconds=%.2f published=%d",
            result.type_id,
            result.platform_id,
            result.run_id,
            result.resources,
            result.pages,
            result.seconds,
            result.published,
        )
        return
    logger.error(
        "run abandoned, no marker type=%s platform=%s run_id=%s resources=%d "
        "pages=%d seconds=%.2f published=%d error=%s",
        result.type_id,
        result.platform_id,
        result.run_id,
        result.resources,
        result.pages,
        result.seconds,
        result.published,
        result.error,
    )


def run_names(types: Sequence[str] | None, config: Config, projects: bool) -> list[str]:
    """The run names for ``types`` (default: the configured ones), plus the
    project listing when ``projects``."""
    names = list(types if types is not None else config.sampler.types)
    if projects and PROJECTS_RUN not in names:
        names.append(PROJECTS_RUN)
    return names


async def sample_once(
    config: Config,
    platform: PlatformConfig,
    clock: Clock | None = None,
    *,
    types: Sequence[str] | None = None,
    projects: bool = True,
) -> list[RunResult]:
    """One run of every type (and of the project listing), then stop."""
    async with Sampler(config, platform, clock) as sampler:
        return await sampler.sample_all(run_names(types, config, projects))


async def run_sampler(
    config: Config,
    platform: PlatformConfig,
    clock: Clock | None = None,
    stop_event: asyncio.Event | None = None,
    *,
    types: Sequence[str] | None = None,
    projects: bool = True,
) -> None:
    """Sample one platform on the configured interval until ``stop_event`` is
    set (or the task is cancelled)."""
    stop_event = stop_event or asyncio.Event()
    async with Sampler(config, platform, clock) as sampler:
        await sampler.run(run_names(types, config, projects), stop_event)
