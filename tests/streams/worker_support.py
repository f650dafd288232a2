"""Driving the real worker over the real broker: scenario events encoded as the
sampler publishes them, worker processes, and reading the usage topic back."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from meter_support import Driver, Event

from stackmeter.codec import default_registry
from stackmeter.config import load_config
from stackmeter.resources import resource_type
from stackmeter.streams.existence import MeterSettings, RunCompleted, Sighting
from stackmeter.streams.hours import UsageRecord, to_datetime
from stackmeter.streams.runner import prepare_topics
from stackmeter.topics import TopicNames

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Pipeline:
    """One test's topics, consumer group and worker configuration file."""

    bootstrap: str
    folder: Path
    partitions: int = 2
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}")
    extra_worker: Mapping[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> TopicNames:
        return TopicNames(self.prefix)

    def config_path(self, name: str = "worker") -> Path:
        """A config file; each name gets its own data folder."""
        path = self.folder / f"{name}.yaml"
        worker = {
            "store": "memory://",
            "data_dir": str(self.folder / f"{name}-data"),
            "app_id": f"{self.prefix}-worker",
            "rating": False,
            "grace_s": 300,
            "session_timeout_s": 6,
            **self.extra_worker,
        }
        document = {
            "kafka": {
                "bootstrap_servers": self.bootstrap,
                "topic_prefix": self.prefix,
                "partitions": self.partitions,
            },
            "worker": worker,
        }
        path.write_text(yaml.safe_dump(document))
        return path

    def create_topics(self) -> None:
        asyncio.run(prepare_topics(load_config(self.config_path())))


@dataclass(frozen=True)
class Outgoing:
    topic: str
    partition: int
    key: bytes
    value: bytes


def encode_events(
    events: Iterable[Event],
    names: TopicNames,
    partitions: int,
    partition_of: Callable[[str], int],
) -> list[Outgoing]:
    """The messages the sampler would publish for these events, in order.

    Snapshots go to their resource's partition; a marker goes to every
    partition, as the sampler sends it after all of the run's snapshots.
    """
    registry = default_registry()
    messages: list[Outgoing] = []
    for event in events:
        if isinstance(event, Sighting):
            key, obs = event.key, event.observation
            schema = resource_type(key.resource_type).schema_name
            value = registry.encode(
                schema,
                {
                    "envelope": {
                        "platform_id": key.platform_id,
                        "project_id": obs.project_id,
                        "resource_id": key.resource_id,
                        "resource_name": obs.resource_name,
                        "run_id": obs.run_id,
                        "sampled_at": to_datetime(obs.sampled_at_ms),
                    },
                    "traits": obs.traits,
                },
            )
            topic = names.snapshots(key.resource_type)
            partition = partition_of(key.resource_id)
            messages.append(Outgoing(topic, partition, key.resource_id.encode(), value))
        else:
            messages.extend(_markers(event, names, partitions))
    return messages


def _markers(run: RunCompleted, names: TopicNames, partitions: int) -> list[Outgoing]:
    value = default_registry().encode(
        "stackmeter.RunMarker",
        {
            "run_id": run.run_id,
            "platform_id": run.scope.platform_id,
            "resource_type": run.scope.resource_type,
            "sampled_at": to_datetime(run.sampled_at_ms),
            "resource_count": run.resource_count,
        },
    )
    topic = names.snapshots(run.scope.resource_type)
    return [Outgoing(topic, p, run.run_id.encode(), value) for p in range(partitions)]


def produce(bootstrap: str, messages: Sequence[Outgoing]) -> None:
    async def send_all() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5
        )
        await producer.start()
        try:
            pending = [
                await producer.send(m.topic, m.value, key=m.key, partition=m.partition)
                for m in messages
            ]
            await asyncio.gather(*pending)
        finally:
            await producer.stop()

    asyncio.run(send_all())


@dataclass
class UsageLog:
    """Every usage record read from the usage topic, in topic order."""

    records: list[UsageRecord] = field(default_factory=list)

    def latest(self) -> dict[str, UsageRecord]:
        """The highest revision per usage id."""
        found: dict[str, UsageRecord] = {}
        for record in self.records:
            prior = found.get(record.usage_id)
            if prior is None or record.revision > prior.revision:
                found[record.usage_id] = record
        return found

    def by_resource_hour(self) -> dict[tuple[str, int], UsageRecord]:
        return {(r.resource_id, r.hour_ms): r for r in self.latest().values()}


def read_usage(
    bootstrap: str,
    topic: str,
    until: Callable[[UsageLog], bool],
    timeout_s: float = 60.0,
    settle_s: float = 1.0,
) -> UsageLog:
    """Read the usage topic from the start until ``until`` holds, then
    ``settle_s`` more seconds so that extra records would be seen too."""

    async def consume() -> UsageLog:
        registry = default_registry()
        log = UsageLog()
        # No group: the consumer reads every partition of the topic itself.
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            deadline = time.monotonic() + timeout_s
            settled_at: float | None = None
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=200)
                for messages in batch.values():
                    for message in messages:
                        record = registry.decode(message.value).record
                        log.records.append(UsageRecord.from_avro(record))
                if settled_at is None and until(log):
                    settled_at = time.monotonic() + settle_s
                if settled_at is not None and time.monotonic() >= settled_at:
                    return log
            raise AssertionError(
                f"usage did not arrive within {timeout_s} s; got {len(log.records)} "
                "records"
            )
        finally:
            await consumer.stop()

    return asyncio.run(consume())


class WorkerProcess:
    """``stackmeter worker`` as a child process, logging to a file."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        environment = dict(os.environ)
        environment["PYTHONUNBUFFERED"] = "1"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stackmeter.cli",
                "--config",
                str(config_path),
                "--log-level",
                "INFO",
                "worker",
            ],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=environment,
        )

    def kill(self) -> None:
        """SIGKILL: no flush, no commit, no clean leave of the group."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self._log.close()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def reference_usage(
    events: Sequence[Event],
    partitions: int,
    partition_of: Callable[[str], int],
    settings: MeterSettings,
) -> set[Hashable]:
    """The distinct records an uninterrupted run publishes: the same state
    machine, one store per partition, each fed its partition's events."""
    found: set[Hashable] = set()
    for partition in range(partitions):
        driver = Driver(settings=settings)
        driver.feed(
            e
            for e in events
            if not isinstance(e, Sighting)
            or partition_of(e.key.resource_id) == partition
        )
        found.update(content(r) for r in driver.usage)
    return found


def content(record: UsageRecord) -> Hashable:
    """A record as a hashable value, every field included."""
    return (
        record.usage_id,
        record.revision,
        record.platform_id,
        record.resource_type,
        record.project_id,
        record.resource_id,
        record.resource_name,
        record.hour_ms,
        record.samples_observed,
        record.samples_expected,
        record.estimated,
        tuple(sorted(record.traits.items())),
        record.last_sampled_at_ms,
    )


def stable_partition(partitions: int) -> Callable[[str], int]:
    """A fixed resource-to-partition map, as key hashing would give."""
    return lambda resource_id: sum(resource_id.encode()) % partitions


async def _group_members(bootstrap: str, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        try:
            (description,) = await admin.describe_consumer_groups([group])
        except KafkaError:
            return 0  # no coordinator for a group that does not exist yet
        (found,) = description.groups
        _error, _group, state, _type, _protocol, members, *_ = found
        return len(members) if state == "Stable" else 0
    finally:
        await admin.close()


def wait_for_group(
    bootstrap: str, group: str, members: int, timeout_s: float = 60
) -> None:
    """Wait until the consumer group is stable with that many members."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if asyncio.run(_group_members(bootstrap, group)) == members:
            return
        time.sleep(0.5)
    raise AssertionError(f"group {group} did not settle with {members} members")


def read_changelog_clocks(
    bootstrap: str,
    topic: str,
    until: Callable[[dict[int, Any]], bool],
    timeout_s: float = 30,
) -> dict[int, Any]:
    """The latest clock value per partition from the window table's changelog."""

    async def consume() -> dict[int, Any]:
        clocks: dict[int, Any] = {}
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=200)
                for messages in batch.values():
                    for message in messages:
                        kind, partition, *_ = orjson.loads(message.key)
                        if kind == "c" and message.value is not None:
                            clocks[partition] = orjson.loads(message.value)
                if until(clocks):
                    return clocks
            raise AssertionError(f"changelog clocks never matched; last {clocks}")
        finally:
            await consumer.stop()

    return asyncio.run(consume())


def read_records(
    bootstrap: str, topic: str, count: int, timeout_s: float = 30
) -> list[dict[str, Any]]:
    """The first ``count`` records of a topic, decoded."""

    async def consume() -> list[dict[str, Any]]:
        registry = default_registry()
        found: list[dict[str, Any]] = []
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            deadline = time.monotonic() + timeout_s
            while len(found) < count and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=200)
                for messages in batch.values():
                    found.extend(registry.decode(m.value).record for m in messages)
            return found
        finally:
            await consumer.stop()

    return asyncio.run(consume())
