"""Fixtures for the sampler's tests: the simulator serving a scenario, a sampler
configuration on the real local Kafka broker, and a reader of whole topics."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sampling_support import PLATFORM_ID, Message, TopicReader

from stackmeter.codec import default_registry
from stackmeter.config import Config, KafkaConfig, PlatformConfig, SamplerConfig
from stackmeter.simulator import DEFAULT_CLOUD, Scenario, Simulator, run_simulator


@pytest.fixture
def start_simulator() -> Iterator[Callable[[Scenario], Simulator]]:
    """Start the simulator on a scenario; it stops when the test ends."""
    with contextlib.ExitStack() as stack:

        def start(scenario: Scenario) -> Simulator:
            return stack.enter_context(run_simulator(scenario))

        yield start


@pytest.fixture
def sampler_config(kafka_bootstrap: str, tmp_path: Path) -> Callable[..., Config]:
    """A configuration for a running simulator: fresh topics on the shared
    broker (3 partitions), quick API retries, no jitter."""

    def build(simulator: Simulator, **sampler_fields: Any) -> Config:
        clouds_yaml = simulator.write_clouds_yaml(tmp_path / "clouds.yaml")
        fields: dict[str, Any] = {
            "clouds_yaml": str(clouds_yaml),
            "api_retries": 1,
            "api_retry_delay_s": 0.01,
            "jitter_s": 0.0,
            "platforms": [PlatformConfig(cloud=DEFAULT_CLOUD, platform_id=PLATFORM_ID)],
            **sampler_fields,
        }
        return Config(
            kafka=KafkaConfig(
                bootstrap_servers=kafka_bootstrap,
                topic_prefix=f"t{uuid.uuid4().hex[:10]}",
                partitions=3,
            ),
            sampler=SamplerConfig(**fields),
        )

    return build


@pytest.fixture
def read_topic(kafka_bootstrap: str) -> TopicReader:
    """Read every record of a topic, each partition in offset order."""
    registry = default_registry()

    async def read(topic: str) -> list[Message]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka_bootstrap, enable_auto_commit=False
        )
        await consumer.start()
        try:
            partitions = [
                TopicPartition(topic, p)
                for p in await _partitions(kafka_bootstrap, topic)
            ]
            if not partitions:
                return []
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            end = await consumer.end_offsets(partitions)
            messages: list[Message] = []
            while any(await _behind(consumer, end)):
                batches = await consumer.getmany(timeout_ms=1000)
                for tp, records in batches.items():
                    for r in records:
                        decoded = registry.decode(r.value)
                        messages.append(
                            Message(
                                tp.partition,
                                r.offset,
                                r.key.decode(),
                                decoded.schema_name,
                                decoded.record,
                            )
                        )
            return sorted(messages, key=lambda m: (m.partition, m.offset))
        finally:
            await consumer.stop()

    return read


async def _behind(
    consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]
) -> list[bool]:
    return [await consumer.position(tp) < offset for tp, offset in end.items()]


async def _partitions(bootstrap: str, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            return []
        (described,) = await admin.describe_topics([topic])
        return sorted(p["partition"] for p in described["partitions"])
    finally:
        await admin.close()
