"""Versioned ClickHouse schema of the sink, applied in order and recorded once each.

Every statement names its tables as ``{db}.table`` so the same migrations run on
a ClickHouse server and in chDB, whose ``default`` database cannot hold
refreshable materialized views. Applied versions are kept in
``{db}.schema_migrations`` with a checksum of their statements; an applied
migration is never edited, a change is a new version.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass

from stackmeter.errors import ConfigError, StorageError
from stackmeter.storage import Storage

logger = logging.getLogger(__name__)

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Insert blocks whose deduplication tokens each table remembers. A plain
# MergeTree keeps none by default, which would make every token a no-op; at
# about one insert per second per table this covers a quarter of an hour.
DEDUP_WINDOW_BLOCKS = 1000

# How often the cost rollups are recomputed from the current charges.
ROLLUP_REFRESH = "EVERY 1 MINUTE"


class MigrationError(StorageError):
    """The schema in ClickHouse does not match what this version expects."""

    retriable = False


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: a version, a name and the statements that make it."""

    version: int
    name: str
    statements: tuple[str, ...]

    def sql(self, database: str) -> list[str]:
        """The statements with the database name filled in."""
        return [statement.format(db=database) for statement in self.statements]

    @property
    def checksum(self) -> str:
        text = "\n;\n".join(self.statements).encode()
        return hashlib.sha256(text).hexdigest()[:16]


_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS {db}.schema_migrations (
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version
"""

# Usage is keyed by what usage_id is a hash of (platform, type, resource,
# hour) plus usage_id itself, so every key column is fixed for one record and
# FINAL collapses all its revisions. project_id is deliberately not in the
# key: a correction that moved a resource to another project would otherwise
# leave the old project's row behind.
_USAGE = f"""
CREATE TABLE IF NOT EXISTS {{db}}.usage (
    usage_id String,
    revision UInt32,
    platform_id LowCardinality(String),
    resource_type LowCardinality(String),
    project_id String,
    resource_id String,
    resource_name String,
    hour_start DateTime('UTC'),
    samples_observed UInt32,
    samples_expected UInt32,
    estimated Bool,
    traits_int Map(LowCardinality(String), Int64),
    traits_text Map(LowCardinality(String), String),
    last_sampled_at DateTime64(3, 'UTC'),
    source_partition UInt32,
    source_offset UInt64,
    row_version UInt64 MATERIALIZED
        bitOr(bitShiftLeft(toUInt64(revision), 40), source_offset),
    stored_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX project_idx project_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(row_version)
PARTITION BY toYYYYMM(hour_start)
ORDER BY (resource_type, platform_id, resource_id, hour_start, usage_id)
SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW_BLOCKS}
"""

# charge_id is a hash of usage_id and product_id, so product, type, platform,
# resource and hour are all fixed for one charge and may lead the key. An
# unrated record has product_id '' (a sorting key column cannot be Nullable
# without a server-wide setting).
_RATED_USAGE = f"""
CREATE TABLE IF NOT EXISTS {{db}}.rated_usage (
    charge_id String,
    usage_id String,
    usage_revision UInt32,
    platform_id LowCardinality(String),
    resource_type LowCardinality(String),
    project_id String,
    resource_id String,
    resource_name String,
    hour_start DateTime('UTC'),
    estimated Bool,
    rated Bool,
    unrated_reason String,
    product_id LowCardinality(String),
    product_name LowCardinality(String),
    quantity Decimal(38, 9),
    unit LowCardinality(String),
    unit_price Decimal(38, 9),
    amount Decimal(38, 9),
    currency LowCardinality(String),
    catalog_version LowCardinality(String),
    source_partition UInt32,
    source_offset UInt64,
    row_version UInt64 MATERIALIZED
        bitOr(bitShiftLeft(toUInt64(usage_revision), 40), source_offset),
    stored_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX project_idx project_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(row_version)
PARTITION BY toYYYYMM(hour_start)
ORDER BY (product_id, resource_type, platform_id, resource_id, hour_start, charge_id)
SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW_BLOCKS}
"""

_PROJECTS = f"""
CREATE TABLE IF NOT EXISTS {{db}}.projects (
    platform_id LowCardinality(String),
    project_id String,
    name String,
    domain_id String,
    tags Array(String),
    enabled Bool,
    sampled_at DateTime64(3, 'UTC'),
    source_partition UInt32,
    source_offset UInt64,
    stored_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(sampled_at)
ORDER BY (platform_id, project_id)
SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW_BLOCKS}
"""

# A marker reaches every partition of its type's topic, so one run arrives as
# several identical rows; the key collapses them and readers count
# uniqExact(run_id), which is right before any merge.
_RUN_MARKERS = f"""
CREATE TABLE IF NOT EXISTS {{db}}.run_markers (
    run_id String,
    platform_id LowCardinality(String),
    resource_type LowCardinality(String),
    sampled_at DateTime64(3, 'UTC'),
    resource_count UInt64,
    stored_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(sampled_at)
ORDER BY (platform_id, resource_type, sampled_at, run_id)
SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW_BLOCKS}
"""

_METERING_EXPECTATIONS = """
CREATE TABLE IF NOT EXISTS {db}.metering_expectations (
    resource_type LowCardinality(String),
    valid_from DateTime('UTC'),
    runs_expected_per_hour UInt32,
    recorded_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(recorded_at)
ORDER BY (resource_type, valid_from)
"""

# Hours between a type's first and last completed run with no run at all are
# generated so that they show as 0 completed, not as missing rows.
_METERING_COMPLETENESS = """
CREATE VIEW IF NOT EXISTS {db}.metering_completeness AS
WITH
    completed AS (
        SELECT
            platform_id,
            resource_type,
            toStartOfHour(toDateTime(sampled_at, 'UTC')) AS hour_start,
            uniqExact(run_id) AS runs_completed
        FROM {db}.run_markers
        GROUP BY platform_id, resource_type, hour_start
    ),
    hours AS (
        SELECT
            platform_id,
            resource_type,
            arrayJoin(
                arrayMap(
                    i -> first_hour + toIntervalHour(i),
                    range(toUInt64(dateDiff('hour', first_hour, last_hour) + 1))
                )
            ) AS hour_start
        FROM (
            SELECT
                platform_id,
                resource_type,
                min(hour_start) AS first_hour,
                max(hour_start) AS last_hour
            FROM completed
            GROUP BY platform_id, resource_type
        )
    )
SELECT
    hours.platform_id AS platform_id,
    hours.resource_type AS resource_type,
    hours.hour_start AS hour_start,
    completed.runs_completed AS runs_completed,
    expectations.runs_expected_per_hour AS runs_expected,
    if(runs_expected = 0, NULL, runs_completed / runs_expected) AS completeness
FROM hours
LEFT JOIN completed
    ON completed.platform_id = hours.platform_id
    AND completed.resource_type = hours.resource_type
    AND completed.hour_start = hours.hour_start
ASOF LEFT JOIN {db}.metering_expectations AS expectations
    ON expectations.resource_type = hours.resource_type
    AND hours.hour_start >= expectations.valid_from
"""

# The charges that count now: the newest row of each charge (FINAL), and of a
# usage record only the charges priced from its newest revision, so a product
# that a corrected revision no longer matches drops out.
_CHARGES_CURRENT = """
CREATE VIEW IF NOT EXISTS {db}.charges_current AS
SELECT * EXCEPT (latest_revision)
FROM (
    SELECT
        *,
        max(usage_revision) OVER (PARTITION BY usage_id) AS latest_revision
    FROM {db}.rated_usage FINAL
)
WHERE usage_revision = latest_revision
"""

_COST_COLUMNS = """
    platform_id LowCardinality(String),
    project_id String,
    product_id LowCardinality(String),
    product_name LowCardinality(String),
    unit LowCardinality(String),
    currency LowCardinality(String),
    quantity Decimal(38, 9),
    amount Decimal(38, 9),
    charges UInt64,
    estimated_charges UInt64,
    refreshed_at DateTime('UTC')
"""

_COST_DAILY = f"""
CREATE TABLE IF NOT EXISTS {{db}}.cost_daily (
    day Date,{_COST_COLUMNS})
ENGINE = MergeTree
ORDER BY (project_id, day, product_id)
"""

_COST_MONTHLY = f"""
CREATE TABLE IF NOT EXISTS {{db}}.cost_monthly (
    month Date,{_COST_COLUMNS})
ENGINE = MergeTree
ORDER BY (project_id, month, product_id)
"""

# Refreshable views recompute the whole rollup from the current charges and
# swap it in atomically: an insert-triggered view would add every re-delivered
# or revised row again, and SummingMergeTree has no way to subtract them.
_COST_DAILY_REFRESH = f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.cost_daily_refresh
REFRESH {ROLLUP_REFRESH}
TO {{db}}.cost_daily
AS SELECT
    toDate(hour_start) AS day,
    platform_id,
    project_id,
    product_id,
    any(product_name) AS product_name,
    unit,
    currency,
    sum(quantity) AS quantity,
    sum(amount) AS amount,
    count() AS charges,
    countIf(estimated) AS estimated_charges,
    toDateTime(now(), 'UTC') AS refreshed_at
FROM {{db}}.charges_current
GROUP BY day, platform_id, project_id, product_id, unit, currency
"""

_COST_MONTHLY_REFRESH = f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.cost_monthly_refresh
REFRESH {ROLLUP_REFRESH} DEPENDS ON {{db}}.cost_daily_refresh
TO {{db}}.cost_monthly
AS SELECT
    toStartOfMonth(day) AS month,
    platform_id,
    project_id,
    product_id,
    any(product_name) AS product_name,
    unit,
    currency,
    sum(quantity) AS quantity,
    sum(amount) AS amount,
    sum(charges) AS charges,
    sum(estimated_charges) AS estimated_charges,
    max(refreshed_at) AS refreshed_at
FROM {{db}}.cost_daily
GROUP BY month, platform_id, project_id, product_id, unit, currency
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "usage, rated usage, projects and run markers",
        (_USAGE, _RATED_USAGE, _PROJECTS, _RUN_MARKERS),
    ),
    Migration(
        2,
        "metering completeness per hour and type",
        (_METERING_EXPECTATIONS, _METERING_COMPLETENESS),
    ),
    Migration(
        3,
        "current charges and daily and monthly cost rollups",
        (
            _CHARGES_CURRENT,
            _COST_DAILY,
            _COST_MONTHLY,
            _COST_DAILY_REFRESH,
            _COST_MONTHLY_REFRESH,
        ),
    ),
)

ROLLUP_VIEWS = ("cost_daily_refresh", "cost_monthly_refresh")


def check_database_name(database: str) -> str:
    """The name, if it is a plain identifier that needs no quoting."""
    if not _IDENTIFIER.fullmatch(database):
        raise ConfigError(
            f"sink.database: must be a plain identifier, got {database!r}"
        )
    return database


def applied_versions(storage: Storage, database: str) -> dict[int, str]:
    """Applied migration versions and their checksums."""
    result = storage.query(
        f"SELECT version, any(checksum) FROM {database}.schema_migrations "
        "GROUP BY version ORDER BY version"
    )
    return {int(version): str(checksum) for version, checksum in result.rows}


def apply_migrations(
    storage: Storage,
    database: str,
    migrations: tuple[Migration, ...] = MIGRATIONS,
) -> list[int]:
    """Create the database if needed and apply every pending migration.

    Returns the versions applied now. Statements are idempotent (IF NOT
    EXISTS), so two sinks starting at once both succeed. A migration already
    applied with other statements than this code holds is reported, not
    re-run: the schema it made is the one in ClickHouse.
    """
    check_database_name(database)
    storage.command(f"CREATE DATABASE IF NOT EXISTS {database} ENGINE = Atomic")
    storage.command(_MIGRATIONS_TABLE.format(db=database))
    applied = applied_versions(storage, database)
    known = {migration.version for migration in migrations}
    newer = sorted(set(applied) - known)
    if newer:
        raise MigrationError(
            f"database {database} has schema versions {newer} that this "
            f"stackmeter does not know (it knows up to {max(known)}); "
            "run the newer stackmeter or restore the database"
        )
    done = []
    for migration in migrations:
        checksum = applied.get(migration.version)
        if checksum is not None:
            if checksum != migration.checksum:
                logger.warning(
                    "migration changed after it was applied version=%d "
                    "applied_checksum=%s code_checksum=%s",
                    migration.version,
                    checksum,
                    migration.checksum,
                )
            continue
        for statement in migration.sql(database):
            storage.command(statement)
        storage.insert(
            f"{database}.schema_migrations",
            ("version", "name", "checksum"),
            [(migration.version, migration.name, migration.checksum)],
        )
        logger.info(
            "applied migration database=%s version=%d name=%s",
            database,
            migration.version,
            migration.name,
        )
        done.append(migration.version)
    return done


def refresh_rollups(storage: Storage, database: str) -> None:
    """Recompute the cost rollups now and wait until both are in place."""
    for view in ROLLUP_VIEWS:
        storage.command(f"SYSTEM REFRESH VIEW {database}.{view}")
        storage.command(f"SYSTEM WAIT VIEW {database}.{view}")
