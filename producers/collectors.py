"""What the sampler lists for each resource type and how one API item becomes the
envelope fields and traits of a snapshot.

Each collector names the API listing (service, path, query) and a pure function
from one item of that listing, as the service's JSON shows it, to an
:class:`Observation`. The functions read the documented API fields directly
rather than openstacksdk's resource objects: building those costs a few
milliseconds per item, which would make a listing of 100,000 servers take
minutes. openstacksdk still does authentication, the service catalog, version
discovery, microversions and retries (see :mod:`stackmeter.producers.listing`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stackmeter.errors import StackmeterError

Item = Mapping[str, Any]
Lookup = Mapping[str, Item]

GIB_BYTES = 1024**3

# Embedded flavor details in servers (vcpus, ram, disk, ephemeral,
# original_name) need compute microversion 2.47; older ones give a flavor id.
COMPUTE_MICROVERSION = "2.47"


class MalformedItemError(StackmeterError):
    """An API item without a field the snapshot cannot do without (its id, its
    project, a required size). The run is abandoned rather than publishing a
    partial listing with a marker, which would read as deletions downstream."""

    retriable = True


@dataclass(frozen=True, slots=True)
class Listing:
    """One paginated API collection, reached through an openstacksdk proxy.

    ``service`` is the proxy's attribute on the connection (``compute``,
    ``block_storage``...), ``path`` is relative to the service's versioned
    endpoint and ``resources_key`` names the list in the response body.
    """

    service: str
    path: str
    resources_key: str
    params: Mapping[str, str] = field(default_factory=dict)
    microversion: str | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """What one API item says about a resource, before the run's envelope."""

    project_id: str
    resource_id: str
    resource_name: str
    traits: dict[str, Any]


Observe = Callable[[Item, Lookup], Observation]


@dataclass(frozen=True, slots=True)
class Collector:
    """How one resource type is listed and mapped.

    When ``lookup`` is set, that collection is listed first and handed to
    ``observe`` by id, for traits the main listing does not carry.
    """

    type_id: str
    listing: Listing
    observe: Observe
    lookup: Listing | None = None


def gib_from_bytes(size_bytes: int | None) -> int | None:
    """Bytes as whole GiB, rounded up (billing-safe: 1 byte over 1 GiB is 2 GiB).

    None stays None (Glance has no size for an image that is still queued).
    """
    if size_bytes is None:
        return None
    if isinstance(size_bytes, bool) or not isinstance(size_bytes, int):
        raise MalformedItemError(
            f"size: expected bytes as an integer, got {size_bytes!r}"
        )
    if size_bytes < 0:
        raise MalformedItemError(f"size: expected 0 or more bytes, got {size_bytes}")
    return -(-size_bytes // GIB_BYTES)


def _required(item: Item, key: str) -> Any:
    value = item.get(key)
    if value is None or value == "":
        raise MalformedItemError(
            f"item {item.get('id', '<no id>')!r}: field {key!r} is missing"
        )
    return value


def _optional_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _required_int(item: Item, key: str) -> int:
    value = _optional_int(_required(item, key))
    if value is None:
        raise MalformedItemError(
            f"item {item.get('id')!r}: field {key!r} must be an integer, "
            f"got {item.get(key)!r}"
        )
    return value


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _observation(
    item: Item, project_key: str, traits: dict[str, Any], name: str | None = None
) -> Observation:
    return Observation(
        project_id=str(_required(item, project_key)),
        resource_id=str(_required(item, "id")),
        resource_name=name if name is not None else str(item.get("name") or ""),
        traits=traits,
    )


def observe_server(item: Item, lookup: Lookup) -> Observation:
    """A Nova server from ``GET /servers/detail`` at microversion 2.47 or later.

    Disk traits follow the flavor: ``diskRoot`` is the flavor's root disk,
    ``diskEphemeral`` its ephemeral disk and ``disk`` their sum, the server's
    whole local disk, which is what a per-GiB disk price should multiply. (The
    platform docs' example shows 20 for all three, which cannot be a sum; a
    catalog that prices the root disk alone uses ``diskRoot``.) Swap is not
    counted. Before microversion 2.47 Nova gives only the flavor id; the flavor
    traits are then null rather than guessed.
    """
    flavor = item.get("flavor")
    traits: dict[str, Any] = {
        "disk": None,
        "diskEphemeral": None,
        "diskRoot": None,
        "flavor": None,
        "ramMb": None,
        "state": str(item.get("status") or ""),
        "vcpu": None,
    }
    if isinstance(flavor, Mapping) and "original_name" in flavor:
        root_gib = _optional_int(flavor.get("disk"))
        ephemeral_gib = _optional_int(flavor.get("ephemeral"))
        traits["diskRoot"] = root_gib
        traits["diskEphemeral"] = ephemeral_gib
        if root_gib is not None:
            traits["disk"] = root_gib + (ephemeral_gib or 0)
        traits["flavor"] = _text(flavor.get("original_name"))
        traits["ramMb"] = _optional_int(flavor.get("ram"))
        traits["vcpu"] = _optional_int(flavor.get("vcpus"))
    return _observation(item, "tenant_id", traits)


def observe_volume(item: Item, lookup: Lookup) -> Observation:
    """A Cinder volume from ``GET /volumes/detail``; Cinder sizes are GiB."""
    traits = {
        "availabilityZone": _text(item.get("availability_zone")),
        "replicationStatus": _text(item.get("replication_status")),
        "size": _required_int(item, "size"),
        "status": str(item.get("status") or ""),
        "type": _text(item.get("volume_type")),
    }
    return _observation(item, "os-vol-tenant-attr:tenant_id", traits)


def observe_volume_snapshot(item: Item, lookup: Lookup) -> Observation:
    """A Cinder snapshot from ``GET /snapshots/detail``.

    Cinder gives a snapshot no availability zone or replication status; both
    are the snapshot's volume's, looked up in the volume listing the run makes
    first (``lookup``). They are null when the volume is not in that listing.
    """
    volume = lookup.get(str(item.get("volume_id")), {})
    zone = item.get("availability_zone", volume.get("availability_zone"))
    replication = item.get("replication_status", volume.get("replication_status"))
    traits = {
        "availabilityZone": _text(zone),
        "replicationStatus": _text(replication),
        "status": str(item.get("status") or ""),
        "volumeSize": _required_int(item, "size"),
    }
    return _observation(item, "os-extended-snapshot-attributes:project_id", traits)


def observe_image(item: Item, lookup: Lookup) -> Observation:
    """A Glance image from ``GET /v2/images``.

    ``service`` is the first backend store of Glance's comma-separated
    ``stores`` field (null when Glance runs without multiple stores); ``size``
    is Glance's byte size rounded up to whole GiB.
    """
    stores = str(item.get("stores") or "")
    first_store = stores.split(",", maxsplit=1)[0].strip()
    traits = {
        "service": first_store or None,
        "size": gib_from_bytes(item.get("size")),
        "status": str(item.get("status") or ""),
    }
    return _observation(item, "owner", traits)


def observe_floating_ip(item: Item, lookup: Lookup) -> Observation:
    """A Neutron floating IP; it has no name, so its address is shown instead."""
    address = str(item.get("floating_ip_address") or "")
    return _observation(item, "project_id", {}, name=address)


def observe_router(item: Item, lookup: Lookup) -> Observation:
    """A Neutron router; billed for existing, no traits."""
    return _observation(item, "project_id", {})


def observe_load_balancer(item: Item, lookup: Lookup) -> Observation:
    """An Octavia load balancer; listener and pool counts are the lengths of
    the id lists Octavia embeds in it."""
    listeners = item.get("listeners")
    pools = item.get("pools")
    traits = {
        "listeners": len(listeners) if isinstance(listeners, list) else None,
        "operatingStatus": _text(item.get("operating_status")),
        "pools": len(pools) if isinstance(pools, list) else None,
        "provider": _text(item.get("provider")),
    }
    return _observation(item, "project_id", traits)


_VOLUMES = Listing(
    "block_storage", "/volumes/detail", "volumes", {"all_tenants": "True"}
)

COLLECTORS: dict[str, Collector] = {
    "neutron.floating_ip": Collector(
        "neutron.floating_ip",
        Listing("network", "/floatingips", "floatingips"),
        observe_floating_ip,
    ),
    "neutron.router": Collector(
        "neutron.router", Listing("network", "/routers", "routers"), observe_router
    ),
    "neutron.load_balancer": Collector(
        "neutron.load_balancer",
        Listing("load_balancer", "/lbaas/loadbalancers", "loadbalancers"),
        observe_load_balancer,
    ),
    "cinder.volume_snapshot": Collector(
        "cinder.volume_snapshot",
        Listing(
            "block_storage", "/snapshots/detail", "snapshots", {"all_tenants": "True"}
        ),
        observe_volume_snapshot,
        lookup=_VOLUMES,
    ),
    "cinder.volume": Collector("cinder.volume", _VOLUMES, observe_volume),
    # visibility=all: Glance leaves community images out of a plain listing,
    # even for an admin.
    "glance.image": Collector(
        "glance.image",
        Listing("image", "/images", "images", {"visibility": "all"}),
        observe_image,
    ),
    "nova.server": Collector(
        "nova.server",
        Listing(
            "compute",
            "/servers/detail",
            "servers",
            {"all_tenants": "True"},
            microversion=COMPUTE_MICROVERSION,
        ),
        observe_server,
    ),
}

PROJECTS = Listing("identity", "/projects", "projects")


def project_record(
    item: Item, platform_id: str, sampled_at: datetime
) -> dict[str, Any]:
    """A Keystone project from ``GET /v3/projects`` as a ``stackmeter.Project``."""
    tags = item.get("tags")
    return {
        "platform_id": platform_id,
        "project_id": str(_required(item, "id")),
        "name": str(item.get("name") or ""),
        "domain_id": str(item.get("domain_id") or ""),
        "tags": [str(tag) for tag in tags] if isinstance(tags, list) else [],
        "enabled": bool(item.get("enabled", True)),
        "sampled_at": sampled_at,
    }
