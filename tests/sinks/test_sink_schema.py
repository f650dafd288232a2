"""The sink's schema and reads on both adapters: migrations, tokens, report, rollups."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sink_clickhouse import ClickHouse
from sink_records import MONTH_START, Dataset, rate, usage_record

from stackmeter import cli
from stackmeter.sinks.completeness import record_expectations
from stackmeter.sinks.migrations import (
    MIGRATIONS,
    Migration,
    MigrationError,
    applied_versions,
    apply_migrations,
    refresh_rollups,
)
from stackmeter.sinks.report import monthly_report, render_csv, render_table
from stackmeter.sinks.rows import (
    PROJECTS,
    RATED_USAGE,
    RUN_MARKERS,
    USAGE,
    TableSpec,
    to_row,
)

_offsets = itertools.count()


def store(
    clickhouse: ClickHouse,
    table: TableSpec,
    records: Iterable[dict[str, Any]],
    token: str | None = None,
) -> None:
    rows = [to_row(table, record, 0, next(_offsets)) for record in records]
    clickhouse.storage.insert(
        f"{clickhouse.database}.{table.name}", table.columns, rows, dedup_token=token
    )


def scalar(clickhouse: ClickHouse, sql: str) -> Any:
    result = clickhouse.storage.query(sql.replace("{db}", clickhouse.database))
    return result.rows[0][0]


def store_dataset(clickhouse: ClickHouse, data: Dataset) -> None:
    store(clickhouse, PROJECTS, data.projects)
    store(clickhouse, USAGE, data.usage)
    store(clickhouse, RATED_USAGE, data.rated)
    store(clickhouse, RUN_MARKERS, data.markers)


@pytest.fixture
def migrated(clickhouse: ClickHouse) -> ClickHouse:
    apply_migrations(clickhouse.storage, clickhouse.database)
    return clickhouse


def test_migrations_apply_once_and_are_recorded(clickhouse: ClickHouse) -> None:
    storage, database = clickhouse.storage, clickhouse.database

    assert apply_migrations(storage, database) == [m.version for m in MIGRATIONS]
    assert apply_migrations(storage, database) == []

    versions = applied_versions(storage, database)
    assert versions == {m.version: m.checksum for m in MIGRATIONS}
    tables = storage.query(
        "SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name",
        {"db": database},
    )
    assert {row[0] for row in tables.rows} >= {
        "usage",
        "rated_usage",
        "projects",
        "run_markers",
        "metering_expectations",
        "metering_completeness",
        "charges_current",
        "cost_daily",
        "cost_monthly",
        "cost_daily_refresh",
        "cost_monthly_refresh",
        "schema_migrations",
    }


def test_a_schema_newer_than_this_code_is_refused(migrated: ClickHouse) -> None:
    older_code = MIGRATIONS[:-1]
    with pytest.raises(MigrationError, match=r"versions \[3\] that this stackmeter"):
        apply_migrations(migrated.storage, migrated.database, older_code)


def test_an_edited_applied_migration_is_reported_not_rerun(
    migrated: ClickHouse, caplog: pytest.LogCaptureFixture
) -> None:
    first = MIGRATIONS[0]
    edited = Migration(first.version, first.name, ("SELECT 1",))

    with caplog.at_level(logging.WARNING):
        applied = apply_migrations(
            migrated.storage, migrated.database, (edited, *MIGRATIONS[1:])
        )

    assert applied == []
    assert "migration changed after it was applied version=1" in caplog.text


def test_a_batch_retried_with_its_token_is_stored_once(migrated: ClickHouse) -> None:
    data = Dataset.build(resources=4, hours=1)
    store(migrated, RATED_USAGE, data.rated, token="rated_usage-abc")
    store(migrated, RATED_USAGE, data.rated, token="rated_usage-abc")

    # Without FINAL: the second insert never made a part of its own.
    assert scalar(migrated, "SELECT count() FROM {db}.rated_usage") == len(data.rated)


def test_duplicates_and_revisions_do_not_change_the_report(
    migrated: ClickHouse,
) -> None:
    data = Dataset.build()
    store_dataset(migrated, data)
    store(migrated, RATED_USAGE, data.rated)  # delivered twice, no token

    report = monthly_report(migrated.storage, migrated.database, date(2026, 11, 1))

    expected = data.cost_by_project_and_product()
    got = {(line.project_id, line.product_id): line.amount for line in report.rated}
    assert got == expected
    assert sum(line.charges for line in report.unrated) == data.unrated_count()
    assert {line.unrated_reason for line in report.unrated} == {
        "no product prices nova.server"
    }
    assert {line.project_name for line in report.lines} == {
        "team-0",
        "team-1",
        "team-2",
    }
    assert report.catalog_versions == ["2026.11"]
    # Physically the rows are still there twice; FINAL hides that.
    assert scalar(migrated, "SELECT count() FROM {db}.rated_usage") > len(
        data.current_charges()
    )


def test_report_for_one_project_and_as_csv(migrated: ClickHouse) -> None:
    data = Dataset.build()
    store_dataset(migrated, data)

    report = monthly_report(
        migrated.storage, migrated.database, date(2026, 11, 1), "project-0"
    )

    assert {line.project_id for line in report.lines} == {"project-0"}
    csv_lines = render_csv(report).splitlines()
    assert csv_lines[0].startswith("month,platform_id,project_id,project_name")
    total = sum(
        Decimal(line.split(",")[11]) for line in csv_lines[1:] if ",true," in line
    )
    expected = sum(
        amount
        for (project, _), amount in data.cost_by_project_and_product().items()
        if project == "project-0"
    )
    assert total == expected
    table = render_table(report)
    assert "team-0 (project-0)" in table
    assert "Unrated (kept, not priced):" in table
    empty = monthly_report(migrated.storage, migrated.database, date(2026, 10, 1))
    assert "No charges stored for this month." in render_table(empty)


def test_rollups_stay_exact_after_replays_and_revisions(migrated: ClickHouse) -> None:
    data = Dataset.build()
    store_dataset(migrated, data)
    refresh_rollups(migrated.storage, migrated.database)
    daily_sql = (
        "SELECT project_id, product_id, sum(amount), sum(charges) "
        "FROM {db}.cost_daily GROUP BY project_id, product_id ORDER BY 1, 2"
    )
    monthly_sql = (
        "SELECT project_id, product_id, sum(amount), sum(charges) "
        "FROM {db}.cost_monthly GROUP BY project_id, product_id ORDER BY 1, 2"
    )

    def read(sql: str) -> list[tuple[Any, ...]]:
        return migrated.storage.query(sql.replace("{db}", migrated.database)).rows

    daily, monthly = read(daily_sql), read(monthly_sql)

    # Everything again, in other batches, then a revision 3 of one usage
    # record that only changes its vCPU count.
    store(migrated, RATED_USAGE, data.rated[::2])
    store(migrated, RATED_USAGE, data.rated[1::2])
    store(migrated, USAGE, data.usage)
    refresh_rollups(migrated.storage, migrated.database)
    assert read(daily_sql) == daily
    assert read(monthly_sql) == monthly

    expected = data.cost_by_project_and_product()
    assert {
        (project, product): amount for project, product, amount, _ in monthly if product
    } == expected
    assert monthly == daily

    revised = usage_record(5, 0, revision=3)
    revised["traits"]["vcpu"] = 16
    store(migrated, RATED_USAGE, rate(revised))
    refresh_rollups(migrated.storage, migrated.database)
    after = {(p, q): a for p, q, a, _ in read(monthly_sql) if q}
    old_vcpu = next(
        r
        for r in data.current_charges().values()
        if r["usage_id"] == revised["usage_id"] and r["product_id"] == "compute.vcpu"
    )
    key = (revised["project_id"], "compute.vcpu")
    assert after[key] == expected[key] - old_vcpu["amount"] + Decimal("0.176")


def test_completeness_counts_runs_of_each_hour_against_expected(
    migrated: ClickHouse,
) -> None:
    data = Dataset.build(resources=3)
    store(migrated, RUN_MARKERS, data.markers)
    store(migrated, RUN_MARKERS, data.markers)  # each marker once per partition
    record_expectations(
        migrated.storage,
        migrated.database,
        ["nova.server"],
        4,
        datetime.now(UTC),
    )

    result = migrated.storage.query(
        "SELECT hour_start, runs_completed, runs_expected, completeness "
        f"FROM {migrated.database}.metering_completeness "
        "WHERE resource_type = 'nova.server' ORDER BY hour_start"
    )

    runs = data.completed_runs_by_hour()
    hours = [MONTH_START + timedelta(hours=h) for h in range(data.hours)]
    assert [row[0].replace(tzinfo=UTC) for row in result.rows] == hours
    assert [row[1] for row in result.rows] == [runs.get(h, 0) for h in hours]
    assert {row[2] for row in result.rows} == {4}
    assert result.rows[1][3] == pytest.approx(0.75)
    assert result.rows[3][1:4:2] == (0, 0.0)  # the hour with no completed run


def test_expectation_changes_are_recorded_from_the_current_hour(
    migrated: ClickHouse,
) -> None:
    storage, database = migrated.storage, migrated.database
    now = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)

    assert record_expectations(storage, database, ["nova.server"], 12, now) == [
        "nova.server"
    ]
    assert record_expectations(storage, database, ["nova.server"], 12, now) == []
    assert record_expectations(storage, database, ["nova.server"], 6, now) == [
        "nova.server"
    ]

    result = storage.query(
        f"SELECT valid_from, runs_expected_per_hour FROM {database}."
        "metering_expectations FINAL ORDER BY valid_from"
    )
    assert [(row[0].replace(tzinfo=UTC), row[1]) for row in result.rows] == [
        (datetime(1970, 1, 1, tzinfo=UTC), 12),
        (datetime(2026, 11, 20, 10, tzinfo=UTC), 6),
    ]


def test_report_command_prints_a_table_and_csv(
    migrated: ClickHouse, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = Dataset.build(resources=6, hours=2)
    store_dataset(migrated, data)
    config = tmp_path / "stackmeter.yaml"
    config.write_text(
        f"sink:\n  clickhouse: '{migrated.target}'\n  database: {migrated.database}\n"
    )

    code = cli.main(["--config", str(config), "report", "--month", "2026-11"])
    table = capsys.readouterr().out
    assert code == 0
    assert table.startswith("Cost for 2026-11 (UTC), all projects\n")
    assert "Total EUR:" in table

    code = cli.main(["--config", str(config), "report", "--month", "2026-11", "--csv"])
    as_csv = capsys.readouterr().out
    assert code == 0
    assert len(as_csv.splitlines()) == 1 + len(
        monthly_report(migrated.storage, migrated.database, date(2026, 11, 1)).lines
    )

    code = cli.main(["--config", str(config), "report", "--month", "November"])
    assert code == 2
    assert "expected a month as YYYY-MM" in capsys.readouterr().err


def test_sink_migrate_command_applies_then_reports_up_to_date(
    clickhouse: ClickHouse, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "stackmeter.yaml"
    config.write_text(
        f"sink:\n  clickhouse: '{clickhouse.target}'\n"
        f"  database: {clickhouse.database}\n"
        "sampler:\n  interval_s: 600\n"
    )

    assert cli.main(["--config", str(config), "sink", "migrate"]) == 0
    assert "applied migrations 1, 2, 3" in capsys.readouterr().out
    assert cli.main(["--config", str(config), "sink", "migrate"]) == 0
    assert "is up to date" in capsys.readouterr().out

    expected = scalar(
        clickhouse,
        "SELECT any(runs_expected_per_hour) FROM {db}.metering_expectations FINAL",
    )
    assert expected == 6
