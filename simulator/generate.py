"""Deterministic synthetic scenarios of any size, for scale tests and
benchmarks: the same arguments and seed always give the same cloud."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import TypedDict

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


class _Life(TypedDict):
    created: datetime | None
    deleted: datetime | None


class _Builder:
    """Draws every random choice of one generated scenario from one seeded
    generator, so that equal arguments give equal clouds."""

    def __init__(
        self, seed: int, start: datetime, span_s: int, churn: float, change_rate: float
    ) -> None:
        self.rng = random.Random(seed)
        self.start = start
        self.span_s = span_s
        self.churn = churn
        self.change_rate = change_rate
        self.project_ids: list[str] = []

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def owner(self) -> str:
        return self.rng.choice(self.project_ids)

    def life(self) -> _Life:
        """``created`` and ``deleted``: most resources exist throughout;
        ``churn`` of them are created, deleted, or both, inside the span."""
        created: datetime | None = None
        deleted: datetime | None = None
        if self.rng.random() < self.churn:
            created = self._at(0.0, 0.8)
        if self.rng.random() < self.churn:
            floor = self._fraction(created) if created else 0.0
            deleted = self._at(floor + 0.05, 1.0)
        return {"created": created, "deleted": deleted}

    def changes(self, life: _Life, field: str, value: object) -> tuple[Change, ...]:
        """One change of ``field`` inside the resource's life, ``change_rate``
        of the time; none otherwise."""
        if self.rng.random() >= self.change_rate:
            return ()
        created, deleted = life["created"], life["deleted"]
        low = self._fraction(created) if created else 0.0
        high = self._fraction(deleted) if deleted else 1.0
        at = self._at(low + (high - low) / 4, high - (high - low) / 4)
        return (Change(at=at, attrs={field: value}),)

    def project(self, index: int) -> Project:
        project = Project(
            id=self.new_id(), name=f"project-{index:04d}", tags=("generated",)
        )
        self.project_ids.append(project.id)
        return project

    def router(self, index: int) -> Router:
        return Router(
            id=self.new_id(),
            name=f"router-{index}",
            project_id=self.owner(),
            **self.life(),
        )

    def server(self, index: int) -> Server:
        life = self.life()
        return Server(
            id=self.new_id(),
            name=f"server-{index}",
            project_id=self.owner(),
            flavor=self.rng.choice(FLAVORS).name,
            changes=self.changes(life, "status", "SHUTOFF"),
            **life,
        )

    def volume(self, index: int) -> Volume:
        life = self.life()
        size_gib = self.rng.choice((1, 10, 20, 50, 100))
        return Volume(
            id=self.new_id(),
            name=f"volume-{index}",
            project_id=self.owner(),
            size_gib=size_gib,
            volume_type=self.rng.choice(("ssd", "hdd")),
            changes=self.changes(life, "size_gib", size_gib * 2),
            **life,
        )

    def snapshot(self, index: int, volumes: list[Volume]) -> Snapshot:
        volume = self.rng.choice(volumes)
        return Snapshot(
            id=self.new_id(),
            name=f"snapshot-{index}",
            project_id=volume.project_id,
            volume_id=volume.id,
            size_gib=volume.size_gib,
            created=volume.created,
            deleted=volume.deleted,
        )

    def image(self, index: int) -> Image:
        return Image(
            id=self.new_id(),
            name=f"image-{index}",
            project_id=self.owner(),
            size_bytes=self.rng.randrange(10**6, 20 * 2**30),
            stores=self.rng.choice(("file", "ceph")),
            visibility=self.rng.choice(("private", "public", "shared")),
            **self.life(),
        )

    def floating_ip(self, index: int) -> FloatingIp:
        # A distinct address in 198.0.0.0/8 per index.
        address = f"198.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}"
        return FloatingIp(
            id=self.new_id(),
            project_id=self.owner(),
            floating_ip_address=address,
            **self.life(),
        )

    def load_balancer(self, index: int, scenario: Scenario) -> None:
        """A load balancer with one or two listeners and a pool behind the
        first, all sharing its life span."""
        life = self.life()
        project_id = self.owner()
        lb = LoadBalancer(
            id=self.new_id(),
            name=f"lb-{index}",
            provider=self.rng.choice(("amphora", "ovn")),
            project_id=project_id,
            **life,
        )
        listeners = [
            Listener(
                id=self.new_id(),
                name=f"lb-{index}-listener-{port}",
                load_balancer_id=lb.id,
                protocol_port=port,
                project_id=project_id,
                **life,
            )
            for port in (80, 443)[: self.rng.randint(1, 2)]
        ]
        pool = Pool(
            id=self.new_id(),
            name=f"lb-{index}-pool",
            load_balancer_id=lb.id,
            listener_id=listeners[0].id,
            project_id=project_id,
            **life,
        )
        scenario.load_balancers.append(lb)
        scenario.listeners.extend(listeners)
        scenario.pools.append(pool)

    def _fraction(self, moment: datetime) -> float:
        return (moment - self.start).total_seconds() / self.span_s

    def _at(self, low: float, high: float) -> datetime:
        fraction = self.rng.uniform(low, max(low, high))
        return self.start + timedelta(seconds=int(fraction * self.span_s))


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
    deleted inside the span; a ``change_rate`` share of servers and volumes
    changes status or size once. Snapshots copy a random volume's life span.
    Each load balancer gets one or two listeners and one pool."""
    build = _Builder(seed, start, span_s, churn, change_rate)
    scenario = Scenario(
        start=start,
        flavors=list(FLAVORS),
        projects=[build.project(index) for index in range(projects)],
    )
    scenario.routers = [build.router(index) for index in range(routers)]
    scenario.servers = [build.server(index) for index in range(servers)]
    scenario.volumes = [build.volume(index) for index in range(volumes)]
    if scenario.volumes:
        scenario.snapshots = [
            build.snapshot(index, scenario.volumes) for index in range(snapshots)
        ]
    scenario.images = [build.image(index) for index in range(images)]
    scenario.floating_ips = [build.floating_ip(index) for index in range(floating_ips)]
    for index in range(load_balancers):
        build.load_balancer(index, scenario)
    return scenario
