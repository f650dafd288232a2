"""Injected faults as openstacksdk meets them, and the ``/_sim`` control
endpoints that move the clock and manage faults from another process."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import keystoneauth1.exceptions.http
import openstack.connection
import openstack.exceptions
import pytest
import requests

from stackmeter.simulator import FaultSpec, FaultSpecError, Scenario, Simulator

pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning:openstack")

Connect = Callable[[Simulator], openstack.connection.Connection]
StartSim = Callable[..., Simulator]

START = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def _list_servers(conn: openstack.connection.Connection) -> list[str]:
    return [s.id for s in conn.compute.servers(details=True, all_projects=True)]


def test_a_fault_on_page_3_breaks_that_listing_once(
    demo_scenario: Scenario, start_sim: StartSim, connect: Connect
) -> None:
    sim = start_sim(demo_scenario, max_page_size=1)
    sim.clock.set(START + timedelta(hours=2))
    conn = connect(sim)
    sim.faults.add(FaultSpec(service="compute", resource="servers", page=3, times=1))

    with pytest.raises(openstack.exceptions.HttpException) as caught:
        _list_servers(conn)
    assert caught.value.status_code == 500
    assert sim.request_counts()["compute/servers"] == 3

    assert len(_list_servers(conn)) == 4
    assert sim.request_counts()["compute/servers"] == 3 + 4
    assert sim.faults.active() == {}


def test_a_500_on_a_listing_raises_until_cleared(
    demo_scenario: Scenario, start_sim: StartSim, connect: Connect
) -> None:
    sim = start_sim(demo_scenario)
    conn = connect(sim)
    sim.faults.add(FaultSpec(service="network", resource="floatingips"))

    for _ in range(2):
        with pytest.raises(openstack.exceptions.HttpException, match="500"):
            list(conn.network.ips())
    assert len(list(conn.network.routers())) == 1

    sim.faults.clear()
    assert len(list(conn.network.ips())) == 1


def test_a_slow_response_delays_but_succeeds(
    demo_scenario: Scenario, start_sim: StartSim, connect: Connect
) -> None:
    sim = start_sim(demo_scenario)
    conn = connect(sim)
    sim.faults.add(
        FaultSpec(service="load-balancer", resource="*", status=None, delay_s=0.3)
    )

    began = time.monotonic()
    balancers = list(conn.load_balancer.load_balancers())
    elapsed_s = time.monotonic() - began

    assert balancers == []
    assert elapsed_s >= 0.3


def test_faults_from_the_scenario_apply_from_the_start(
    demo_scenario: Scenario, start_sim: StartSim, connect: Connect
) -> None:
    demo_scenario.faults.append(
        FaultSpec(service="block-storage", resource="snapshots", status=503)
    )
    sim = start_sim(demo_scenario)
    conn = connect(sim)

    with pytest.raises(openstack.exceptions.HttpException, match="503"):
        list(conn.block_storage.snapshots(details=True, all_projects=True))


def test_a_fault_on_tokens_fails_authentication(
    demo_scenario: Scenario, start_sim: StartSim, connect: Connect
) -> None:
    sim = start_sim(demo_scenario)
    sim.faults.add(FaultSpec(service="identity", resource="tokens", status=500))
    conn = connect(sim)

    with pytest.raises(keystoneauth1.exceptions.http.InternalServerError):
        list(conn.identity.projects())


def test_fault_specs_are_checked() -> None:
    with pytest.raises(FaultSpecError, match="fault service"):
        FaultSpec(service="swift")
    with pytest.raises(FaultSpecError, match="fault page"):
        FaultSpec(page=0)
    with pytest.raises(FaultSpecError, match="unknown field"):
        FaultSpec.from_dict({"service": "compute", "pages": 3})


def test_control_endpoint_moves_the_clock(
    demo_scenario: Scenario, start_sim: StartSim
) -> None:
    sim = start_sim(demo_scenario)
    url = f"{sim.base_url}/_sim/clock"

    assert requests.get(url, timeout=5).json() == {
        "now": "2026-11-02T10:00:00Z",
        "speed": 0.0,
    }
    advanced = requests.post(url, json={"advance_s": 5400}, timeout=5).json()
    assert advanced["now"] == "2026-11-02T11:30:00Z"
    jumped = requests.post(url, json={"now": "2026-11-02T12:15:00Z"}, timeout=5)
    assert jumped.json()["now"] == "2026-11-02T12:15:00Z"
    assert sim.clock.now() == START + timedelta(hours=2, minutes=15)

    refused = requests.post(url, json={"advance": 1}, timeout=5)
    assert refused.status_code == 400

    running = requests.post(url, json={"speed": 3600}, timeout=5).json()
    assert running["speed"] == 3600.0
    time.sleep(0.05)
    assert sim.clock.now() > START + timedelta(hours=2, minutes=15)


def test_control_endpoint_manages_faults(
    demo_scenario: Scenario, start_sim: StartSim, connect: Connect
) -> None:
    sim = start_sim(demo_scenario, max_page_size=1)
    conn = connect(sim)
    faults_url = f"{sim.base_url}/_sim/faults"

    added = requests.post(
        faults_url,
        json={"service": "compute", "resource": "servers", "page": 2, "status": 502},
        timeout=5,
    )
    assert added.status_code == 201
    fault_id = added.json()["id"]
    listed = requests.get(faults_url, timeout=5).json()["faults"]
    assert [f["id"] for f in listed] == [fault_id]

    with pytest.raises(openstack.exceptions.HttpException, match="502"):
        _list_servers(conn)

    removed = requests.delete(f"{faults_url}/{fault_id}", timeout=5)
    assert removed.status_code == 204
    assert len(_list_servers(conn)) == 3
    bad = requests.post(faults_url, json={"service": "nova"}, timeout=5)
    assert bad.status_code == 400


def test_control_endpoint_reports_expected_resources_and_counts(
    demo_scenario: Scenario, start_sim: StartSim, connect: Connect
) -> None:
    sim = start_sim(demo_scenario)
    conn = connect(sim)
    _list_servers(conn)

    at_noon = requests.get(
        f"{sim.base_url}/_sim/resources/servers",
        params={"at": "2026-11-02T12:00:00Z"},
        timeout=5,
    ).json()
    stats = requests.get(f"{sim.base_url}/_sim/stats", timeout=5).json()

    assert at_noon["count"] == 4
    assert "5e000000-0000-4000-8000-000000000002" in at_noon["ids"]
    assert stats["requests"]["compute/servers"] == 1
