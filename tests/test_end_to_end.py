"""The demo scenario through every stage, checked against hand-computed bills.

``run_demo`` starts a real Kafka broker, the OpenStack simulator, the worker
(with rating) and the sink into chDB as separate processes, and samples every
five simulated minutes from 10:00 to past 13:00 UTC on 2026-11-02. Runs land
at :00, :05 ... :55, so an hour has 12 completed runs; a resource created at
10:20 is seen by the runs 10:20 ... 10:55, 8 of 12.

Every expectation below was worked out by hand from
``simulator/scenarios/demo.yaml`` and ``catalog/example.yaml``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from stackmeter.storage import open_storage
from stackmeter.up import DemoOptions, render_demo_report, run_demo

pytestmark = pytest.mark.kafka

H10, H11, H12 = (datetime(2026, 11, 2, hour, tzinfo=UTC) for hour in (10, 11, 12))

# Short names for the demo's ids.
IDS = {
    "web-1": "5e000000-0000-4000-8000-000000000001",
    "web-2": "5e000000-0000-4000-8000-000000000002",
    "db-1": "5e000000-0000-4000-8000-000000000003",
    "batch-1": "5e000000-0000-4000-8000-000000000004",
    "ci-runner": "5e000000-0000-4000-8000-000000000005",
    "web-data": "70000000-0000-4000-8000-000000000001",
    "db-data": "70000000-0000-4000-8000-000000000002",
    "archive": "70000000-0000-4000-8000-000000000003",
    "scratch": "70000000-0000-4000-8000-000000000004",
    "db-data-snap": "5a000000-0000-4000-8000-000000000001",
    "web-data-snap": "5a000000-0000-4000-8000-000000000002",
    "ubuntu": "1a000000-0000-4000-8000-000000000001",
    "win": "1a000000-0000-4000-8000-000000000002",
    "web-golden": "1a000000-0000-4000-8000-000000000003",
    "fip-alpha": "f1000000-0000-4000-8000-000000000001",
    "fip-beta": "f1000000-0000-4000-8000-000000000002",
    "fip-gamma": "f1000000-0000-4000-8000-000000000003",
    "alpha-router": "40000000-0000-4000-8000-000000000001",
    "beta-router": "40000000-0000-4000-8000-000000000002",
    "web-lb": "1b000000-0000-4000-8000-000000000001",
}

# (resource, hour) -> runs that saw it, of the hour's 12.
OBSERVED = {
    # Servers. web-2 lives 10:30 to 12:15; batch-1 until 12:30; ci-runner from 12:10.
    **{("web-1", h): 12 for h in (H10, H11, H12)},
    ("web-2", H10): 6,
    ("web-2", H11): 12,
    ("web-2", H12): 3,
    **{("db-1", h): 12 for h in (H10, H11, H12)},
    ("batch-1", H10): 12,
    ("batch-1", H11): 12,
    ("batch-1", H12): 6,
    ("ci-runner", H12): 10,
    # Volumes. archive lives 10:20 to 12:40; scratch from 11:05.
    **{("web-data", h): 12 for h in (H10, H11, H12)},
    **{("db-data", h): 12 for h in (H10, H11, H12)},
    ("archive", H10): 8,
    ("archive", H11): 12,
    ("archive", H12): 8,
    ("scratch", H11): 11,
    ("scratch", H12): 12,
    # Snapshots: db-data-snap from 10:50; web-data-snap 11:10 to 12:05.
    ("db-data-snap", H10): 2,
    ("db-data-snap", H11): 12,
    ("db-data-snap", H12): 12,
    ("web-data-snap", H11): 10,
    ("web-data-snap", H12): 1,
    # Images: win from 10:40; web-golden 11:20 to 12:50.
    **{("ubuntu", h): 12 for h in (H10, H11, H12)},
    ("win", H10): 4,
    ("win", H11): 12,
    ("win", H12): 12,
    ("web-golden", H11): 8,
    ("web-golden", H12): 10,
    # Floating IPs: beta's 10:15 to 11:45; gamma's from 12:20.
    **{("fip-alpha", h): 12 for h in (H10, H11, H12)},
    ("fip-beta", H10): 9,
    ("fip-beta", H11): 9,
    ("fip-gamma", H12): 8,
    # Routers: beta's from 11:00. The load balancer from 10:10.
    **{("alpha-router", h): 12 for h in (H10, H11, H12)},
    ("beta-router", H11): 12,
    ("beta-router", H12): 12,
    ("web-lb", H10): 10,
    ("web-lb", H11): 12,
    ("web-lb", H12): 12,
}

# Hourly charges of a running server by flavor: vCPU-hours at 0.021, RAM
# GiB-hours at 0.0028 (ramMb / 1024), root disk GiB-hours at 0.00014.
V1_SMALL = {
    "server.vcpu": "0.021",
    "server.ram": "0.0056",
    "server.root-disk": "0.0028",
}
V2_MEDIUM = {
    "server.vcpu": "0.042",
    "server.ram": "0.0112",
    "server.root-disk": "0.0056",
}
V4_LARGE = {
    "server.vcpu": "0.084",
    "server.ram": "0.0028",
    "server.root-disk": "0.0028",
}
# A SHUTOFF server pays for its root disk only.
V1_SMALL_STOPPED = {"server.root-disk": "0.0028"}

LB = {"load-balancer.hour": "0.025", "load-balancer.listener": "0.012"}

# (resource, hour) -> product -> amount, priced on the hour's last observation.
CHARGES: dict[tuple[str, datetime], dict[str, str]] = {
    **{("web-1", h): V4_LARGE for h in (H10, H11, H12)},
    **{("web-2", h): V2_MEDIUM for h in (H10, H11, H12)},
    # db-1 is resized to v4.large at 11:30: hour 11's last run (11:55) sees it.
    ("db-1", H10): V2_MEDIUM,
    ("db-1", H11): V4_LARGE,
    ("db-1", H12): V4_LARGE,
    # batch-1 is stopped at 11:00.
    ("batch-1", H10): V1_SMALL,
    ("batch-1", H11): V1_SMALL_STOPPED,
    ("batch-1", H12): V1_SMALL_STOPPED,
    ("ci-runner", H12): V1_SMALL,
    # SSD at 0.00016 per GiB-hour, HDD at 0.00007: 50, 100 -> 150 at 11:45, 500, 10.
    **{("web-data", h): {"volume.ssd": "0.008"} for h in (H10, H11, H12)},
    ("db-data", H10): {"volume.ssd": "0.016"},
    ("db-data", H11): {"volume.ssd": "0.024"},
    ("db-data", H12): {"volume.ssd": "0.024"},
    **{("archive", h): {"volume.hdd": "0.035"} for h in (H10, H11, H12)},
    **{("scratch", h): {"volume.hdd": "0.0007"} for h in (H11, H12)},
    # Snapshots at 0.00005 per GiB-hour: 100 and 50 GiB.
    **{
        ("db-data-snap", h): {"volume-snapshot.storage": "0.005"}
        for h in (H10, H11, H12)
    },
    **{("web-data-snap", h): {"volume-snapshot.storage": "0.0025"} for h in (H11, H12)},
    # Images at 0.00005 per GiB-hour, bytes rounded up: 3.25 GiB -> 4,
    # 15 GiB + 1 byte -> 16, 700 MiB -> 1 (queued at 11:20, active by 11:55).
    **{("ubuntu", h): {"image.storage": "0.0002"} for h in (H10, H11, H12)},
    **{("win", h): {"image.storage": "0.0008"} for h in (H10, H11, H12)},
    **{("web-golden", h): {"image.storage": "0.00005"} for h in (H11, H12)},
    # Floating IPs 0.0045 an hour, routers 0.0100 (the price from 2026-07-01).
    **{key: {"floating-ip.hour": "0.0045"} for key in OBSERVED if "fip" in key[0]},
    **{key: {"router.hour": "0.01"} for key in OBSERVED if "router" in key[0]},
    # The load balancer 0.025 an hour plus 0.006 per listener; its second
    # listener appears at 10:40, so every hour's last run sees two.
    **{("web-lb", h): LB for h in (H10, H11, H12)},
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("demo")
    result = asyncio.run(run_demo(DemoOptions(workdir=workdir, pace_s=0.05)))
    assert result.progress.runs_failed == 0
    return workdir


def _rows(workdir: Path, sql: str) -> list[tuple[object, ...]]:
    storage = open_storage(str(workdir / "clickhouse"))
    try:
        return storage.query(sql).rows
    finally:
        storage.close()


def _utc(hour: object) -> datetime:
    # The adapters hand DateTime64 columns back without a zone; they are UTC.
    assert isinstance(hour, datetime)
    return hour.replace(tzinfo=UTC) if hour.tzinfo is None else hour


def _name_of(resource_id: str) -> str:
    return {v: k for k, v in IDS.items()}[resource_id]


def test_every_resource_hour_is_stored_with_its_runs(demo: Path) -> None:
    rows = _rows(
        demo,
        "SELECT resource_id, hour_start, samples_observed, samples_expected, "
        "estimated, revision FROM stackmeter.usage FINAL",
    )

    stored = {(_name_of(str(r[0])), _utc(r[1])): (r[2], r[3], r[4], r[5]) for r in rows}
    assert len(rows) == len(stored), "one usage row per resource and hour"
    expected = {key: (seen, 12, False, 1) for key, seen in OBSERVED.items()}
    assert stored == expected


def test_every_charge_equals_the_hand_computed_cost(demo: Path) -> None:
    rows = _rows(
        demo,
        "SELECT resource_id, hour_start, product_id, amount, catalog_version "
        "FROM stackmeter.charges_current WHERE rated",
    )

    stored: dict[tuple[str, datetime], dict[str, Decimal]] = {}
    for resource_id, hour, product, amount, version in rows:
        assert version == "2026.1"
        key = (_name_of(str(resource_id)), _utc(hour))
        stored.setdefault(key, {})[str(product)] = Decimal(str(amount))
    expected = {
        key: {product: Decimal(amount) for product, amount in charges.items()}
        for key, charges in CHARGES.items()
    }
    assert stored == expected


def test_nothing_is_unrated_and_the_total_is_exact(demo: Path) -> None:
    unrated = _rows(
        demo, "SELECT count() FROM stackmeter.charges_current WHERE NOT rated"
    )
    total = _rows(
        demo, "SELECT sum(amount) FROM stackmeter.charges_current WHERE rated"
    )

    expected = sum(
        (Decimal(a) for charges in CHARGES.values() for a in charges.values()),
        Decimal(0),
    )
    assert unrated == [(0,)]
    assert Decimal(str(total[0][0])) == expected == Decimal("1.1531")


def test_every_completed_run_is_counted_per_hour(demo: Path) -> None:
    rows = _rows(
        demo,
        "SELECT resource_type, hour_start, runs_completed, runs_expected "
        "FROM stackmeter.metering_completeness "
        "WHERE hour_start IN ('2026-11-02 10:00:00', '2026-11-02 11:00:00', "
        "'2026-11-02 12:00:00')",
    )

    assert len(rows) == 7 * 3
    assert {(r[2], r[3]) for r in rows} == {(12, 12)}


def test_the_report_names_projects_and_totals(demo: Path) -> None:
    from stackmeter.config import load_config  # noqa: PLC0415
    from stackmeter.up import DemoResult, Progress  # noqa: PLC0415

    config = load_config(demo / "stackmeter.yaml", environ={})
    progress = Progress(sim_time=H12)
    report = render_demo_report(DemoResult(config, demo / "stackmeter.yaml", progress))

    assert "alpha (a0000000-0000-4000-8000-000000000001)" in report
    assert "Total EUR: 1.15" in report
