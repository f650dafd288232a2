"""Fixtures shared by every test: the real local Kafka broker and unique names."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from chdb_http import ChdbHttpServer

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


@pytest.fixture(scope="session")
def chdb_http_server_process(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ChdbHttpServer]:
    """One ClickHouse HTTP stand-in over chDB (a child process) for the session."""
    server = ChdbHttpServer(tmp_path_factory.mktemp("chdb-http") / "data")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def clickhouse_http_server(
    chdb_http_server_process: ChdbHttpServer,
) -> ChdbHttpServer:
    """The shared HTTP server, running; ``stop()``/``start()`` simulate an outage.

    A restart keeps the port and the data folder. The next test gets the
    server running again even if this one leaves it stopped.
    """
    chdb_http_server_process.start()
    return chdb_http_server_process


@pytest.fixture
def clickhouse_http_url(clickhouse_http_server: ChdbHttpServer) -> str:
    """``http://127.0.0.1:PORT/DB``: the shared server, a database for this test."""
    database = clickhouse_http_server.create_database()
    return f"{clickhouse_http_server.url}/{database}"
