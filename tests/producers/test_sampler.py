"""The sampler against the OpenStack simulator (openstacksdk over HTTP) and the
real local Kafka broker: what reaches each topic, in which order, and what a
failed listing leaves behind."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sampling_support import (
    IMAGE_SIZES_BYTES,
    PLATFORM_ID,
    START,
    Message,
    TopicReader,
    every_type_scenario,
)

from stackmeter.config import Config
from stackmeter.producers import (
    PROJECTS_RUN,
    PolledClock,
    Sampler,
    run_sampler,
    sample_once,
)
from stackmeter.producers.clock import to_millis
from stackmeter.resources import RESOURCE_TYPE_IDS
from stackmeter.simulator import FaultSpec, Router, Scenario, Server, Simulator
from stackmeter.topics import TopicNames

pytestmark = pytest.mark.kafka

MARKER = "stackmeter.RunMarker"
StartSimulator = Callable[[Scenario], Simulator]
BuildConfig = Callable[..., Config]

# What the bytes-to-GiB rule must give for each image (rounding up).
IMAGE_SIZES_GIB = {
    "img-zero": 0,
    "img-one-byte": 1,
    "img-one-gib": 1,
    "img-one-gib-and-a-byte": 2,
    "img-huge": 5 * 2**20 + 1,
    "img-queued": None,
}


def expected_traits(scenario: Scenario) -> dict[str, dict[str, dict[str, Any]]]:
    """Traits per type and resource id, worked out from the scenario itself."""
    flavors = {flavor.name: flavor for flavor in scenario.flavors}
    volumes = {volume.id: volume for volume in scenario.volumes}
    servers = {}
    for server in scenario.servers:
        flavor = flavors[server.flavor]
        servers[server.id] = {
            "disk": flavor.disk_gib + flavor.ephemeral_gib,
            "diskEphemeral": flavor.ephemeral_gib,
            "diskRoot": flavor.disk_gib,
            "flavor": flavor.name,
            "ramMb": flavor.ram_mb,
            "state": server.status,
            "vcpu": flavor.vcpus,
        }
    return {
        "nova.server": servers,
        "cinder.volume": {
            v.id: {
                "availabilityZone": v.availability_zone,
                "replicationStatus": v.replication_status,
                "size": v.size_gib,
                "status": v.status,
                "type": v.volume_type,
            }
            for v in scenario.volumes
        },
        "cinder.volume_snapshot": {
            s.id: {
                "availabilityZone": volumes[s.volume_id].availability_zone,
                "replicationStatus": volumes[s.volume_id].replication_status,
                "status": s.status,
                "volumeSize": s.size_gib,
            }
            for s in scenario.snapshots
        },
        "glance.image": {
            i.id: {
                "service": i.stores.split(",")[0] or None,
                "size": IMAGE_SIZES_GIB[i.id],
                "status": i.status,
            }
            for i in scenario.images
        },
        "neutron.floating_ip": {f.id: {} for f in scenario.floating_ips},
        "neutron.router": {r.id: {} for r in scenario.routers},
        "neutron.load_balancer": {
            lb.id: {
                "listeners": sum(
                    x.load_balancer_id == lb.id for x in scenario.listeners
                ),
                "operatingStatus": lb.operating_status,
                "pools": sum(x.load_balancer_id == lb.id for x in scenario.pools),
                "provider": lb.provider,
            }
            for lb in scenario.load_balancers
        },
    }


def owners(scenario: Scenario) -> dict[str, str]:
    """Project id of every resource in the scenario, by resource id."""
    kinds = ("servers", "volumes", "snapshots", "images", "floating_ips")
    kinds += ("routers", "load_balancers")
    return {obj.id: obj.project_id for kind in kinds for obj in scenario.objects(kind)}


def split(messages: list[Message]) -> tuple[list[Message], list[Message]]:
    """(snapshots, markers) of one topic."""
    snapshots = [m for m in messages if m.schema_name != MARKER]
    markers = [m for m in messages if m.schema_name == MARKER]
    return snapshots, markers


async def test_every_type_is_published_with_the_scenarios_traits(
    start_simulator: StartSimulator,
    sampler_config: BuildConfig,
    read_topic: TopicReader,
) -> None:
    assert sorted(IMAGE_SIZES_GIB) == sorted(IMAGE_SIZES_BYTES)
    scenario = every_type_scenario()
    simulator = start_simulator(scenario)
    config = sampler_config(simulator)
    clock = PolledClock(simulator.clock.now)

    results = await sample_once(config, config.sampler.platforms[0], clock)

    by_type = {result.type_id: result for result in results}
    assert set(by_type) == {*RESOURCE_TYPE_IDS, PROJECTS_RUN}
    assert [r.type_id for r in results if not r.completed] == []
    expected = expected_traits(scenario)
    owner_of = owners(scenario)
    names = TopicNames(config.kafka.topic_prefix)
    for type_id in RESOURCE_TYPE_IDS:
        result = by_type[type_id]
        snapshots, _ = split(await read_topic(names.snapshots(type_id)))
        assert {m.key: m.record["traits"] for m in snapshots} == expected[type_id]
        assert len(snapshots) == result.resources == result.published
        for message in snapshots:
            envelope = message.record["envelope"]
            assert envelope["resource_id"] == message.key
            assert envelope["project_id"] == owner_of[message.key]
            assert envelope["platform_id"] == PLATFORM_ID
            assert envelope["run_id"] == result.run_id
            # The run's one instant, from the simulated clock, in milliseconds.
            assert envelope["sampled_at"] == to_millis(START) == result.sampled_at

    projects, _ = split(await read_topic(names.projects))
    assert {m.key: (m.record["name"], m.record["tags"]) for m in projects} == {
        f"{PLATFORM_ID}/proj-a": ("team-a", ["billing", "eu"]),
        f"{PLATFORM_ID}/proj-b": ("team-b", []),
        **{
            f"{PLATFORM_ID}/{p.id}": (p.name, list(p.tags))
            for p in simulator.resources_at("projects")
            if p.id not in ("proj-a", "proj-b")
        },
    }


async def test_markers_reach_every_partition_after_the_runs_snapshots(
    start_simulator: StartSimulator,
    sampler_config: BuildConfig,
    read_topic: TopicReader,
) -> None:
    simulator = start_simulator(every_type_scenario())
    config = sampler_config(simulator, page_size=2)
    clock = PolledClock(simulator.clock.now)
    names = TopicNames(config.kafka.topic_prefix)

    async with Sampler(config, config.sampler.platforms[0], clock) as sampler:
        first = await sampler.sample_all(RESOURCE_TYPE_IDS)
        simulator.clock.advance(300)
        second = await sampler.sample_all(RESOURCE_TYPE_IDS)

    assert all(result.completed for result in first + second)
    # Six servers, two a page: after a full page the listing asks once more
    # (with or without a next link), so the fourth page is the empty one.
    assert by_name(first)["nova.server"].pages == 4
    for run_one, run_two in zip(first, second, strict=True):
        messages = await read_topic(names.snapshots(run_one.type_id))
        per_partition: dict[int, list[Message]] = {}
        for message in messages:
            per_partition.setdefault(message.partition, []).append(message)
        assert sorted(per_partition) == [0, 1, 2], run_one.type_id
        for records in per_partition.values():
            # Each partition: run one's snapshots, its marker, then run two's.
            runs = [_run_id_of(m) for m in records]
            kinds = ["marker" if m.schema_name == MARKER else "snap" for m in records]
            boundary = kinds.index("marker")
            assert set(runs[: boundary + 1]) == {run_one.run_id}
            assert set(runs[boundary + 1 :]) == {run_two.run_id}
            assert kinds[-1] == "marker" and kinds.count("marker") == 2
        for result in (run_one, run_two):
            markers = [
                m.record
                for m in messages
                if m.schema_name == MARKER and m.key == result.run_id
            ]
            assert len(markers) == 3
            assert {m["resource_count"] for m in markers} == {result.resources}
            assert {m["sampled_at"] for m in markers} == {result.sampled_at}
            assert {m["resource_type"] for m in markers} == {result.type_id}
    assert (second[0].sampled_at - first[0].sampled_at).total_seconds() == 300


async def test_a_fault_on_page_3_leaves_published_snapshots_and_no_marker(
    start_simulator: StartSimulator,
    sampler_config: BuildConfig,
    read_topic: TopicReader,
) -> None:
    scenario = Scenario(
        start=START,
        flavors=every_type_scenario().flavors,
        projects=every_type_scenario().projects,
        servers=[
            Server(id=f"srv-{i:02d}", project_id="proj-a", flavor="m1")
            for i in range(10)
        ],
        faults=[FaultSpec(service="compute", resource="servers", page=3, status=500)],
    )
    simulator = start_simulator(scenario)
    config = sampler_config(simulator, page_size=2)
    clock = PolledClock(simulator.clock.now)
    topic = TopicNames(config.kafka.topic_prefix).snapshots("nova.server")
    api_errors_before = _api_errors("nova.server")

    async with Sampler(config, config.sampler.platforms[0], clock) as sampler:
        failed = await sampler.sample("nova.server")
        after_failure = await read_topic(topic)
        simulator.faults.clear()
        simulator.clock.advance(300)
        retried = await sampler.sample("nova.server")

    assert not failed.completed
    assert "HTTP 500" in (failed.error or "")
    assert (failed.pages, failed.resources, failed.published) == (2, 4, 4)
    # The first two pages stay published (presence counts); no marker, so
    # nothing that was not listed reads as deleted.
    snapshots, markers = split(after_failure)
    assert sorted(m.key for m in snapshots) == [f"srv-{i:02d}" for i in range(4)]
    assert markers == []
    assert _api_errors("nova.server") == api_errors_before + 1
    # Failed run: pages 1 and 2, page 3 and its one retry (api_retries=1).
    # Second run: five full pages and the empty one that ends the listing.
    assert simulator.request_counts()["compute/servers"] == 4 + 6

    assert retried.completed and retried.resources == 10
    snapshots, markers = split(await read_topic(topic))
    assert Counter(_run_id_of(m) for m in markers) == {retried.run_id: 3}
    assert len([m for m in snapshots if _run_id_of(m) == retried.run_id]) == 10


async def test_run_sampler_samples_on_the_interval_of_the_given_clock(
    start_simulator: StartSimulator,
    sampler_config: BuildConfig,
    read_topic: TopicReader,
) -> None:
    simulator = start_simulator(every_type_scenario())
    config = sampler_config(simulator, interval_s=300.0)
    clock = PolledClock(simulator.clock.now, poll_s=0.01)
    topic = TopicNames(config.kafka.topic_prefix).snapshots("neutron.router")
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_sampler(
            config,
            config.sampler.platforms[0],
            clock,
            stop,
            types=["neutron.router"],
            projects=False,
        )
    )
    try:
        first = await _markers_when(read_topic, topic, count=3)
        # The simulated clock is frozen: no second run until it moves.
        await asyncio.sleep(0.5)
        assert len(split(await read_topic(topic))[1]) == 3
        simulator.clock.advance(300)
        both = await _markers_when(read_topic, topic, count=6)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)

    instants = sorted({m.record["sampled_at"] for m in both})
    assert instants == [
        to_millis(START),
        to_millis(START) + (instants[1] - instants[0]),
    ]
    assert (instants[1] - instants[0]).total_seconds() == 300
    assert {m.record["sampled_at"] for m in first} == {to_millis(START)}


def by_name(results: list[Any]) -> dict[str, Any]:
    return {result.type_id: result for result in results}


def _run_id_of(message: Message) -> str:
    if message.schema_name == MARKER:
        return str(message.record["run_id"])
    return str(message.record["envelope"]["run_id"])


def _api_errors(type_id: str) -> float:
    value = REGISTRY.get_sample_value(
        "stackmeter_sampler_api_errors_total",
        {"platform": PLATFORM_ID, "type": type_id},
    )
    return value or 0.0


async def _markers_when(
    read_topic: TopicReader, topic: str, count: int
) -> list[Message]:
    """The topic's markers, once there are ``count`` of them (or fail)."""
    for _ in range(200):
        markers = split(await read_topic(topic))[1]
        if len(markers) >= count:
            return markers
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {count} markers on {topic}")


async def test_stopping_during_a_slow_listing_does_not_wait_for_it(
    start_simulator: StartSimulator, sampler_config: BuildConfig
) -> None:
    scenario = every_type_scenario()
    scenario.faults.append(
        FaultSpec(service="compute", resource="servers", page=2, status=None, delay_s=3)
    )
    simulator = start_simulator(scenario)
    config = sampler_config(simulator, page_size=2)
    clock = PolledClock(simulator.clock.now)
    task = asyncio.create_task(
        sample_once(config, config.sampler.platforms[0], clock, types=["nova.server"])
    )
    await asyncio.sleep(1.0)

    task.cancel()
    started = asyncio.get_running_loop().time()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert asyncio.get_running_loop().time() - started < 1.0


async def test_a_record_kafka_refuses_fails_the_run_without_a_marker(
    start_simulator: StartSimulator,
    sampler_config: BuildConfig,
    read_topic: TopicReader,
) -> None:
    # Random text barely compresses: the record is over the broker's 1 MiB.
    huge_name = secrets.token_hex(1_500_000)
    scenario = every_type_scenario()
    scenario.routers.append(Router(id="rtr-huge", name=huge_name, project_id="proj-a"))
    simulator = start_simulator(scenario)
    config = sampler_config(simulator)
    labels = {"platform": PLATFORM_ID, "type": "neutron.router"}
    before = REGISTRY.get_sample_value(
        "stackmeter_sampler_publish_errors_total", labels
    )

    (result,) = await sample_once(
        config,
        config.sampler.platforms[0],
        PolledClock(simulator.clock.now),
        types=["neutron.router"],
        projects=False,
    )

    assert not result.completed
    assert result.error_kind == "publish"
    after = REGISTRY.get_sample_value("stackmeter_sampler_publish_errors_total", labels)
    assert (after or 0) == (before or 0) + 1
    topic = TopicNames(config.kafka.topic_prefix).snapshots("neutron.router")
    assert split(await read_topic(topic))[1] == []
