"""The simulator at scale: a generated cloud of 100,000 servers pages out
completely through openstacksdk's compute adapter, and openstacksdk's own
resource listing follows many pages. Timings live in
benchmarks/simulator_listing.py, not here."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import openstack.connection
import pytest

from stackmeter.simulator import Simulator, generate_scenario

pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning:openstack")

Connect = Callable[[Simulator], openstack.connection.Connection]
StartSim = Callable[..., Simulator]


def test_100k_servers_page_out_completely(
    start_sim: StartSim, connect: Connect
) -> None:
    scenario = generate_scenario(servers=100_000, projects=50, seed=3)
    sim = start_sim(scenario, max_page_size=1000)
    sim.clock.set(scenario.start + timedelta(hours=1))
    conn = connect(sim)
    expected = [server.id for server in sim.resources_at("servers")]

    seen: list[str] = []
    url: str | None = "/servers/detail?all_tenants=True"
    while url:
        response = conn.compute.get(url, microversion="2.96")
        assert response.status_code == 200
        body = response.json()
        seen.extend(server["id"] for server in body["servers"])
        links = body.get("servers_links", [])
        url = links[0]["href"] if links else None

    assert len(expected) > 80_000
    assert seen == expected
    assert sim.request_counts()["compute/servers"] == -(-len(expected) // 1000)


def test_sdk_resources_follow_many_pages(start_sim: StartSim, connect: Connect) -> None:
    scenario = generate_scenario(servers=1_500, volumes=700, seed=5, churn=0.0)
    sim = start_sim(scenario, max_page_size=200)
    conn = connect(sim)

    servers = list(conn.compute.servers(details=True, all_projects=True))
    volumes = list(conn.block_storage.volumes(details=True, all_projects=True))

    assert [s.id for s in servers] == [s.id for s in sim.resources_at("servers")]
    assert len(volumes) == 700
    assert sim.request_counts()["compute/servers"] == 8
    assert sim.request_counts()["block-storage/volumes"] == 4
