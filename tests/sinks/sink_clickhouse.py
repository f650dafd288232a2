"""Where a sink test's data goes: the ``sink.clickhouse`` target and its database."""

from __future__ import annotations

from dataclasses import dataclass

from stackmeter.storage import Storage


@dataclass
class ClickHouse:
    """The target as ``sink.clickhouse`` names it, its database and an open handle."""

    kind: str
    target: str
    database: str
    storage: Storage
