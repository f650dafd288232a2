"""Following each service's form of next-page link, and what a listing that
fails after its retries raises."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openstack.connection
import pytest
from sampling_support import every_type_scenario

from stackmeter.config import PlatformConfig, SamplerConfig
from stackmeter.producers.collectors import COLLECTORS, PROJECTS
from stackmeter.producers.listing import (
    ListingError,
    iter_pages,
    next_page_url,
    open_connection,
    read_ahead,
)
from stackmeter.simulator import DEFAULT_CLOUD, FaultSpec, Scenario, Simulator


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {
                "servers": [],
                "servers_links": [{"rel": "next", "href": "http://n/s?m=1"}],
            },
            "http://n/s?m=1",
        ),
        ({"servers": [], "servers_links": [{"rel": "prev", "href": "http://p"}]}, None),
        (
            {"projects": [], "links": {"self": "s", "next": "http://k/p?m=2"}},
            "http://k/p?m=2",
        ),
        ({"projects": [], "links": {"self": "s", "next": None}}, None),
        ({"servers": [], "links": [{"rel": "next", "href": "http://g"}]}, "http://g"),
        ({"images": [], "next": "/v2/images?marker=abc"}, "/images?marker=abc"),
        ({"images": []}, None),
    ],
)
def test_next_link_in_every_form(body: dict[str, object], expected: str | None) -> None:
    key = next(iter(body))
    assert next_page_url(body, key) == expected


def _connection(
    simulator: Simulator, tmp_path: Path, **fields: Any
) -> openstack.connection.Connection:
    clouds = simulator.write_clouds_yaml(tmp_path / "clouds.yaml")
    sampler = SamplerConfig(clouds_yaml=str(clouds), api_retry_delay_s=0.01, **fields)
    platform = PlatformConfig(cloud=DEFAULT_CLOUD, platform_id="openstack.test")
    return open_connection(platform, sampler)


def test_pages_of_every_listing_hold_the_whole_collection(
    start_simulator: Callable[[Scenario], Simulator], tmp_path: Path
) -> None:
    scenario = every_type_scenario()
    simulator = start_simulator(scenario)
    connection = _connection(simulator, tmp_path)
    kinds = {
        "nova.server": "servers",
        "cinder.volume": "volumes",
        "cinder.volume_snapshot": "snapshots",
        "glance.image": "images",
        "neutron.floating_ip": "floating_ips",
        "neutron.router": "routers",
        "neutron.load_balancer": "load_balancers",
    }
    for type_id, kind in kinds.items():
        pages = list(iter_pages(connection, COLLECTORS[type_id].listing, 2))
        listed = [item["id"] for page in pages for item in page]
        assert sorted(listed) == sorted(obj.id for obj in scenario.objects(kind)), (
            type_id
        )
        assert all(len(page) <= 2 for page in pages)
    projects = [p["id"] for page in iter_pages(connection, PROJECTS, 1) for p in page]
    assert {"proj-a", "proj-b"} <= set(projects)


def test_a_listing_that_keeps_failing_raises_after_the_retries(
    start_simulator: Callable[[Scenario], Simulator], tmp_path: Path
) -> None:
    simulator = start_simulator(every_type_scenario())
    simulator.faults.add(FaultSpec(service="network", resource="routers", status=503))
    connection = _connection(simulator, tmp_path, api_retries=2)

    with pytest.raises(ListingError, match="HTTP 503") as raised:
        list(iter_pages(connection, COLLECTORS["neutron.router"].listing, 10))

    assert raised.value.status == 503
    assert simulator.request_counts()["network/routers"] == 3


def test_a_fault_that_clears_within_the_retries_is_not_seen(
    start_simulator: Callable[[Scenario], Simulator], tmp_path: Path
) -> None:
    simulator = start_simulator(every_type_scenario())
    simulator.faults.add(
        FaultSpec(service="compute", resource="servers", page=2, status=500, times=1)
    )
    connection = _connection(simulator, tmp_path, api_retries=1)

    pages = list(iter_pages(connection, COLLECTORS["nova.server"].listing, 4))

    assert [len(page) for page in pages] == [4, 2]


def test_read_ahead_yields_every_page_then_the_error_in_order() -> None:
    def pages() -> Iterator[int]:
        yield 1
        yield 2
        raise ListingError("page 3 failed")

    seen = []
    with pytest.raises(ListingError, match="page 3"):
        for page in read_ahead(pages()):
            seen.append(page)
    assert seen == [1, 2]


def test_read_ahead_stops_fetching_when_the_caller_stops() -> None:
    fetched = []

    def pages() -> Iterator[int]:
        for number in range(1000):
            fetched.append(number)
            yield number

    reader = read_ahead(pages(), depth=1)
    assert next(reader) == 0
    reader.close()
    time.sleep(0.5)
    # The page being handed over when the caller stopped, and no more.
    assert len(fetched) <= 3
