"""A month's cost per project and product, read from ClickHouse as a table or CSV.

The figures come from the rated usage itself, not from the rollups, so a report
is exact the moment the sink has stored the charges: FINAL keeps the newest row
of each charge whatever parts are not merged yet, and of a corrected usage
record only the charges of its newest revision count. Usage no product matched
is listed as unrated with its count, never left out.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from stackmeter.sinks.migrations import check_database_name
from stackmeter.storage import Storage

_REPORT_SQL = """
SELECT
    c.platform_id,
    c.project_id,
    p.name,
    c.rated,
    c.product_id,
    any(c.product_name),
    c.unit,
    c.currency,
    c.unrated_reason,
    sum(c.quantity),
    sum(c.amount),
    count(),
    countIf(c.estimated)
FROM (
    SELECT *
    FROM (
        SELECT
            platform_id, project_id, rated, product_id, product_name, unit,
            currency, unrated_reason, quantity, amount, estimated,
            usage_revision,
            max(usage_revision) OVER (PARTITION BY usage_id) AS latest_revision
        FROM {db}.rated_usage FINAL
        WHERE hour_start >= {start:DateTime('UTC')}
            AND hour_start < {end:DateTime('UTC')}
    )
    WHERE usage_revision = latest_revision
        AND ({project:String} = '' OR project_id = {project:String})
) AS c
LEFT JOIN (
    SELECT platform_id, project_id, argMax(name, sampled_at) AS name
    FROM {db}.projects
    GROUP BY platform_id, project_id
) AS p ON p.platform_id = c.platform_id AND p.project_id = c.project_id
GROUP BY
    c.platform_id, c.project_id, p.name, c.rated, c.product_id, c.unit,
    c.currency, c.unrated_reason
ORDER BY c.project_id, c.platform_id, c.rated DESC, c.product_id, c.currency
"""

_CATALOG_SQL = """
SELECT DISTINCT catalog_version
FROM {db}.rated_usage
WHERE hour_start >= {start:DateTime('UTC')} AND hour_start < {end:DateTime('UTC')}
    AND ({project:String} = '' OR project_id = {project:String})
ORDER BY catalog_version
"""

CSV_COLUMNS = (
    "month",
    "platform_id",
    "project_id",
    "project_name",
    "product_id",
    "product_name",
    "rated",
    "unrated_reason",
    "quantity",
    "unit",
    "currency",
    "amount",
    "charges",
    "estimated_charges",
)

_CENT = Decimal("0.01")
_MILLI = Decimal("0.001")


@dataclass(frozen=True, slots=True)
class CostLine:
    """The charges of one project for one product in the month, summed.

    An unrated line has ``rated`` false, empty product and currency, an
    amount of zero and the reason no product matched.
    """

    platform_id: str
    project_id: str
    project_name: str
    rated: bool
    product_id: str
    product_name: str
    unit: str
    currency: str
    unrated_reason: str
    quantity: Decimal
    amount: Decimal
    charges: int
    estimated_charges: int


@dataclass
class MonthlyReport:
    """Every cost line of a month, optionally for one project."""

    month: date
    project_id: str | None
    lines: list[CostLine] = field(default_factory=list)
    catalog_versions: list[str] = field(default_factory=list)

    @property
    def rated(self) -> list[CostLine]:
        return [line for line in self.lines if line.rated]

    @property
    def unrated(self) -> list[CostLine]:
        return [line for line in self.lines if not line.rated]

    def totals(self) -> dict[tuple[str, str], Decimal]:
        """Exact amount per (project id, currency)."""
        sums: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for line in self.rated:
            sums[(line.project_id, line.currency)] += line.amount
        return dict(sums)

    def grand_totals(self) -> dict[str, Decimal]:
        """Exact amount per currency over every project in the report."""
        sums: dict[str, Decimal] = defaultdict(Decimal)
        for line in self.rated:
            sums[line.currency] += line.amount
        return dict(sums)


def parse_month(text: str) -> date:
    """``2026-11`` as the first day of that month; ValueError otherwise."""
    try:
        parsed = datetime.strptime(text, "%Y-%m")
    except ValueError:
        raise ValueError(f"expected a month as YYYY-MM, got {text!r}") from None
    return parsed.date()


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """The month's first hour and the next month's first hour, UTC."""
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    if month.month == 12:
        return start, datetime(month.year + 1, 1, 1, tzinfo=UTC)
    return start, datetime(month.year, month.month + 1, 1, tzinfo=UTC)


def monthly_report(
    storage: Storage, database: str, month: date, project_id: str | None = None
) -> MonthlyReport:
    """Read one month's cost lines from ClickHouse."""
    database = check_database_name(database)
    start, end = month_bounds(month)
    parameters = {"start": start, "end": end, "project": project_id or ""}
    result = storage.query(_REPORT_SQL.replace("{db}", database), parameters)
    lines = [
        CostLine(
            platform_id=str(platform_id),
            project_id=str(project),
            project_name=str(name or ""),
            rated=bool(rated),
            product_id=str(product_id),
            product_name=str(product_name),
            unit=str(unit),
            currency=str(currency),
            unrated_reason=str(reason),
            quantity=Decimal(quantity),
            amount=Decimal(amount),
            charges=int(charges),
            estimated_charges=int(estimated),
        )
        for (
            platform_id,
            project,
            name,
            rated,
            product_id,
            product_name,
            unit,
            currency,
            reason,
            quantity,
            amount,
            charges,
            estimated,
        ) in result.rows
    ]
    versions = storage.query(_CATALOG_SQL.replace("{db}", database), parameters)
    return MonthlyReport(
        month=month,
        project_id=project_id,
        lines=lines,
        catalog_versions=[str(row[0]) for row in versions.rows],
    )


def render_csv(report: MonthlyReport) -> str:
    """One row per cost line with exact decimals, unrated lines included."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    month = report.month.strftime("%Y-%m")
    for line in report.lines:
        writer.writerow(
            (
                month,
                line.platform_id,
                line.project_id,
                line.project_name,
                line.product_id,
                line.product_name,
                "true" if line.rated else "false",
                line.unrated_reason,
                _plain(line.quantity),
                line.unit,
                line.currency,
                _plain(line.amount),
                line.charges,
                line.estimated_charges,
            )
        )
    return buffer.getvalue()


def render_table(report: MonthlyReport) -> str:
    """A fixed-width table for people: amounts in cents, totals per project."""
    month = report.month.strftime("%Y-%m")
    scope = f"project {report.project_id}" if report.project_id else "all projects"
    out = [f"Cost for {month} (UTC), {scope}"]
    if report.catalog_versions:
        out.append(f"Catalog versions: {', '.join(report.catalog_versions)}")
    if not report.lines:
        out.append("No charges stored for this month.")
        return "\n".join(out) + "\n"
    header = ("project", "product", "quantity", "unit", "amount", "currency", "hours")
    rows: list[tuple[str, ...]] = []
    totals = report.totals()
    previous: str | None = None
    for line in report.rated:
        if previous is not None and line.project_id != previous:
            rows.extend(_total_rows(previous, totals))
        previous = line.project_id
        estimated = (
            f" ({line.estimated_charges} est.)" if line.estimated_charges else ""
        )
        rows.append(
            (
                _project_label(line),
                line.product_name or line.product_id,
                _rounded(line.quantity, _MILLI),
                line.unit,
                _rounded(line.amount, _CENT),
                line.currency,
                f"{line.charges}{estimated}",
            )
        )
    if previous is not None:
        rows.extend(_total_rows(previous, totals))
    if rows:
        out.append("")
        out.extend(_aligned(header, rows))
    grand = report.grand_totals()
    if grand:
        out.append("")
        out.extend(
            f"Total {currency}: {_rounded(amount, _CENT)}"
            for currency, amount in sorted(grand.items())
        )
    if report.unrated:
        out.append("")
        out.append("Unrated (kept, not priced):")
        out.extend(
            f"  {_project_label(line)}: {line.charges} usage hours unrated: "
            f"{line.unrated_reason or 'no reason given'}"
            for line in report.unrated
        )
    out.append("")
    out.append("Amounts are rounded to cents here; --csv gives the exact values.")
    return "\n".join(out) + "\n"


def _total_rows(
    project_id: str, totals: dict[tuple[str, str], Decimal]
) -> list[tuple[str, ...]]:
    return [
        ("", "total", "", "", _rounded(amount, _CENT), currency, "")
        for (project, currency), amount in sorted(totals.items())
        if project == project_id
    ]


def _project_label(line: CostLine) -> str:
    if line.project_name:
        return f"{line.project_name} ({line.project_id})"
    return line.project_id


def _aligned(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    numeric = {2, 4, 6}
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def cell(index: int, text: str) -> str:
        width = widths[index]
        return text.rjust(width) if index in numeric else text.ljust(width)

    lines = [
        "  ".join(cell(i, text) for i, text in enumerate(row)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return lines


def _rounded(value: Decimal, step: Decimal) -> str:
    return f"{value.quantize(step, rounding=ROUND_HALF_EVEN):,}"


def _plain(value: Decimal) -> str:
    """Exact, without exponent or trailing zeros beyond one decimal place."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0")
        if text.endswith("."):
            text += "0"
    return text
