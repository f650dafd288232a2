"""Re-rating stored usage with a candidate catalog, to see what a price change costs.

The usage comes from the sink's ``usage`` table (the newest revision of each
record, FINAL); it is rated with the candidate catalog by the same ``rate``
the worker runs, and compared per project, product and currency with a
baseline: the charges stored in ``rated_usage`` (newest revision of each
usage record, as the report counts them), or another catalog re-rating the
same usage. Nothing is written.

Usage is read one resource type and one day at a time, so one page of usage
is what the preview holds in memory, not the whole period.
"""

from __future__ import annotations

import csv
import io
import logging
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from stackmeter.resources import RESOURCE_TYPE_IDS
from stackmeter.sinks.migrations import check_database_name
from stackmeter.storage import Storage
from stackmeter.streams.catalog import Catalog
from stackmeter.streams.rating import rate

logger = logging.getLogger(__name__)

PAGE = timedelta(days=1)
UNRATED = "(unrated)"

_USAGE_SQL = """
SELECT
    usage_id, revision, platform_id, resource_type, project_id, resource_id,
    resource_name, hour_start, samples_observed, samples_expected, estimated,
    traits_int, traits_text
FROM {db}.usage FINAL
WHERE resource_type = {resource_type:String}
    AND hour_start >= {start:DateTime('UTC')}
    AND hour_start < {end:DateTime('UTC')}
    AND ({project:String} = '' OR project_id = {project:String})
"""

_STORED_SQL = """
SELECT project_id, rated, product_id, currency, sum(amount), count()
FROM (
    SELECT
        project_id, rated, product_id, currency, amount, usage_revision,
        max(usage_revision) OVER (PARTITION BY usage_id) AS latest_revision
    FROM {db}.rated_usage FINAL
    WHERE hour_start >= {start:DateTime('UTC')}
        AND hour_start < {end:DateTime('UTC')}
        AND ({project:String} = '' OR project_id = {project:String})
)
WHERE usage_revision = latest_revision
GROUP BY project_id, rated, product_id, currency
"""

_USAGE_COLUMNS = (
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
)

LineKey = tuple[str, str, str]  # project id, product id, currency


@dataclass
class Costs:
    """Amounts and charge counts per (project, product, currency)."""

    amounts: dict[LineKey, Decimal] = field(
        default_factory=lambda: defaultdict(Decimal)
    )
    charges: dict[LineKey, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, key: LineKey, amount: Decimal, count: int = 1) -> None:
        self.amounts[key] += amount
        self.charges[key] += count


@dataclass(frozen=True, slots=True)
class PreviewLine:
    """One project's cost of one product under the baseline and the candidate."""

    project_id: str
    product_id: str
    currency: str
    baseline: Decimal
    candidate: Decimal
    baseline_charges: int
    candidate_charges: int

    @property
    def difference(self) -> Decimal:
        return self.candidate - self.baseline


@dataclass
class Preview:
    """The comparison of a candidate catalog with a baseline over a period."""

    start: datetime
    end: datetime
    candidate_version: str
    baseline_label: str
    usage_records: int
    lines: list[PreviewLine]

    def totals(self) -> dict[str, tuple[Decimal, Decimal]]:
        """Baseline and candidate amount per currency, unrated lines left out."""
        sums: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
        for line in self.lines:
            if line.product_id != UNRATED:
                sums[line.currency][0] += line.baseline
                sums[line.currency][1] += line.candidate
        return {currency: (pair[0], pair[1]) for currency, pair in sums.items()}


def stored_usage(
    storage: Storage,
    database: str,
    start: datetime,
    end: datetime,
    project_id: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Usage records of the period as the worker emitted them, page by page."""
    sql = _USAGE_SQL.replace("{db}", check_database_name(database))
    for resource_type in RESOURCE_TYPE_IDS:
        page_start = start
        while page_start < end:
            page_end = min(page_start + PAGE, end)
            parameters = {
                "resource_type": resource_type,
                "start": page_start,
                "end": page_end,
                "project": project_id or "",
            }
            for row in storage.query(sql, parameters).rows:
                yield _usage_record(row)
            page_start = page_end


def _usage_record(row: tuple[Any, ...]) -> dict[str, Any]:
    record = dict(zip(_USAGE_COLUMNS, row[: len(_USAGE_COLUMNS)], strict=True))
    traits_int, traits_text = row[len(_USAGE_COLUMNS) :]
    traits: dict[str, object] = {name: int(value) for name, value in traits_int.items()}
    traits.update((name, str(value)) for name, value in traits_text.items())
    record["traits"] = traits
    record["estimated"] = bool(record["estimated"])
    hour = record["hour_start"]
    # The adapters may return DateTime('UTC') without its zone.
    if isinstance(hour, datetime) and hour.tzinfo is None:
        record["hour_start"] = hour.replace(tzinfo=UTC)
    return record


def stored_costs(
    storage: Storage,
    database: str,
    start: datetime,
    end: datetime,
    project_id: str | None = None,
) -> Costs:
    """The charges the rating stage stored for the period."""
    sql = _STORED_SQL.replace("{db}", check_database_name(database))
    parameters = {"start": start, "end": end, "project": project_id or ""}
    costs = Costs()
    for project, rated, product_id, currency, amount, count in storage.query(
        sql, parameters
    ).rows:
        key = (str(project), str(product_id), str(currency))
        if not rated:
            key = (str(project), UNRATED, "")
        costs.add(key, Decimal(amount), int(count))
    return costs


def add_rated(costs: Costs, usage: Mapping[str, Any], catalog: Catalog) -> None:
    """Rate one usage record and add its charges."""
    for record in rate(usage, catalog):
        if record["rated"]:
            key = (record["project_id"], record["product_id"], record["currency"])
        else:
            key = (record["project_id"], UNRATED, "")
        costs.add(key, record["amount"])


def preview_catalog(
    storage: Storage,
    database: str,
    candidate: Catalog,
    start: datetime,
    end: datetime,
    *,
    project_id: str | None = None,
    baseline: Catalog | None = None,
) -> Preview:
    """Compare the candidate with the stored charges, or with ``baseline``."""
    candidate_costs = Costs()
    baseline_costs = Costs()
    count = 0
    for usage in stored_usage(storage, database, start, end, project_id):
        count += 1
        add_rated(candidate_costs, usage, candidate)
        if baseline is not None:
            add_rated(baseline_costs, usage, baseline)
    if baseline is None:
        baseline_costs = stored_costs(storage, database, start, end, project_id)
        label = "stored"
    else:
        label = f"catalog {baseline.version}"
    logger.info(
        "re-rated usage records=%d candidate=%s baseline=%s",
        count,
        candidate.version,
        label,
    )
    keys = sorted(set(candidate_costs.amounts) | set(baseline_costs.amounts))
    lines = [
        PreviewLine(
            project_id=key[0],
            product_id=key[1],
            currency=key[2],
            baseline=baseline_costs.amounts.get(key, Decimal(0)),
            candidate=candidate_costs.amounts.get(key, Decimal(0)),
            baseline_charges=baseline_costs.charges.get(key, 0),
            candidate_charges=candidate_costs.charges.get(key, 0),
        )
        for key in keys
    ]
    return Preview(start, end, candidate.version, label, count, lines)


def render_table(preview: Preview) -> str:
    """The preview as aligned text: one line per project and product, totals last.

    Amounts are exact, with the 9 decimal places rated usage keeps; an
    unrated line counts usage records, not money.
    """
    header = (
        "project",
        "product",
        "currency",
        preview.baseline_label,
        "candidate",
        "difference",
    )
    rows = [header]
    for line in preview.lines:
        if line.product_id == UNRATED:
            rows.append(
                (
                    line.project_id,
                    UNRATED,
                    "",
                    f"{line.baseline_charges} records",
                    f"{line.candidate_charges} records",
                    f"{line.candidate_charges - line.baseline_charges:+d}",
                )
            )
            continue
        rows.append(
            (
                line.project_id,
                line.product_id,
                line.currency,
                f"{line.baseline:f}",
                f"{line.candidate:f}",
                f"{line.difference:+f}",
            )
        )
    for currency, (baseline, candidate) in sorted(preview.totals().items()):
        rows.append(
            (
                "total",
                "",
                currency,
                f"{baseline:f}",
                f"{candidate:f}",
                f"{candidate - baseline:+f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    out = io.StringIO()
    out.write(
        f"candidate catalog {preview.candidate_version} against "
        f"{preview.baseline_label}, {preview.start.isoformat()} to "
        f"{preview.end.isoformat()}, "
        f"{preview.usage_records} usage records\n"
    )
    for index, row in enumerate(rows):
        cells = [
            cell.ljust(width) if i < 3 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        out.write("  ".join(cells).rstrip() + "\n")
        if index == 0:
            out.write("  ".join("-" * width for width in widths) + "\n")
    return out.getvalue()


def render_csv(preview: Preview) -> str:
    """The preview as CSV, one row per project, product and currency."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        (
            "project_id",
            "product_id",
            "currency",
            "baseline_amount",
            "candidate_amount",
            "difference",
            "baseline_charges",
            "candidate_charges",
        )
    )
    for line in preview.lines:
        writer.writerow(
            (
                line.project_id,
                line.product_id,
                line.currency,
                f"{line.baseline:f}",
                f"{line.candidate:f}",
                f"{line.difference:f}",
                line.baseline_charges,
                line.candidate_charges,
            )
        )
    return out.getvalue()
