"""The every-type scenario the sampler's tests share, and the shape of a record
read back from Kafka."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stackmeter.producers.collectors import GIB_BYTES
from stackmeter.simulator import (
    Flavor,
    FloatingIp,
    Image,
    Listener,
    LoadBalancer,
    Pool,
    Project,
    Router,
    Scenario,
    Server,
    Snapshot,
    Volume,
)

START = datetime(2026, 3, 2, 9, 30, 15, 250000, tzinfo=UTC)
PLATFORM_ID = "openstack.sim-1"

# Image sizes at the edges of the bytes-to-GiB rule.
IMAGE_SIZES_BYTES = {
    "img-zero": 0,
    "img-one-byte": 1,
    "img-one-gib": GIB_BYTES,
    "img-one-gib-and-a-byte": GIB_BYTES + 1,
    "img-huge": 5 * 2**50 + 1,
    "img-queued": None,
}


def every_type_scenario() -> Scenario:
    """Two projects with a few of each resource type, traits chosen to differ."""
    proj_a, proj_b = "proj-a", "proj-b"
    servers = [
        Server(id=f"srv-{i}", name=f"web-{i}", project_id=proj_a, flavor="m1")
        for i in range(5)
    ]
    servers.append(
        Server(
            id="srv-big",
            name="db",
            project_id=proj_b,
            flavor="x1",
            status="SHUTOFF",
        )
    )
    volumes = [
        Volume(
            id="vol-1",
            name="data",
            project_id=proj_a,
            size_gib=10,
            volume_type="ssd",
            status="in-use",
            availability_zone="az-2",
            replication_status="enabled",
        ),
        Volume(id="vol-2", name="", project_id=proj_b, size_gib=1),
    ]
    images = [
        Image(
            id=image_id,
            name=image_id,
            project_id=proj_a,
            size_bytes=size,
            status="active" if size is not None else "queued",
            stores="ceph,file" if size else "",
        )
        for image_id, size in IMAGE_SIZES_BYTES.items()
    ]
    return Scenario(
        start=START,
        flavors=[
            Flavor(id="f-m1", name="m1", vcpus=2, ram_mb=4096, disk_gib=20),
            Flavor(
                id="f-x1",
                name="x1",
                vcpus=16,
                ram_mb=65536,
                disk_gib=40,
                ephemeral_gib=100,
            ),
        ],
        projects=[
            Project(id=proj_a, name="team-a", tags=("billing", "eu")),
            Project(id=proj_b, name="team-b", domain_id="d2"),
        ],
        servers=servers,
        volumes=volumes,
        snapshots=[
            Snapshot(
                id="snap-1", name="s", project_id=proj_a, volume_id="vol-1", size_gib=10
            ),
            Snapshot(
                id="snap-2",
                project_id=proj_b,
                volume_id="vol-2",
                size_gib=1,
                status="creating",
            ),
        ],
        images=images,
        floating_ips=[
            FloatingIp(id="fip-1", project_id=proj_a, floating_ip_address="192.0.2.7"),
        ],
        routers=[Router(id="rtr-1", name="edge", project_id=proj_b)],
        load_balancers=[
            LoadBalancer(
                id="lb-1",
                name="front",
                project_id=proj_a,
                provider="octavia",
                operating_status="DEGRADED",
            ),
            LoadBalancer(id="lb-2", name="idle", project_id=proj_b),
        ],
        listeners=[
            Listener(id="lsn-1", project_id=proj_a, load_balancer_id="lb-1"),
            Listener(id="lsn-2", project_id=proj_a, load_balancer_id="lb-1"),
        ],
        pools=[Pool(id="pool-1", project_id=proj_a, load_balancer_id="lb-1")],
    )


@dataclass(frozen=True)
class Message:
    """One record read back from Kafka, with its value decoded."""

    partition: int
    offset: int
    key: str
    schema_name: str
    record: dict[str, Any]


TopicReader = Callable[[str], Awaitable[list[Message]]]
