"""`stackmeter catalog check|schema|preview`, preview against real chDB storage."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from stackmeter.cli import main
from stackmeter.sinks.migrations import apply_migrations
from stackmeter.sinks.rows import RATED_USAGE, USAGE
from stackmeter.storage import Storage, open_storage
from stackmeter.streams.catalog import load_catalog, parse_catalog
from stackmeter.streams.catalog_preview import UNRATED, preview_catalog
from stackmeter.streams.catalog_schema import schema_text
from stackmeter.streams.rating import rate

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "catalog" / "example.yaml"
DATABASE = "stackmeter"
DAY = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture(autouse=True)
def keep_logging() -> Iterator[None]:
    """Undo the log set-up `main` does, whose handler writes to this test's stderr."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_check_prints_every_problem_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        """\
format_version: 1
version: "x"
rules:
  - id: a
    resource_type: nova.server
    match: {sate: ACTIVE}
    usage_type: time
    unit: h
    unit_price: "1"
    currency: EUR
  - id: b
    resource_type: cinder.volume
    usage_type: time_quantity
    quantity: size *
    unit: GiBy.h
    unit_price: "1"
"""
    )

    code = main(["catalog", "check", str(EXAMPLE), str(broken)])

    out, err = capsys.readouterr()
    assert code == 1
    assert out.splitlines() == [
        f"{EXAMPLE}: ok, version 2026.1, 16 rules, 14 products",
        f"{broken}: rule a: match.sate: unknown trait 'sate' for nova.server; its "
        "traits: disk, diskEphemeral, diskRoot, flavor, ramMb, state, vcpu",
        f"{broken}: rule b: quantity: bad expression: unexpected end of 'size *': "
        "an operand is missing",
        f"{broken}: rule b: no currency: set currency on the rule or at the top of "
        "the catalog",
    ]
    assert err == f"{broken}: 3 problems\n"


def test_check_of_a_good_catalog_succeeds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog", "check", str(EXAMPLE)]) == 0
    assert "ok, version 2026.1" in capsys.readouterr().out


def test_schema_prints_the_published_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog", "schema"]) == 0
    assert capsys.readouterr().out == schema_text()


def usage(
    usage_id: str, type_id: str, project_id: str, traits: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "usage_id": usage_id,
        "revision": 1,
        "platform_id": "openstack.eu-west",
        "resource_type": type_id,
        "project_id": project_id,
        "resource_id": f"r-{usage_id}",
        "resource_name": "",
        "hour_start": DAY + timedelta(hours=10),
        "samples_observed": 12,
        "samples_expected": 12,
        "estimated": False,
        "traits": traits,
        "last_sampled_at": DAY + timedelta(hours=10, minutes=55),
    }
    record.update(fields)
    return record


SERVER = {
    "diskRoot": 80,
    "flavor": "v4.large",
    "ramMb": 16384,
    "state": "ACTIVE",
    "vcpu": 4,
}

STORED = [
    usage("srv-10", "nova.server", "acme-prod", SERVER),
    usage(
        "srv-11",
        "nova.server",
        "acme-prod",
        SERVER,
        hour_start=DAY + timedelta(hours=11),
    ),
    # the day after: a second page of usage
    usage(
        "srv-next",
        "nova.server",
        "acme-prod",
        SERVER,
        hour_start=DAY + timedelta(days=1),
    ),
    usage(
        "vol", "cinder.volume", "p-2", {"size": 100, "status": "in-use", "type": "ssd"}
    ),
    # corrected: only revision 2 (200 GiB) counts, in both the stored charges
    # and the re-rating
    usage(
        "vol-fix",
        "cinder.volume",
        "p-2",
        {"size": 100, "status": "in-use", "type": "ssd"},
    ),
    usage(
        "vol-fix",
        "cinder.volume",
        "p-2",
        {"size": 200, "status": "in-use", "type": "ssd"},
        revision=2,
    ),
    usage("router", "neutron.router", "p-2", {}),
    usage("shelved", "nova.server", "p-2", SERVER | {"state": "SHELVED_OFFLOADED"}),
    # outside the previewed period
    usage("old", "neutron.router", "p-2", {}, hour_start=DAY - timedelta(hours=1)),
]

# ram 0.0028 -> 0.0030 per GiB-hour; ssd 0.00016 -> 0.00020 per GiB-hour
CANDIDATE = (
    EXAMPLE.read_text()
    .replace('version: "2026.1"', 'version: "2026.2"')
    .replace("unit_price: 0.0028", "unit_price: 0.0030")
    .replace("unit_price: 0.00016", "unit_price: 0.00020")
)


@pytest.fixture
def stored(tmp_path: Path) -> Iterator[tuple[str, Storage]]:
    """chDB storage holding usage and the charges the example catalog made."""
    target = str(tmp_path / "clickhouse")
    storage = open_storage(target)
    apply_migrations(storage, DATABASE)
    example = load_catalog(EXAMPLE)
    usage_rows = []
    rated_rows = []
    for offset, record in enumerate(STORED):
        usage_rows.append(USAGE.to_row(record, 0, offset))
        for charge in rate(record, example):
            rated_rows.append(RATED_USAGE.to_row(charge, 0, offset))
    storage.insert(f"{DATABASE}.usage", USAGE.columns, usage_rows)
    storage.insert(f"{DATABASE}.rated_usage", RATED_USAGE.columns, rated_rows)
    try:
        yield target, storage
    finally:
        storage.close()


def lines_of(preview: Any) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    return {
        (line.project_id, line.product_id): (line.baseline, line.candidate)
        for line in preview.lines
    }


EXPECTED = {
    # 3 hours of 4 vCPU at acme-prod's negotiated 0.0180; unchanged
    ("acme-prod", "server.vcpu"): (Decimal("0.216"), Decimal("0.216")),
    # 3 hours of 16 GiB: x 0.0028 = 0.1344, x 0.0030 = 0.144
    ("acme-prod", "server.ram"): (Decimal("0.1344"), Decimal("0.144")),
    ("acme-prod", "server.root-disk"): (Decimal("0.0336"), Decimal("0.0336")),
    # 100 + 200 GiB-hours: x 0.00016 = 0.048, x 0.00020 = 0.06
    ("p-2", "volume.ssd"): (Decimal("0.048"), Decimal("0.06")),
    ("p-2", "router.hour"): (Decimal("0.012"), Decimal("0.012")),
    ("p-2", UNRATED): (Decimal(0), Decimal(0)),
}


def test_preview_compares_the_candidate_with_the_stored_charges(
    stored: tuple[str, Storage],
) -> None:
    _target, storage = stored
    candidate = parse_catalog(CANDIDATE)

    preview = preview_catalog(
        storage, DATABASE, candidate, DAY, DAY + timedelta(days=2)
    )

    assert preview.usage_records == 7
    assert preview.baseline_label == "stored"
    assert lines_of(preview) == EXPECTED
    assert preview.totals() == {"EUR": (Decimal("0.444"), Decimal("0.4656"))}
    unrated = next(line for line in preview.lines if line.product_id == UNRATED)
    assert (unrated.baseline_charges, unrated.candidate_charges) == (1, 1)


def test_preview_against_a_baseline_catalog_and_one_project(
    stored: tuple[str, Storage],
) -> None:
    _target, storage = stored

    preview = preview_catalog(
        storage,
        DATABASE,
        parse_catalog(CANDIDATE),
        DAY,
        DAY + timedelta(days=1),
        project_id="p-2",
        baseline=load_catalog(EXAMPLE),
    )

    assert preview.baseline_label == "catalog 2026.1"
    assert lines_of(preview) == {
        key: value for key, value in EXPECTED.items() if key[0] == "p-2"
    }


def test_preview_command_prints_the_difference(
    stored: tuple[str, Storage],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target, _storage = stored
    config = tmp_path / "stackmeter.yaml"
    config.write_text(f"sink:\n  clickhouse: {target}\n  database: {DATABASE}\n")
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(CANDIDATE)

    code = main(
        [
            "--config",
            str(config),
            "catalog",
            "preview",
            str(candidate),
            "--from",
            "2026-03-02",
            "--to",
            "2026-03-04T00:00:00Z",
        ]
    )

    out = capsys.readouterr().out
    assert code == 0
    rows = [line.split() for line in out.splitlines()]
    assert rows[0][:4] == ["candidate", "catalog", "2026.2", "against"]
    assert rows[1] == [
        "project",
        "product",
        "currency",
        "stored",
        "candidate",
        "difference",
    ]
    assert [
        "acme-prod",
        "server.ram",
        "EUR",
        "0.134400000",
        "0.144000000",
        "+0.009600000",
    ] in rows
    assert [
        "acme-prod",
        "server.vcpu",
        "EUR",
        "0.216000000",
        "0.216000000",
        "+0.000000000",
    ] in rows
    assert [
        "p-2",
        "volume.ssd",
        "EUR",
        "0.048000000",
        "0.060000000",
        "+0.012000000",
    ] in rows
    assert ["p-2", UNRATED, "1", "records", "1", "records", "+0"] in rows
    assert rows[-1] == ["total", "EUR", "0.444000000", "0.465600000", "+0.021600000"]


def test_preview_command_refuses_an_empty_period(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        [
            "catalog",
            "preview",
            str(EXAMPLE),
            "--from",
            "2026-03-02",
            "--to",
            "2026-03-02",
        ]
    )

    assert code == 2
    assert "--to must be after --from" in capsys.readouterr().err
