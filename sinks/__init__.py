"""The ClickHouse sink: Kafka topics into tables, schema migrations and reports."""

from stackmeter.sinks.migrations import (
    MIGRATIONS,
    Migration,
    MigrationError,
    apply_migrations,
    refresh_rollups,
)
from stackmeter.sinks.report import MonthlyReport, monthly_report
from stackmeter.sinks.sink import Sink, SinkCounters, run_sink

__all__ = [
    "MIGRATIONS",
    "Migration",
    "MigrationError",
    "MonthlyReport",
    "Sink",
    "SinkCounters",
    "apply_migrations",
    "monthly_report",
    "refresh_rollups",
    "run_sink",
]
