"""JSON shapes of each resource as the real OpenStack services return them in
their detail listings (field names, units and nesting), built from one version
of a scenario resource."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stackmeter.simulator.clock import iso_z
from stackmeter.simulator.scenario import (
    FloatingIp,
    Image,
    Listener,
    LoadBalancer,
    Pool,
    Project,
    Router,
    Server,
    Snapshot,
    Volume,
)
from stackmeter.simulator.state import CloudState, Timeline

#: Nova status -> (OS-EXT-STS:vm_state, OS-EXT-STS:power_state).
_NOVA_STATES: dict[str, tuple[str, int]] = {
    "ACTIVE": ("active", 1),
    "BUILD": ("building", 0),
    "SHUTOFF": ("stopped", 4),
    "PAUSED": ("paused", 3),
    "SUSPENDED": ("suspended", 4),
    "RESCUE": ("rescued", 1),
    "RESIZE": ("active", 1),
    "VERIFY_RESIZE": ("resized", 1),
    "SHELVED": ("shelved", 4),
    "SHELVED_OFFLOADED": ("shelved_offloaded", 4),
    "ERROR": ("error", 0),
    "SOFT_DELETED": ("soft-delete", 4),
}


@dataclass(frozen=True)
class ViewContext:
    """What a view needs beyond the resource: the cloud, where it is served,
    the simulated time of the request and the negotiated microversion."""

    state: CloudState
    endpoint: str
    ts: float
    microversion: tuple[int, int] = (0, 0)
    user_id: str = ""


def server_view(ctx: ViewContext, timeline: Timeline, server: Server) -> dict[str, Any]:
    """A server as Nova's ``GET /servers/detail`` shows it to an admin."""
    flavor = ctx.state.flavors[server.flavor]
    vm_state, power_state = _NOVA_STATES.get(server.status, ("active", 1))
    href = f"{ctx.endpoint}/servers/{server.id}"
    if ctx.microversion >= (2, 47):
        flavor_view: dict[str, Any] = {
            "vcpus": flavor.vcpus,
            "ram": flavor.ram_mb,
            "disk": flavor.disk_gib,
            "ephemeral": flavor.ephemeral_gib,
            "swap": flavor.swap_mb,
            "original_name": flavor.name,
            "extra_specs": dict(flavor.extra_specs),
        }
    else:
        flavor_view = {
            "id": flavor.id,
            "links": [
                {"rel": "bookmark", "href": f"{ctx.endpoint}/flavors/{flavor.id}"}
            ],
        }
    view: dict[str, Any] = {
        "id": server.id,
        "name": server.name,
        "status": server.status,
        "tenant_id": server.project_id,
        "user_id": ctx.user_id,
        "metadata": {},
        "hostId": "",
        "image": {"id": server.image_id} if server.image_id else "",
        "flavor": flavor_view,
        "created": iso_z(timeline.created_ts),
        "updated": iso_z(timeline.updated_ts(ctx.ts)),
        "addresses": {},
        "accessIPv4": "",
        "accessIPv6": "",
        "links": [
            {"rel": "self", "href": href},
            {"rel": "bookmark", "href": href},
        ],
        "OS-DCF:diskConfig": "MANUAL",
        "progress": 0,
        "OS-EXT-AZ:availability_zone": server.availability_zone,
        "config_drive": "",
        "key_name": None,
        "OS-SRV-USG:launched_at": iso_z(timeline.created_ts),
        "OS-SRV-USG:terminated_at": None,
        "OS-EXT-SRV-ATTR:host": "compute-1",
        "OS-EXT-SRV-ATTR:instance_name": f"instance-{server.id[:8]}",
        "OS-EXT-SRV-ATTR:hypervisor_hostname": "compute-1",
        "OS-EXT-STS:task_state": None,
        "OS-EXT-STS:vm_state": vm_state,
        "OS-EXT-STS:power_state": power_state,
        "os-extended-volumes:volumes_attached": [],
        "security_groups": [{"name": "default"}],
        "locked": False,
        "description": None,
        "tags": [],
    }
    if ctx.microversion >= (2, 73):
        view["locked_reason"] = None
    if ctx.microversion >= (2, 96):
        view["pinned_availability_zone"] = None
    return view


def volume_view(ctx: ViewContext, timeline: Timeline, volume: Volume) -> dict[str, Any]:
    """A volume as Cinder's ``GET /volumes/detail`` shows it to an admin."""
    href = f"{ctx.endpoint}/volumes/{volume.id}"
    view: dict[str, Any] = {
        "id": volume.id,
        "name": volume.name,
        "description": None,
        "status": volume.status,
        "size": volume.size_gib,
        "availability_zone": volume.availability_zone,
        "created_at": _cinder_time(timeline.created_ts),
        "updated_at": _cinder_time(timeline.updated_ts(ctx.ts)),
        "volume_type": volume.volume_type,
        "replication_status": volume.replication_status,
        "os-vol-tenant-attr:tenant_id": volume.project_id,
        "os-vol-host-attr:host": f"cinder-1@backend#{volume.volume_type}",
        "os-vol-mig-status-attr:migstat": None,
        "os-vol-mig-status-attr:name_id": None,
        "user_id": ctx.user_id,
        "bootable": "true" if volume.bootable else "false",
        "encrypted": False,
        "multiattach": volume.multiattach,
        "attachments": [],
        "metadata": {},
        "snapshot_id": None,
        "source_volid": None,
        "consistencygroup_id": None,
        "links": [
            {"rel": "self", "href": href},
            {"rel": "bookmark", "href": href},
        ],
    }
    if ctx.microversion >= (3, 13):
        view["group_id"] = None
    if ctx.microversion >= (3, 21):
        view["provider_id"] = None
    if ctx.microversion >= (3, 48):
        view["service_uuid"] = "5f0c2b9e-cinder-volume"
        view["shared_targets"] = False
    if ctx.microversion >= (3, 61):
        view["cluster_name"] = None
    if ctx.microversion >= (3, 63):
        view["volume_type_id"] = volume.volume_type
    if ctx.microversion >= (3, 65):
        view["consumes_quota"] = True
    return view


def snapshot_view(
    ctx: ViewContext, timeline: Timeline, snapshot: Snapshot
) -> dict[str, Any]:
    """A snapshot as Cinder's ``GET /snapshots/detail`` shows it to an admin.
    Cinder gives snapshots no availability zone or replication status: those
    belong to the volume."""
    view: dict[str, Any] = {
        "id": snapshot.id,
        "name": snapshot.name,
        "description": None,
        "status": snapshot.status,
        "size": snapshot.size_gib,
        "volume_id": snapshot.volume_id,
        "metadata": {},
        "created_at": _cinder_time(timeline.created_ts),
        "updated_at": _cinder_time(timeline.updated_ts(ctx.ts)),
        "os-extended-snapshot-attributes:project_id": snapshot.project_id,
        "os-extended-snapshot-attributes:progress": "100%",
    }
    if ctx.microversion >= (3, 14):
        view["group_snapshot_id"] = None
    if ctx.microversion >= (3, 41):
        view["user_id"] = ctx.user_id
    if ctx.microversion >= (3, 65):
        view["consumes_quota"] = True
    return view


def image_view(ctx: ViewContext, timeline: Timeline, image: Image) -> dict[str, Any]:
    """An image as Glance's ``GET /v2/images`` shows it; sizes in bytes."""
    return {
        "id": image.id,
        "name": image.name,
        "status": image.status,
        "visibility": image.visibility,
        "owner": image.project_id,
        "size": image.size_bytes,
        "virtual_size": image.virtual_size_bytes,
        "disk_format": image.disk_format,
        "container_format": image.container_format,
        "min_disk": image.min_disk_gib,
        "min_ram": image.min_ram_mb,
        "protected": False,
        "os_hidden": False,
        "checksum": None,
        "os_hash_algo": None,
        "os_hash_value": None,
        "stores": image.stores,
        "tags": [],
        "created_at": iso_z(timeline.created_ts),
        "updated_at": iso_z(timeline.updated_ts(ctx.ts)),
        "self": f"/v2/images/{image.id}",
        "file": f"/v2/images/{image.id}/file",
        "schema": "/v2/schemas/image",
    }


def floating_ip_view(
    ctx: ViewContext, timeline: Timeline, fip: FloatingIp
) -> dict[str, Any]:
    """A floating IP as Neutron's ``GET /v2.0/floatingips`` shows it."""
    return {
        "id": fip.id,
        "tenant_id": fip.project_id,
        "project_id": fip.project_id,
        "floating_ip_address": fip.floating_ip_address,
        "floating_network_id": fip.floating_network_id,
        "router_id": fip.router_id,
        "port_id": fip.port_id,
        "fixed_ip_address": fip.fixed_ip_address,
        "status": fip.status,
        "description": "",
        "qos_policy_id": None,
        "port_details": None,
        "tags": [],
        "created_at": iso_z(timeline.created_ts),
        "updated_at": iso_z(timeline.updated_ts(ctx.ts)),
        "revision_number": len(timeline.change_ts),
    }


def router_view(ctx: ViewContext, timeline: Timeline, router: Router) -> dict[str, Any]:
    """A router as Neutron's ``GET /v2.0/routers`` shows it."""
    gateway = (
        {"network_id": router.external_network_id, "enable_snat": True}
        if router.external_network_id
        else None
    )
    return {
        "id": router.id,
        "name": router.name,
        "tenant_id": router.project_id,
        "project_id": router.project_id,
        "status": router.status,
        "admin_state_up": router.admin_state_up,
        "external_gateway_info": gateway,
        "routes": [],
        "description": "",
        "distributed": False,
        "ha": False,
        "availability_zone_hints": [],
        "availability_zones": ["nova"],
        "flavor_id": None,
        "tags": [],
        "created_at": iso_z(timeline.created_ts),
        "updated_at": iso_z(timeline.updated_ts(ctx.ts)),
        "revision_number": len(timeline.change_ts),
    }


def load_balancer_view(
    ctx: ViewContext, timeline: Timeline, lb: LoadBalancer
) -> dict[str, Any]:
    """A load balancer as Octavia shows it; ``listeners`` and ``pools`` hold
    the ids of those that exist at the time of the request."""
    children = ctx.state.lb_children[lb.id]
    return {
        "id": lb.id,
        "name": lb.name,
        "description": "",
        "project_id": lb.project_id,
        "tenant_id": lb.project_id,
        "provider": lb.provider,
        "operating_status": lb.operating_status,
        "provisioning_status": lb.provisioning_status,
        "admin_state_up": True,
        "vip_address": lb.vip_address,
        "vip_port_id": None,
        "vip_subnet_id": None,
        "vip_network_id": None,
        "vip_qos_policy_id": None,
        "flavor_id": None,
        "availability_zone": lb.availability_zone,
        "listeners": _ids_alive(children["listeners"], ctx.ts),
        "pools": _ids_alive(children["pools"], ctx.ts),
        "tags": [],
        "created_at": iso_z(timeline.created_ts),
        "updated_at": iso_z(timeline.updated_ts(ctx.ts)),
    }


def listener_view(
    ctx: ViewContext, timeline: Timeline, listener: Listener
) -> dict[str, Any]:
    """A listener as Octavia shows it."""
    return {
        "id": listener.id,
        "name": listener.name,
        "description": "",
        "project_id": listener.project_id,
        "tenant_id": listener.project_id,
        "protocol": listener.protocol,
        "protocol_port": listener.protocol_port,
        "loadbalancers": [{"id": listener.load_balancer_id}],
        "default_pool_id": None,
        "connection_limit": -1,
        "admin_state_up": True,
        "operating_status": listener.operating_status,
        "provisioning_status": listener.provisioning_status,
        "tags": [],
        "created_at": iso_z(timeline.created_ts),
        "updated_at": iso_z(timeline.updated_ts(ctx.ts)),
    }


def pool_view(ctx: ViewContext, timeline: Timeline, pool: Pool) -> dict[str, Any]:
    """A pool as Octavia shows it."""
    return {
        "id": pool.id,
        "name": pool.name,
        "description": "",
        "project_id": pool.project_id,
        "tenant_id": pool.project_id,
        "protocol": pool.protocol,
        "lb_algorithm": pool.lb_algorithm,
        "loadbalancers": [{"id": pool.load_balancer_id}],
        "listeners": [{"id": pool.listener_id}] if pool.listener_id else [],
        "members": [],
        "healthmonitor_id": None,
        "session_persistence": None,
        "admin_state_up": True,
        "operating_status": pool.operating_status,
        "provisioning_status": pool.provisioning_status,
        "tags": [],
        "created_at": iso_z(timeline.created_ts),
        "updated_at": iso_z(timeline.updated_ts(ctx.ts)),
    }


def project_view(
    ctx: ViewContext, timeline: Timeline, project: Project
) -> dict[str, Any]:
    """A project as Keystone's ``GET /v3/projects`` shows it."""
    return {
        "id": project.id,
        "name": project.name,
        "domain_id": project.domain_id,
        "parent_id": project.domain_id,
        "description": project.description,
        "enabled": project.enabled,
        "is_domain": False,
        "tags": list(project.tags),
        "options": {},
        "links": {"self": f"{ctx.endpoint}/projects/{project.id}"},
    }


def _ids_alive(timelines: list[Timeline], ts: float) -> list[dict[str, str]]:
    return [
        {"id": timeline.versions[0].id} for timeline in timelines if timeline.alive(ts)
    ]


def _cinder_time(ts: float) -> str:
    # Cinder prints microseconds and no zone suffix.
    return iso_z(ts).removesuffix("Z") + ".000000"
