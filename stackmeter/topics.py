"""Kafka topic names and their creation with the partition counts and policies.

Every snapshot topic has the same partition count, so that stream time advances
alike on all of them; the usage topics are compacted because usage records are
upserts keyed by ``usage_id`` and ``charge_id``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from stackmeter.resources import RESOURCE_TYPE_IDS

logger = logging.getLogger(__name__)

COMPACTED = {"cleanup.policy": "compact"}


@dataclass(frozen=True, slots=True)
class TopicNames:
    """Topic names derived from one prefix, so several pipelines share a broker."""

    prefix: str = "stackmeter"

    def snapshots(self, type_id: str) -> str:
        """Snapshots and run markers of one resource type."""
        return f"{self.prefix}.snapshot.{type_id}"

    def all_snapshots(self) -> list[str]:
        return [self.snapshots(type_id) for type_id in RESOURCE_TYPE_IDS]

    @property
    def projects(self) -> str:
        return f"{self.prefix}.projects"

    @property
    def usage(self) -> str:
        return f"{self.prefix}.usage"

    @property
    def rated_usage(self) -> str:
        return f"{self.prefix}.usage.rated"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}.deadletter"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic to create: name, partitions and topic-level configs."""

    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


def pipeline_topics(
    names: TopicNames, partitions: int, usage_partitions: int | None = None
) -> list[TopicSpec]:
    """Every topic the pipeline reads or writes."""
    usage_partitions = usage_partitions or partitions
    specs = [TopicSpec(topic, partitions) for topic in names.all_snapshots()]
    specs.append(TopicSpec(names.projects, 1, dict(COMPACTED)))
    specs.append(TopicSpec(names.usage, usage_partitions, dict(COMPACTED)))
    specs.append(TopicSpec(names.rated_usage, usage_partitions, dict(COMPACTED)))
    specs.append(TopicSpec(names.dead_letter, 1))
    return specs


async def ensure_topics(
    bootstrap_servers: str, specs: list[TopicSpec], replication_factor: int = 1
) -> list[str]:
    """Create the topics that are missing; returns the names created.

    An existing topic is left as it is, even if its partition count differs:
    changing partitions moves keys between partitions, which an operator must
    decide on, so a mismatch is logged as a warning.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            new_topics = [
                NewTopic(
                    spec.name,
                    spec.partitions,
                    replication_factor,
                    topic_configs=spec.configs,
                )
                for spec in missing
            ]
            try:
                await admin.create_topics(new_topics)
            except TopicAlreadyExistsError:
                logger.info("topics created concurrently by another process")
            logger.info(
                "created %d topics: %s", len(missing), [s.name for s in missing]
            )
        present = [spec for spec in specs if spec.name in existing]
        if present:
            await _warn_on_partition_mismatch(admin, present)
        return [spec.name for spec in missing]
    finally:
        await admin.close()


async def _warn_on_partition_mismatch(
    admin: AIOKafkaAdminClient, specs: list[TopicSpec]
) -> None:
    described = await admin.describe_topics([spec.name for spec in specs])
    counts = {item["topic"]: len(item["partitions"]) for item in described}
    for spec in specs:
        actual = counts.get(spec.name)
        if actual is not None and actual != spec.partitions:
            logger.warning(
                "topic %s has %d partitions, config asks for %d; left unchanged",
                spec.name,
                actual,
                spec.partitions,
            )
