"""Commands of the sink stage: `sink`, `sink migrate` and `report`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from datetime import UTC, datetime
from typing import Any

from stackmeter.config import Config, load_config
from stackmeter.errors import ConfigError
from stackmeter.metrics import serve_metrics
from stackmeter.sinks.completeness import record_expectations, runs_expected_per_hour
from stackmeter.sinks.migrations import apply_migrations
from stackmeter.sinks.report import (
    monthly_report,
    parse_month,
    render_csv,
    render_table,
)
from stackmeter.sinks.sink import Sink
from stackmeter.storage import open_storage

logger = logging.getLogger(__name__)

_SINK_DESCRIPTION = """\
Consume the usage, rated usage, projects and snapshot topics (for run markers)
and store them in ClickHouse: chDB in the folder sink.clickhouse by default, a
server when sink.clickhouse is an http(s):// URL. Pending schema migrations
are applied first. Offsets are committed only after the insert succeeded;
while ClickHouse is down the sink retries and holds back, skipping nothing.
"""


def register(subparsers: Any) -> None:
    """Add ``sink`` (with ``sink migrate``) and ``report``."""
    sink = subparsers.add_parser(
        "sink",
        help="store usage and rated usage from Kafka in ClickHouse",
        description=_SINK_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sink.set_defaults(run=run_sink_command)
    steps = sink.add_subparsers(title="sink commands", metavar="COMMAND")
    migrate = steps.add_parser(
        "migrate",
        help="apply pending ClickHouse schema migrations and exit",
        description="Create the database and apply every pending migration.",
    )
    migrate.set_defaults(run=run_migrate_command)

    report = subparsers.add_parser(
        "report",
        help="print a month's cost per project and product",
        description=(
            "Print one month's cost per project and product from ClickHouse, "
            "with unrated usage listed, as a table or as CSV."
        ),
    )
    report.add_argument(
        "--month", required=True, metavar="YYYY-MM", help="the month, UTC"
    )
    report.add_argument("--project", metavar="ID", help="only this project id")
    output = report.add_mutually_exclusive_group()
    output.add_argument(
        "--format",
        choices=("table", "csv"),
        default="table",
        help="output format (default: table)",
    )
    output.add_argument(
        "--csv",
        dest="format",
        action="store_const",
        const="csv",
        help="same as --format csv",
    )
    report.set_defaults(run=run_report_command)


def _config(args: argparse.Namespace) -> Config:
    config = load_config(args.config)
    config.validate("kafka", "sink", "metrics")
    if config.sampler.interval_s <= 0:
        raise ConfigError(
            f"{config.source}: sampler.interval_s: must be above 0, "
            f"got {config.sampler.interval_s}"
        )
    return config


def run_sink_command(args: argparse.Namespace) -> int:
    config = _config(args)
    serve_metrics(config.metrics)
    return asyncio.run(_run_until_signal(config))


async def _run_until_signal(config: Config) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    counters = await Sink(config).run(stop)
    logger.info(
        "sink finished rows=%s dead_letters=%d",
        counters.rows_stored,
        counters.dead_letters,
    )
    return 0


def run_migrate_command(args: argparse.Namespace) -> int:
    config = _config(args)
    storage = open_storage(config.sink.clickhouse)
    try:
        applied = apply_migrations(storage, config.sink.database)
        record_expectations(
            storage,
            config.sink.database,
            config.sampler.types,
            runs_expected_per_hour(config),
            datetime.now(UTC),
        )
    finally:
        storage.close()
    if applied:
        print(f"applied migrations {', '.join(map(str, applied))} to {storage.target}")
    else:
        print(f"schema of {storage.target} is up to date")
    return 0


def run_report_command(args: argparse.Namespace) -> int:
    try:
        month = parse_month(args.month)
    except ValueError as exc:
        print(f"stackmeter report: {exc}", file=sys.stderr)
        return 2
    config = load_config(args.config)
    config.validate("sink")
    storage = open_storage(config.sink.clickhouse)
    try:
        report = monthly_report(storage, config.sink.database, month, args.project)
    finally:
        storage.close()
    text = render_csv(report) if args.format == "csv" else render_table(report)
    sys.stdout.write(text)
    return 0
