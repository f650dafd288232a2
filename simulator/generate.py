"""Deterministic synthetic scenarios of any size, for scale tests and
benchmarks: the same arguments and seed always give the same cloud."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from stackmeter.simulator.scenario import (
    Change,
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
    stable_id,
)

_IdSource = Callable[[], str]

#: Start of generated scenarios unless told otherwise.
DEFAULT_START = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)

FLAVORS = (
    Flavor(
        id=stable_id("flavors", "v1.small"),
        name="v1.small",
        vcpus=1,
        ram_mb=2048,
        disk_gib=20,
    ),
    Flavor(
        id=stable_id("flavors", "v2.medium"),
        name="v2.medium",
        vcpus=2,
        ram_mb=4096,
        disk_gib=40,
    ),
    Flavor(
        id=stable_id("flavors", "v4.large"),
        name="v4.large",
        vcpus=4,
        ram_mb=1024,
        disk_gib=20,
    ),
    Flavor(
        id=stable_id("flavors", "v8.xlarge"),
        name="v8.xlarge",
        vcpus=8,
        ram_mb=16384,
        disk_gib=80,
        ephemeral_gib=20,
    ),
)


class _Lifetimes:
    """Random life spans and change times within the scenario's span."""

    def __init__(self, rng: random.Random, start: datetime, span_s: int, churn: float):
        self.rng = rng
        self.start = start
        self.span_s = span_s
        self.churn = churn

    def life(self) -> tuple[datetime | None, datetime | None]:
        """(created, deleted): most resources exist throughout; ``churn`` of
        them are created, deleted, or both, inside the span."""
        created: datetime | None = None
        deleted: datetime | None = None
        if self.rng.random() < self.churn:
            created = self.at(0.0, 0.8)
        if self.rng.random() < self.churn:
            floor = (
                (created - self.start).total_seconds() / self.span_s if created else 0
            )
            deleted = self.at(floor + 0.05, 1.0)
        return created, deleted

    def at(self, low: float, high: float) -> datetime:
        """A whole second between ``low`` and ``high`` fractions of the span."""
        fraction = self.rng.uniform(low, max(low, high))
        return self.start + timedelta(seconds=int(fraction * self.span_s))

    def during(self, created: datetime | None, deleted: datetime | None) -> datetime:
        """A whole second within a resource's life inside the span."""
        low = (created - self.start).total_seconds() / self.span_s if created else 0
        high = (deleted - self.start).total_seconds() / self.span_s if deleted else 1
        return self.at(low + (high - low) / 4, high - (high - low) / 4)


def generate_scenario(
    *,
    servers: int = 0,
    volumes: int = 0,
    snapshots: int = 0,
    images: int = 0,
    floating_ips: int = 0,
    routers: int = 0,
    load_balancers: int = 0,
    projects: int = 10,
    seed: int = 0,
    start: datetime = DEFAULT_START,
    span_s: int = 3 * 3600,
    churn: float = 0.1,
    change_rate: float = 0.05,
) -> Scenario:
    """A cloud with the given number of resources per kind over ``span_s``
    seconds from ``start``. A ``churn`` share of resources is created or
    deleted inside the span; a ``change_rate`` share changes status or size
    once. Each load balancer gets one or two listeners and one pool."""
    rng = random.Random(seed)
    lives = _Lifetimes(rng, start, span_s, churn)

    def new_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    project_list = [
        Project(id=new_id(), name=f"project-{index:04d}", tags=("generated",))
        for index in range(projects)
    ]
    project_ids = [project.id for project in project_list]

    def owner() -> str:
        return rng.choice(project_ids)

    def changed(
        life: tuple[datetime | None, datetime | None], field: str, value: object
    ) -> tuple[Change, ...]:
        if rng.random() >= change_rate:
            return ()
        return (Change(at=lives.during(*life), attrs={field: value}),)

    scenario = Scenario(start=start, flavors=list(FLAVORS), projects=project_list)
    for index in range(routers):
        created, deleted = lives.life()
        scenario.routers.append(
            Router(
                id=new_id(),
                name=f"router-{index}",
                project_id=owner(),
                created=created,
                deleted=deleted,
            )
        )
    for index in range(servers):
        created, deleted = lives.life()
        scenario.servers.append(
            Server(
                id=new_id(),
                name=f"server-{index}",
                project_id=owner(),
                flavor=rng.choice(FLAVORS).name,
                created=created,
                deleted=deleted,
                changes=changed((created, deleted), "status", "SHUTOFF"),
            )
        )
    for index in range(volumes):
        created, deleted = lives.life()
        size_gib = rng.choice((1, 10, 20, 50, 100))
        scenario.volumes.append(
            Volume(
                id=new_id(),
                name=f"volume-{index}",
                project_id=owner(),
                size_gib=size_gib,
                volume_type=rng.choice(("ssd", "hdd")),
                created=created,
                deleted=deleted,
                changes=changed((created, deleted), "size_gib", size_gib * 2),
            )
        )
    for index in range(snapshots if scenario.volumes else 0):
        volume = rng.choice(scenario.volumes)
        scenario.snapshots.append(
            Snapshot(
                id=new_id(),
                name=f"snapshot-{index}",
                project_id=volume.project_id,
                volume_id=volume.id,
                size_gib=volume.size_gib,
                created=volume.created,
                deleted=volume.deleted,
            )
        )
    for index in range(images):
        created, deleted = lives.life()
        scenario.images.append(
            Image(
                id=new_id(),
                name=f"image-{index}",
                project_id=owner(),
                size_bytes=rng.randrange(10**6, 20 * 2**30),
                stores=rng.choice(("file", "ceph")),
                visibility=rng.choice(("private", "public", "shared")),
                created=created,
                deleted=deleted,
            )
        )
    for index in range(floating_ips):
        created, deleted = lives.life()
        scenario.floating_ips.append(
            FloatingIp(
                id=new_id(),
                project_id=owner(),
                floating_ip_address=_address(index),
                created=created,
                deleted=deleted,
            )
        )
    _add_load_balancers(scenario, load_balancers, lives, new_id, owner)
    return scenario


def _add_load_balancers(
    scenario: Scenario,
    count: int,
    lives: _Lifetimes,
    new_id: _IdSource,
    owner: _IdSource,
) -> None:
    for index in range(count):
        created, deleted = lives.life()
        project_id = owner()
        lb = LoadBalancer(
            id=new_id(),
            name=f"lb-{index}",
            project_id=project_id,
            provider=lives.rng.choice(("amphora", "ovn")),
            created=created,
            deleted=deleted,
        )
        scenario.load_balancers.append(lb)
        listeners = [
            Listener(
                id=new_id(),
                name=f"lb-{index}-listener-{port}",
                project_id=project_id,
                load_balancer_id=lb.id,
                protocol_port=port,
                created=created,
                deleted=deleted,
            )
            for port in (80, 443)[: lives.rng.randint(1, 2)]
        ]
        scenario.listeners.extend(listeners)
        scenario.pools.append(
            Pool(
                id=new_id(),
                name=f"lb-{index}-pool",
                project_id=project_id,
                load_balancer_id=lb.id,
                listener_id=listeners[0].id,
                created=created,
                deleted=deleted,
            )
        )


def _address(index: int) -> str:
    """A distinct IPv4 address in 198.0.0.0/8 per index."""
    return f"198.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}"
