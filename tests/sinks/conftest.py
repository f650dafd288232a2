"""ClickHouse for the sink tests: chDB in this process, or a server over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sink_clickhouse import ClickHouse

from stackmeter.storage import open_storage


@pytest.fixture(params=["chdb", "http"])
def clickhouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ClickHouse]:
    """Each adapter in turn on empty storage; the sink tests run on both."""
    if request.param == "chdb":
        target = str(tmp_path / "chdb")
        database = "stackmeter"
    else:
        target = request.getfixturevalue("clickhouse_http_url")
        database = target.rsplit("/", 1)[1]
    storage = open_storage(target)
    try:
        yield ClickHouse(request.param, target, database, storage)
    finally:
        storage.close()
