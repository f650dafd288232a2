"""Mapping of API items to snapshot traits, one test per resource type, and the
bytes-to-GiB rule on its edge values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stackmeter.codec import default_registry
from stackmeter.producers.collectors import (
    COLLECTORS,
    GIB_BYTES,
    MalformedItemError,
    gib_from_bytes,
    observe_floating_ip,
    observe_image,
    observe_load_balancer,
    observe_router,
    observe_server,
    observe_volume,
    observe_volume_snapshot,
    project_record,
)
from stackmeter.resources import RESOURCE_TYPE_IDS, resource_type

SERVER: dict[str, Any] = {
    "id": "srv-1",
    "name": "web-1",
    "status": "ACTIVE",
    "tenant_id": "proj-a",
    "flavor": {
        "vcpus": 4,
        "ram": 8192,
        "disk": 20,
        "ephemeral": 10,
        "swap": 512,
        "original_name": "v4.large",
        "extra_specs": {},
    },
}


@pytest.mark.parametrize(
    ("size_bytes", "expected_gib"),
    [
        (0, 0),
        (1, 1),
        (GIB_BYTES - 1, 1),
        (GIB_BYTES, 1),
        (GIB_BYTES + 1, 2),
        (10 * GIB_BYTES + 1, 11),
        (2**63 - 1, 2**33),
        (None, None),
    ],
)
def test_bytes_become_gib_rounded_up(
    size_bytes: int | None, expected_gib: int | None
) -> None:
    assert gib_from_bytes(size_bytes) == expected_gib


@given(st.integers(min_value=0, max_value=2**70))
def test_gib_is_the_smallest_whole_gib_that_holds_the_bytes(size_bytes: int) -> None:
    gib = gib_from_bytes(size_bytes)
    assert gib is not None
    assert gib * GIB_BYTES >= size_bytes
    assert (gib - 1) * GIB_BYTES < size_bytes or gib == 0


@pytest.mark.parametrize("bad", [-1, 1.5, "12", True])
def test_bytes_that_are_not_a_size_are_refused(bad: Any) -> None:
    with pytest.raises(MalformedItemError, match="size"):
        gib_from_bytes(bad)


def test_server_traits_come_from_the_embedded_flavor() -> None:
    observed = observe_server(SERVER, {})
    assert (observed.project_id, observed.resource_id, observed.resource_name) == (
        "proj-a",
        "srv-1",
        "web-1",
    )
    assert observed.traits == {
        "disk": 30,
        "diskEphemeral": 10,
        "diskRoot": 20,
        "flavor": "v4.large",
        "ramMb": 8192,
        "state": "ACTIVE",
        "vcpu": 4,
    }


def test_server_before_microversion_2_47_has_no_flavor_traits() -> None:
    item = {**SERVER, "flavor": {"id": "f-1", "links": []}}
    traits = observe_server(item, {}).traits
    assert traits["state"] == "ACTIVE"
    assert [traits[name] for name in ("disk", "flavor", "ramMb", "vcpu")] == [None] * 4


def test_volume_traits() -> None:
    item = {
        "id": "vol-1",
        "name": None,
        "status": "in-use",
        "size": 10,
        "availability_zone": "eu-west",
        "replication_status": "",
        "volume_type": "ssd",
        "os-vol-tenant-attr:tenant_id": "proj-a",
    }
    observed = observe_volume(item, {})
    assert observed.resource_name == ""
    assert observed.traits == {
        "availabilityZone": "eu-west",
        "replicationStatus": "",
        "size": 10,
        "status": "in-use",
        "type": "ssd",
    }


def test_snapshot_takes_zone_and_replication_from_its_volume() -> None:
    item = {
        "id": "snap-1",
        "name": "nightly",
        "status": "available",
        "size": 10,
        "volume_id": "vol-1",
        "os-extended-snapshot-attributes:project_id": "proj-a",
    }
    volumes = {
        "vol-1": {"id": "vol-1", "availability_zone": "az1", "replication_status": "x"}
    }
    assert observe_volume_snapshot(item, volumes).traits == {
        "availabilityZone": "az1",
        "replicationStatus": "x",
        "status": "available",
        "volumeSize": 10,
    }
    orphan = observe_volume_snapshot({**item, "volume_id": "gone"}, volumes)
    assert orphan.traits["availabilityZone"] is None
    assert orphan.traits["replicationStatus"] is None


def test_image_service_is_the_first_store_and_size_is_rounded_up() -> None:
    item = {
        "id": "img-1",
        "name": "ubuntu",
        "status": "active",
        "owner": "proj-a",
        "size": GIB_BYTES + 1,
        "stores": "ceph, file",
    }
    assert observe_image(item, {}).traits == {
        "service": "ceph",
        "size": 2,
        "status": "active",
    }
    queued = observe_image({**item, "size": None, "stores": "", "status": "queued"}, {})
    assert queued.traits == {"service": None, "size": None, "status": "queued"}
    single_store = {k: v for k, v in item.items() if k != "stores"}
    assert observe_image(single_store, {}).traits["service"] is None


def test_floating_ip_is_named_by_its_address() -> None:
    item = {"id": "fip-1", "project_id": "proj-a", "floating_ip_address": "1.2.3.4"}
    observed = observe_floating_ip(item, {})
    assert (observed.resource_name, observed.traits) == ("1.2.3.4", {})


def test_router_has_no_traits() -> None:
    item = {"id": "r-1", "name": "edge", "project_id": "proj-a"}
    assert observe_router(item, {}).traits == {}


def test_load_balancer_counts_listeners_and_pools() -> None:
    item = {
        "id": "lb-1",
        "name": "front",
        "project_id": "proj-a",
        "listeners": [{"id": "l1"}, {"id": "l2"}],
        "pools": [{"id": "p1"}],
        "operating_status": "ONLINE",
        "provider": "amphora",
    }
    assert observe_load_balancer(item, {}).traits == {
        "listeners": 2,
        "operatingStatus": "ONLINE",
        "pools": 1,
        "provider": "amphora",
    }


@pytest.mark.parametrize("missing", ["id", "tenant_id"])
def test_an_item_without_id_or_project_is_malformed(missing: str) -> None:
    item = {k: v for k, v in SERVER.items() if k != missing}
    with pytest.raises(MalformedItemError, match=missing):
        observe_server(item, {})


def test_volume_without_size_is_malformed() -> None:
    item = {"id": "vol-1", "os-vol-tenant-attr:tenant_id": "p", "size": None}
    with pytest.raises(MalformedItemError, match="size"):
        observe_volume(item, {})


def test_every_resource_type_has_a_collector_whose_traits_fit_its_schema() -> None:
    assert set(COLLECTORS) == set(RESOURCE_TYPE_IDS)
    for type_id, collector in COLLECTORS.items():
        assert collector.type_id == type_id
        schema_traits = set(resource_type(type_id).trait_names)
        observed = collector.observe(_minimal_item(type_id), {})
        assert set(observed.traits) == schema_traits, type_id


def test_observations_encode_and_decode_unchanged() -> None:
    registry = default_registry()
    sampled_at = datetime(2025, 1, 1, 12, 0, 0, 123000, tzinfo=UTC)
    record = {
        "envelope": {
            "platform_id": "openstack.test",
            "project_id": "proj-a",
            "resource_id": "srv-1",
            "resource_name": "web-1",
            "run_id": "run-1",
            "sampled_at": sampled_at,
        },
        "traits": observe_server(SERVER, {}).traits,
    }
    decoded = registry.decode(registry.encode("stackmeter.snapshot.Server", record))
    assert decoded.record == record


def test_project_record() -> None:
    sampled_at = datetime(2025, 1, 1, tzinfo=UTC)
    item = {"id": "p1", "name": "team", "domain_id": "default", "tags": ["a"]}
    assert project_record(item, "openstack.test", sampled_at) == {
        "platform_id": "openstack.test",
        "project_id": "p1",
        "name": "team",
        "domain_id": "default",
        "tags": ["a"],
        "enabled": True,
        "sampled_at": sampled_at,
    }


def _minimal_item(type_id: str) -> dict[str, Any]:
    base = {"id": "x", "name": "n", "status": "ok", "size": 1}
    owner = {
        "nova.server": "tenant_id",
        "cinder.volume": "os-vol-tenant-attr:tenant_id",
        "cinder.volume_snapshot": "os-extended-snapshot-attributes:project_id",
        "glance.image": "owner",
    }.get(type_id, "project_id")
    return {**base, owner: "p"}
