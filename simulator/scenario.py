"""Scenario model of the simulated cloud: projects, flavors and resources with
their life spans and timed changes, as dataclasses with a YAML/JSON form.

A resource exists from ``created`` (default: the scenario start) until just
before ``deleted`` (default: never). ``changes`` set new attribute values from
a given time on: a resize (``flavor``, ``size_gib``) or a status change.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from stackmeter.errors import ConfigError
from stackmeter.simulator.faults import FaultSpec

#: Namespace of the ids derived from names when a scenario file omits them.
ID_NAMESPACE = uuid.UUID("6f0b7c1e-2a51-4d0e-9a77-53a1c8f0e2d4")

#: Fields no change may set: identity, life span and ownership are fixed.
FIXED_FIELDS = frozenset({"id", "created", "deleted", "changes", "project_id"})

_RELATIVE_TIME = re.compile(
    r"^(?P<sign>[+-])(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$"
)


class ScenarioError(ConfigError):
    """A scenario that cannot be loaded; names the source and the field."""


def stable_id(kind: str, name: str) -> str:
    """The id a scenario file's resource gets when it names none: a UUID derived
    from its kind and name, so it is the same in every run."""
    return str(uuid.uuid5(ID_NAMESPACE, f"{kind}/{name}"))


def parse_time(value: object, start: datetime | None, where: str) -> datetime:
    """A scenario time: a datetime, ISO 8601 text, or an offset from ``start``
    such as ``+90m``, ``+1h30m`` or ``+2d``."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        raise ScenarioError(
            f"{where}: expected a time (ISO 8601 or +1h30m), got {value!r}"
        )
    match = _RELATIVE_TIME.match(value.strip())
    if match and any(match.group(unit) for unit in "dhms"):
        if start is None:
            raise ScenarioError(f"{where}: a relative time needs the scenario start")
        delta = timedelta(
            days=int(match.group("d") or 0),
            hours=int(match.group("h") or 0),
            minutes=int(match.group("m") or 0),
            seconds=int(match.group("s") or 0),
        )
        return start - delta if match.group("sign") == "-" else start + delta
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ScenarioError(
            f"{where}: expected a time (ISO 8601 or +1h30m), got {value!r}"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class Change:
    """New attribute values of a resource from ``at`` on."""

    at: datetime
    attrs: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class Timed:
    """What every scenario object with a life span has."""

    KIND: ClassVar[str] = ""
    #: Reference fields: field name -> kind of the object it names.
    REFS: ClassVar[Mapping[str, str]] = {}

    id: str
    created: datetime | None = None
    deleted: datetime | None = None
    changes: tuple[Change, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Project(Timed):
    """A Keystone project."""

    KIND: ClassVar[str] = "projects"

    name: str
    domain_id: str = "default"
    description: str = ""
    enabled: bool = True
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Owned(Timed):
    """A resource that belongs to a project."""

    REFS: ClassVar[Mapping[str, str]] = {"project_id": "projects"}

    name: str = ""
    project_id: str


@dataclass(frozen=True, kw_only=True)
class Flavor:
    """A Nova flavor; servers name it, and Nova embeds it in each server."""

    id: str
    name: str
    vcpus: int
    ram_mb: int
    disk_gib: int
    ephemeral_gib: int = 0
    swap_mb: int = 0
    extra_specs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Server(Owned):
    """A Nova server; ``flavor`` is the flavor's name."""

    KIND: ClassVar[str] = "servers"

    flavor: str
    status: str = "ACTIVE"
    availability_zone: str = "nova"
    image_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class Volume(Owned):
    """A Cinder volume, sized in GiB as Cinder reports it."""

    KIND: ClassVar[str] = "volumes"

    size_gib: int
    volume_type: str = "__DEFAULT__"
    status: str = "available"
    availability_zone: str = "nova"
    replication_status: str = "disabled"
    bootable: bool = False
    multiattach: bool = False


@dataclass(frozen=True, kw_only=True)
class Snapshot(Owned):
    """A Cinder snapshot; ``size_gib`` is the volume's size when it was taken."""

    KIND: ClassVar[str] = "snapshots"
    REFS: ClassVar[Mapping[str, str]] = {
        "project_id": "projects",
        "volume_id": "volumes",
    }

    volume_id: str
    size_gib: int
    status: str = "available"


@dataclass(frozen=True, kw_only=True)
class Image(Owned):
    """A Glance image; ``project_id`` is its owner, sizes are in bytes as Glance
    reports them, ``stores`` is Glance's comma-separated backend list."""

    KIND: ClassVar[str] = "images"

    size_bytes: int | None = None
    virtual_size_bytes: int | None = None
    status: str = "active"
    stores: str = "file"
    visibility: str = "private"
    disk_format: str = "qcow2"
    container_format: str = "bare"
    min_disk_gib: int = 0
    min_ram_mb: int = 0


@dataclass(frozen=True, kw_only=True)
class FloatingIp(Owned):
    """A Neutron floating IP."""

    KIND: ClassVar[str] = "floating_ips"
    REFS: ClassVar[Mapping[str, str]] = {
        "project_id": "projects",
        "router_id": "routers",
    }

    floating_ip_address: str
    floating_network_id: str = "ext-net"
    status: str = "ACTIVE"
    router_id: str | None = None
    port_id: str | None = None
    fixed_ip_address: str | None = None


@dataclass(frozen=True, kw_only=True)
class Router(Owned):
    """A Neutron router."""

    KIND: ClassVar[str] = "routers"

    status: str = "ACTIVE"
    admin_state_up: bool = True
    external_network_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class LoadBalancer(Owned):
    """An Octavia load balancer; its listener and pool lists come from the
    listeners and pools that name it and exist at the time of the listing."""

    KIND: ClassVar[str] = "load_balancers"

    provider: str = "amphora"
    operating_status: str = "ONLINE"
    provisioning_status: str = "ACTIVE"
    vip_address: str = "10.0.0.10"
    availability_zone: str | None = None


@dataclass(frozen=True, kw_only=True)
class Listener(Owned):
    """An Octavia listener of one load balancer."""

    KIND: ClassVar[str] = "listeners"
    REFS: ClassVar[Mapping[str, str]] = {
        "project_id": "projects",
        "load_balancer_id": "load_balancers",
    }

    load_balancer_id: str
    protocol: str = "HTTP"
    protocol_port: int = 80
    operating_status: str = "ONLINE"
    provisioning_status: str = "ACTIVE"


@dataclass(frozen=True, kw_only=True)
class Pool(Owned):
    """An Octavia pool of one load balancer, optionally behind a listener."""

    KIND: ClassVar[str] = "pools"
    REFS: ClassVar[Mapping[str, str]] = {
        "project_id": "projects",
        "load_balancer_id": "load_balancers",
        "listener_id": "listeners",
    }

    load_balancer_id: str
    listener_id: str | None = None
    protocol: str = "HTTP"
    lb_algorithm: str = "ROUND_ROBIN"
    operating_status: str = "ONLINE"
    provisioning_status: str = "ACTIVE"


@dataclass(frozen=True, kw_only=True)
class Credentials:
    """The one admin user the simulated Keystone accepts."""

    username: str = "admin"
    password: str = "secret"
    project_name: str = "admin"
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"


#: Kind name -> class, in the order a scenario lists them (references point
#: backwards: a snapshot names an earlier volume, a pool an earlier listener).
KINDS: dict[str, type[Timed]] = {
    "projects": Project,
    "routers": Router,
    "servers": Server,
    "volumes": Volume,
    "snapshots": Snapshot,
    "images": Image,
    "floating_ips": FloatingIp,
    "load_balancers": LoadBalancer,
    "listeners": Listener,
    "pools": Pool,
}


@dataclass(kw_only=True)
class Scenario:
    """Everything the simulated cloud holds over the scenario's time span."""

    start: datetime
    region: str = "RegionOne"
    credentials: Credentials = field(default_factory=Credentials)
    flavors: list[Flavor] = field(default_factory=list)
    projects: list[Project] = field(default_factory=list)
    routers: list[Router] = field(default_factory=list)
    servers: list[Server] = field(default_factory=list)
    volumes: list[Volume] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    images: list[Image] = field(default_factory=list)
    floating_ips: list[FloatingIp] = field(default_factory=list)
    load_balancers: list[LoadBalancer] = field(default_factory=list)
    listeners: list[Listener] = field(default_factory=list)
    pools: list[Pool] = field(default_factory=list)
    faults: list[FaultSpec] = field(default_factory=list)

    def objects(self, kind: str) -> list[Timed]:
        """The scenario objects of one kind (a key of :data:`KINDS`)."""
        if kind not in KINDS:
            raise KeyError(f"unknown kind {kind!r}, expected one of {list(KINDS)}")
        objects: list[Timed] = getattr(self, kind)
        return objects
