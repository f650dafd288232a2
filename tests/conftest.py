"""Fixtures shared by every test: the real local Kafka broker and unique names."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest

from stackmeter.local_kafka import LocalKafka


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``127.0.0.1:PORT`` of one real Kafka 4.0 broker shared by the session.

    Topics are not auto-created on it: create them (see ``topic_name``).
    """
    with LocalKafka() as broker:
        yield broker.bootstrap_servers


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> str:
    """A topic name no other test uses, derived from the test's own name."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name).strip("-")
    return f"test-{readable[:100]}-{uuid.uuid4().hex[:12]}"
