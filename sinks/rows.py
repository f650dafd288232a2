"""Turn decoded Kafka records into ClickHouse rows, one table per record type.

Every value is checked against its column's range here, so a record ClickHouse
would refuse (or silently wrap) goes to the dead-letter topic alone instead of
failing the batch it travels in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from stackmeter.errors import CodecError

Row = tuple[Any, ...]

# Ranges of the column types; DateTime is seconds in a UInt32, DateTime64(3)
# is documented for years 1900 to 2299.
_UINT32_MAX = 2**32 - 1
_DATETIME_RANGE = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2106, 2, 7, tzinfo=UTC))
_DATETIME64_RANGE = (datetime(1900, 1, 1, tzinfo=UTC), datetime(2300, 1, 1, tzinfo=UTC))
_DECIMAL_LIMIT = Decimal(10) ** 29  # Decimal(38, 9) keeps 29 integer digits
_DECIMAL_SCALE = Decimal("0.000000001")


class UnstorableRecordError(CodecError):
    """A record decoded fine but a value does not fit its ClickHouse column."""


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A table the sink writes: its columns and how a record becomes a row.

    ``distinct_rows`` drops identical rows within a batch before the insert,
    for records that arrive once per partition (run markers).
    """

    name: str
    schema_name: str
    columns: tuple[str, ...]
    to_row: Callable[[Mapping[str, Any], int, int], Row]
    distinct_rows: bool = False


def _uint32(record: Mapping[str, Any], name: str) -> int:
    value = int(record[name])
    if not 0 <= value <= _UINT32_MAX:
        raise UnstorableRecordError(f"{name}: expected 0..{_UINT32_MAX}, got {value}")
    return value


def _time(
    record: Mapping[str, Any], name: str, bounds: tuple[datetime, datetime]
) -> datetime:
    value = record[name]
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise UnstorableRecordError(f"{name}: expected a UTC timestamp, got {value!r}")
    low, high = bounds
    if not low <= value < high:
        raise UnstorableRecordError(
            f"{name}: {value.isoformat()} is outside {low.year}..{high.year - 1}"
        )
    return value.astimezone(UTC)


def _hour(record: Mapping[str, Any], name: str) -> datetime:
    return _time(record, name, _DATETIME_RANGE)


def _instant(record: Mapping[str, Any], name: str) -> datetime:
    return _time(record, name, _DATETIME64_RANGE)


def _money(record: Mapping[str, Any], name: str) -> Decimal:
    value = record[name]
    if not isinstance(value, Decimal) or not value.is_finite():
        raise UnstorableRecordError(f"{name}: expected a decimal, got {value!r}")
    if abs(value) >= _DECIMAL_LIMIT:
        raise UnstorableRecordError(f"{name}: {value} does not fit Decimal(38, 9)")
    if value != value.quantize(_DECIMAL_SCALE):
        raise UnstorableRecordError(f"{name}: {value} has more than 9 decimals")
    return value


def _text(record: Mapping[str, Any], name: str) -> str:
    value = record.get(name)
    return "" if value is None else str(value)


def _split_traits(traits: Mapping[str, Any]) -> tuple[dict[str, int], dict[str, str]]:
    """Numbers and texts in two typed maps; a null trait is left out of both."""
    numbers: dict[str, int] = {}
    texts: dict[str, str] = {}
    for name, value in traits.items():
        if value is None:
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            numbers[name] = value
        else:
            texts[name] = str(value)
    return numbers, texts


def usage_row(record: Mapping[str, Any], partition: int, offset: int) -> Row:
    traits_int, traits_text = _split_traits(record["traits"])
    return (
        record["usage_id"],
        _uint32(record, "revision"),
        record["platform_id"],
        record["resource_type"],
        record["project_id"],
        record["resource_id"],
        record["resource_name"],
        _hour(record, "hour_start"),
        _uint32(record, "samples_observed"),
        _uint32(record, "samples_expected"),
        bool(record["estimated"]),
        traits_int,
        traits_text,
        _instant(record, "last_sampled_at"),
        partition,
        offset,
    )


def rated_usage_row(record: Mapping[str, Any], partition: int, offset: int) -> Row:
    return (
        record["charge_id"],
        record["usage_id"],
        _uint32(record, "usage_revision"),
        record["platform_id"],
        record["resource_type"],
        record["project_id"],
        record["resource_id"],
        record["resource_name"],
        _hour(record, "hour_start"),
        bool(record["estimated"]),
        bool(record["rated"]),
        _text(record, "unrated_reason"),
        _text(record, "product_id"),
        _text(record, "product_name"),
        _money(record, "quantity"),
        record["unit"],
        _money(record, "unit_price"),
        _money(record, "amount"),
        _text(record, "currency"),
        record["catalog_version"],
        partition,
        offset,
    )


def project_row(record: Mapping[str, Any], partition: int, offset: int) -> Row:
    return (
        record["platform_id"],
        record["project_id"],
        record["name"],
        record["domain_id"],
        list(record["tags"]),
        bool(record["enabled"]),
        _instant(record, "sampled_at"),
        partition,
        offset,
    )


def run_marker_row(record: Mapping[str, Any], partition: int, offset: int) -> Row:
    count = int(record["resource_count"])
    if count < 0:
        raise UnstorableRecordError(f"resource_count: expected 0 or more, got {count}")
    return (
        record["run_id"],
        record["platform_id"],
        record["resource_type"],
        _instant(record, "sampled_at"),
        count,
    )


USAGE = TableSpec(
    name="usage",
    schema_name="stackmeter.Usage",
    columns=(
        "usage_id",
        "revision",
        "platform_id",
        "resource_type",
        "project_id",
        "resource_id",
        "resource_name",
        "hour_start",
        "samples_observed",
        "samples_expected",
        "estimated",
        "traits_int",
        "traits_text",
        "last_sampled_at",
        "source_partition",
        "source_offset",
    ),
    to_row=usage_row,
)

RATED_USAGE = TableSpec(
    name="rated_usage",
    schema_name="stackmeter.RatedUsage",
    columns=(
        "charge_id",
        "usage_id",
        "usage_revision",
        "platform_id",
        "resource_type",
        "project_id",
        "resource_id",
        "resource_name",
        "hour_start",
        "estimated",
        "rated",
        "unrated_reason",
        "product_id",
        "product_name",
        "quantity",
        "unit",
        "unit_price",
        "amount",
        "currency",
        "catalog_version",
        "source_partition",
        "source_offset",
    ),
    to_row=rated_usage_row,
)

PROJECTS = TableSpec(
    name="projects",
    schema_name="stackmeter.Project",
    columns=(
        "platform_id",
        "project_id",
        "name",
        "domain_id",
        "tags",
        "enabled",
        "sampled_at",
        "source_partition",
        "source_offset",
    ),
    to_row=project_row,
)

RUN_MARKERS = TableSpec(
    name="run_markers",
    schema_name="stackmeter.RunMarker",
    columns=("run_id", "platform_id", "resource_type", "sampled_at", "resource_count"),
    to_row=run_marker_row,
    distinct_rows=True,
)

TABLES: tuple[TableSpec, ...] = (USAGE, RATED_USAGE, PROJECTS, RUN_MARKERS)


def to_row(
    table: TableSpec, record: Mapping[str, Any], partition: int, offset: int
) -> Row:
    """The table's row for a record; ``UnstorableRecordError`` names the field."""
    try:
        return table.to_row(record, partition, offset)
    except (KeyError, TypeError, ValueError) as exc:
        raise UnstorableRecordError(
            f"{table.schema_name} record does not fit table {table.name}: {exc!r}"
        ) from exc
