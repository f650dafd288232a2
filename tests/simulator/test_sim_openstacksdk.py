"""openstacksdk 4.22, unchanged, against the simulator over HTTP: every listing
the sampler uses shows exactly the demo scenario's state at the simulated time,
page by page, and moves with the clock."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import keystoneauth1.exceptions.http
import openstack
import openstack.connection
import pytest
import yaml

from stackmeter.simulator import (
    DEFAULT_CLOUD,
    Listener,
    LoadBalancer,
    Pool,
    Scenario,
    Server,
    Simulator,
)

# openstacksdk warns about its own internals (PendingDeprecationWarning) when it
# builds resources; none of those warnings concern the simulator.
pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning:openstack")

Connect = Callable[[Simulator], openstack.connection.Connection]
StartSim = Callable[..., Simulator]

START = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
#: Instants around the demo's events, and one after its end.
INSTANTS = [
    START + timedelta(minutes=minutes, seconds=seconds)
    for minutes, seconds in (
        (0, 0),
        (29, 59),
        (60, 0),
        (85, 0),
        (90, 0),
        (120, 0),
        (179, 59),
        (210, 0),
    )
]


@dataclass(frozen=True)
class KindCase:
    """How to list one kind with openstacksdk, and what to compare."""

    counter: str
    listing: Callable[[openstack.connection.Connection], Iterable[Any]]
    observed: Callable[[Any], tuple[Any, ...]]
    expected: Callable[[Simulator, Any, datetime], tuple[Any, ...]]


def _server_expected(sim: Simulator, server: Server, at: datetime) -> tuple[Any, ...]:
    flavor = sim.state.flavors[server.flavor]
    return (
        server.id,
        server.name,
        server.project_id,
        server.status,
        flavor.name,
        flavor.vcpus,
        flavor.ram_mb,
        flavor.disk_gib,
        flavor.ephemeral_gib,
    )


def _lb_expected(sim: Simulator, lb: LoadBalancer, at: datetime) -> tuple[Any, ...]:
    def children(kind: str) -> list[str]:
        return sorted(
            obj.id
            for obj in sim.resources_at(kind, at)
            if isinstance(obj, Listener | Pool) and obj.load_balancer_id == lb.id
        )

    return (
        lb.id,
        lb.name,
        lb.project_id,
        lb.provider,
        lb.operating_status,
        children("listeners"),
        children("pools"),
    )


CASES: dict[str, KindCase] = {
    "servers": KindCase(
        "compute/servers",
        lambda conn: conn.compute.servers(details=True, all_projects=True),
        lambda s: (
            s.id,
            s.name,
            s.project_id,
            s.status,
            s.flavor.original_name,
            s.flavor.vcpus,
            s.flavor.ram,
            s.flavor.disk,
            s.flavor.ephemeral,
        ),
        _server_expected,
    ),
    "volumes": KindCase(
        "block-storage/volumes",
        lambda conn: conn.block_storage.volumes(details=True, all_projects=True),
        lambda v: (
            v.id,
            v.name,
            v.project_id,
            v.size,
            v.volume_type,
            v.status,
            v.availability_zone,
            v.replication_status,
        ),
        lambda sim, v, at: (
            v.id,
            v.name,
            v.project_id,
            v.size_gib,
            v.volume_type,
            v.status,
            v.availability_zone,
            v.replication_status,
        ),
    ),
    "snapshots": KindCase(
        "block-storage/snapshots",
        lambda conn: conn.block_storage.snapshots(details=True, all_projects=True),
        lambda s: (s.id, s.name, s.project_id, s.volume_id, s.size, s.status),
        lambda sim, s, at: (
            s.id,
            s.name,
            s.project_id,
            s.volume_id,
            s.size_gib,
            s.status,
        ),
    ),
    "images": KindCase(
        "image/images",
        lambda conn: conn.image.images(),
        lambda i: (i.id, i.name, i.owner, i.size, i.status, i.properties["stores"]),
        lambda sim, i, at: (
            i.id,
            i.name,
            i.project_id,
            i.size_bytes,
            i.status,
            i.stores,
        ),
    ),
    "floating_ips": KindCase(
        "network/floatingips",
        lambda conn: conn.network.ips(),
        lambda f: (f.id, f.project_id, f.floating_ip_address, f.status, f.router_id),
        lambda sim, f, at: (
            f.id,
            f.project_id,
            f.floating_ip_address,
            f.status,
            f.router_id,
        ),
    ),
    "routers": KindCase(
        "network/routers",
        lambda conn: conn.network.routers(),
        lambda r: (r.id, r.name, r.project_id, r.status),
        lambda sim, r, at: (r.id, r.name, r.project_id, r.status),
    ),
    "load_balancers": KindCase(
        "load-balancer/loadbalancers",
        lambda conn: conn.load_balancer.load_balancers(),
        lambda lb: (
            lb.id,
            lb.name,
            lb.project_id,
            lb.provider,
            lb.operating_status,
            sorted(item["id"] for item in lb.listeners),
            sorted(item["id"] for item in lb.pools),
        ),
        _lb_expected,
    ),
    "listeners": KindCase(
        "load-balancer/listeners",
        lambda conn: conn.load_balancer.listeners(),
        lambda li: (
            li.id,
            li.name,
            li.project_id,
            li.protocol_port,
            [lb["id"] for lb in li.load_balancers],
        ),
        lambda sim, li, at: (
            li.id,
            li.name,
            li.project_id,
            li.protocol_port,
            [li.load_balancer_id],
        ),
    ),
    "pools": KindCase(
        "load-balancer/pools",
        lambda conn: conn.load_balancer.pools(),
        lambda p: (
            p.id,
            p.name,
            p.project_id,
            [lb["id"] for lb in p.loadbalancers],
            [li["id"] for li in p.listeners],
        ),
        lambda sim, p, at: (
            p.id,
            p.name,
            p.project_id,
            [p.load_balancer_id],
            [p.listener_id] if p.listener_id else [],
        ),
    ),
    "projects": KindCase(
        "identity/projects",
        lambda conn: conn.identity.projects(limit=1),
        lambda p: (p.id, p.name, p.domain_id, sorted(p.tags)),
        lambda sim, p, at: (p.id, p.name, p.domain_id, sorted(p.tags)),
    ),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_listing_matches_the_scenario_at_each_instant(
    kind: str, demo_scenario: Scenario, start_sim: StartSim, connect: Connect
) -> None:
    case = CASES[kind]
    sim = start_sim(demo_scenario, max_page_size=1)
    conn = connect(sim)
    pages_before = 0

    for at in INSTANTS:
        sim.clock.set(at)
        listed = sorted(case.observed(obj) for obj in case.listing(conn))
        expected = sorted(
            case.expected(sim, obj, at) for obj in sim.resources_at(kind, at)
        )
        assert listed == expected, f"{kind} at {at.isoformat()}"

        # One page per resource at a page size of 1 (at least one request).
        pages = sim.request_counts()[case.counter] - pages_before
        assert pages >= max(len(expected), 1)
        pages_before += pages


def test_demo_events_show_in_listings_as_the_clock_moves(
    demo_scenario: Scenario, start_sim: StartSim, connect: Connect
) -> None:
    sim = start_sim(demo_scenario, max_page_size=2)
    conn = connect(sim)

    def servers() -> dict[str, Any]:
        return {
            s.name: s for s in conn.compute.servers(details=True, all_projects=True)
        }

    sim.clock.set(START + timedelta(minutes=29, seconds=59))
    before = servers()
    assert "web-2" not in before
    assert before["db-1"].flavor.original_name == "v2.medium"
    assert before["batch-1"].status == "ACTIVE"

    sim.clock.advance(1)
    assert "web-2" in servers()

    sim.clock.set(START + timedelta(minutes=90))
    after = servers()
    assert after["db-1"].flavor.original_name == "v4.large"
    assert after["db-1"].flavor.vcpus == 4
    assert after["db-1"].flavor.ram == 1024
    assert after["batch-1"].status == "SHUTOFF"

    sim.clock.set(START + timedelta(hours=2, minutes=15))
    assert "web-2" not in servers()

    volumes = conn.block_storage.volumes(details=True, all_projects=True)
    sizes = {v.name: v.size for v in volumes}
    assert sizes["db-data"] == 150

    sim.clock.set(START + timedelta(minutes=80))
    golden = next(i for i in conn.image.images() if i.name == "web-golden")
    assert (golden.status, golden.size) == ("queued", None)
    sim.clock.set(START + timedelta(minutes=85))
    golden = next(i for i in conn.image.images() if i.name == "web-golden")
    assert (golden.status, golden.size) == ("active", 734003200)


def test_without_all_projects_nova_and_cinder_show_the_admin_project_only(
    demo_scenario: Scenario, start_sim: StartSim, connect: Connect
) -> None:
    sim = start_sim(demo_scenario)
    conn = connect(sim)

    assert list(conn.compute.servers(details=True)) == []
    assert list(conn.block_storage.volumes(details=True)) == []
    assert len(list(conn.compute.servers(details=True, all_projects=True))) == 3


def test_project_filter_and_summary_listing(
    demo_scenario: Scenario, start_sim: StartSim, connect: Connect
) -> None:
    sim = start_sim(demo_scenario, max_page_size=1)
    conn = connect(sim)
    beta = "a0000000-0000-4000-8000-000000000002"

    names = [
        s.name
        for s in conn.compute.servers(details=False, all_projects=True, project_id=beta)
    ]
    routers = [r.name for r in conn.network.routers(project_id=beta)]

    assert sorted(names) == ["batch-1", "db-1"]
    assert routers == []


def test_projects_list_whole_without_a_limit(
    demo_scenario: Scenario, start_sim: StartSim, connect: Connect
) -> None:
    sim = start_sim(demo_scenario, max_page_size=1)
    conn = connect(sim)

    projects = list(conn.identity.projects())

    assert [p.name for p in projects] == ["admin", "alpha", "beta", "gamma"]
    assert sim.request_counts()["identity/projects"] == 1
    alpha = projects[1]
    assert alpha.tags == ["team-web", "cc-1001"]


def test_compute_microversions_are_negotiated_and_honoured(
    demo_scenario: Scenario, start_sim: StartSim, connect: Connect
) -> None:
    sim = start_sim(demo_scenario)
    conn = connect(sim)
    path = "/servers/detail?all_tenants=1"

    newest = conn.compute.get(path, microversion="2.96")
    old = conn.compute.get(path, microversion="2.46")
    too_new = conn.compute.get(path, microversion="2.200")

    assert newest.headers["OpenStack-API-Version"] == "compute 2.96"
    assert newest.json()["servers"][0]["flavor"]["original_name"]
    assert old.headers["OpenStack-API-Version"] == "compute 2.46"
    assert set(old.json()["servers"][0]["flavor"]) == {"id", "links"}
    assert too_new.status_code == 406
    assert conn.compute.get_endpoint_data().max_microversion == (2, 96)


def test_wrong_password_is_refused(
    demo_scenario: Scenario, start_sim: StartSim, tmp_path: Path
) -> None:
    sim = start_sim(demo_scenario)
    config = sim.cloud_config()
    config["clouds"][DEFAULT_CLOUD]["auth"]["password"] = "wrong"
    clouds_yaml = tmp_path / "clouds.yaml"
    clouds_yaml.write_text(yaml.safe_dump(config), encoding="utf-8")
    region = openstack.config.OpenStackConfig(
        config_files=[str(clouds_yaml)], load_envvars=False
    ).get_one(cloud=DEFAULT_CLOUD)
    conn = openstack.connection.Connection(config=region)

    try:
        with pytest.raises(keystoneauth1.exceptions.http.Unauthorized, match="401"):
            list(conn.identity.projects())
    finally:
        conn.close()


def test_openstack_connect_reads_the_written_clouds_yaml(
    demo_scenario: Scenario,
    start_sim: StartSim,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = start_sim(demo_scenario)
    clouds_yaml = sim.write_clouds_yaml(tmp_path / "clouds.yaml", cloud="demo")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds_yaml))
    for name in [key for key in os.environ if key.startswith("OS_")]:
        if name != "OS_CLIENT_CONFIG_FILE":
            monkeypatch.delenv(name)

    conn = openstack.connect(cloud="demo")
    try:
        assert conn.config.get_region_name() == "RegionOne"
        assert len(list(conn.network.routers())) == 1
    finally:
        conn.close()
