"""The README's consumer example works as written against a real broker."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stackmeter.codec import default_registry

README = Path(__file__).resolve().parent.parent / "README.md"

pytestmark = pytest.mark.kafka


def consumer_example() -> str:
    text = README.read_text()
    section = text.split("### Reading the usage topic from another consumer", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found, "the README lost its consumer example"
    return found.group(1)


async def publish_usage(bootstrap: str, topic: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    await admin.close()
    record = {
        "usage_id": "0123456789abcdef0123456789abcdef",
        "revision": 1,
        "platform_id": "openstack.eu-west",
        "resource_type": "nova.server",
        "project_id": "p-1",
        "resource_id": "r-1",
        "resource_name": "web-1",
        "hour_start": datetime(2026, 11, 2, 10, tzinfo=UTC),
        "samples_observed": 12,
        "samples_expected": 12,
        "estimated": False,
        "traits": {"vcpu": 4, "flavor": "v4.large", "disk": None},
        "last_sampled_at": datetime(2026, 11, 2, 10, 55, tzinfo=UTC),
    }
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    value = default_registry().encode("stackmeter.Usage", record)
    await producer.send_and_wait(topic, value, key=record["usage_id"].encode())
    await producer.stop()
    return str(record["usage_id"])


def test_the_consumer_example_decodes_a_usage_record(
    kafka_bootstrap: str, topic_name: str, tmp_path: Path
) -> None:
    usage_id = asyncio.run(publish_usage(kafka_bootstrap, topic_name))
    script = tmp_path / "consumer.py"
    script.write_text(
        consumer_example()
        .replace('"127.0.0.1:9092"', repr(kafka_bootstrap))
        .replace('"stackmeter.usage"', repr(topic_name))
    )

    with subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True
    ) as example:
        try:
            assert example.stdout is not None
            deadline = time.monotonic() + 60
            line = ""
            while time.monotonic() < deadline and usage_id not in line:
                line = example.stdout.readline()
        finally:
            example.kill()

    assert line.split()[:3] == [usage_id, "1", "r-1"]
