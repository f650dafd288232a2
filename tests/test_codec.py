"""Round trips through the single-object codec, schema evolution and its errors."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastavro.schema import load_schema
from fastavro.utils import generate_many
from hypothesis import given
from hypothesis import strategies as st

from stackmeter.codec import (
    HEADER_BYTES,
    MARKER,
    SchemaRegistry,
    default_registry,
    schema_folder,
)
from stackmeter.errors import CodecError, UnknownSchemaError
from stackmeter.resources import RESOURCE_TYPE_IDS, resource_type

SAMPLED_AT = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def envelope(resource_id: str = "r-1") -> dict[str, Any]:
    return {
        "platform_id": "openstack.eu-west",
        "project_id": "p-1",
        "resource_id": resource_id,
        "resource_name": "name",
        "run_id": "run-1",
        "sampled_at": SAMPLED_AT,
    }


# The examples of the platform docs page, one per resource type.
SEED_TRAITS: dict[str, dict[str, Any]] = {
    "neutron.floating_ip": {},
    "neutron.router": {},
    "neutron.load_balancer": {
        "listeners": 1,
        "operatingStatus": "OFFLINE",
        "pools": 1,
        "provider": "octavia",
    },
    "cinder.volume_snapshot": {
        "availabilityZone": "eu-west",
        "replicationStatus": "",
        "status": "available",
        "volumeSize": 10,
    },
    "cinder.volume": {
        "availabilityZone": "eu-west",
        "replicationStatus": "",
        "size": 10,
        "status": "in-use",
        "type": "ssd",
    },
    "glance.image": {"service": "cinder", "size": 10, "status": "active"},
    "nova.server": {
        "disk": 20,
        "diskEphemeral": 20,
        "diskRoot": 20,
        "flavor": "v4.large",
        "ramMb": 1024,
        "state": "",
        "vcpu": 4,
    },
}


def test_every_type_has_a_seed_example() -> None:
    assert set(SEED_TRAITS) == set(RESOURCE_TYPE_IDS)


@pytest.mark.parametrize("type_id", RESOURCE_TYPE_IDS)
def test_seed_examples_round_trip(type_id: str) -> None:
    registry = default_registry()
    schema_name = resource_type(type_id).schema_name
    record = {"envelope": envelope(), "traits": SEED_TRAITS[type_id]}

    data = registry.encode(schema_name, record)

    assert data[:2] == MARKER
    assert data[2:HEADER_BYTES] == registry.fingerprint_of(schema_name)
    decoded = registry.decode(data)
    assert decoded.schema_name == schema_name
    assert decoded.record == record


def test_optional_traits_may_be_null() -> None:
    registry = default_registry()
    traits: dict[str, Any] = dict.fromkeys(resource_type("nova.server").trait_names)
    traits["state"] = "ACTIVE"
    record = {"envelope": envelope(), "traits": traits}

    assert (
        registry.decode(registry.encode("stackmeter.snapshot.Server", record)).record
        == record
    )


def test_traits_match_the_design_exactly() -> None:
    expected = {
        "neutron.floating_ip": [],
        "neutron.router": [],
        "neutron.load_balancer": [
            ("listeners", "int", True),
            ("operatingStatus", "text", True),
            ("pools", "int", True),
            ("provider", "text", True),
        ],
        "cinder.volume_snapshot": [
            ("availabilityZone", "text", True),
            ("replicationStatus", "text", True),
            ("status", "text", False),
            ("volumeSize", "int", False),
        ],
        "cinder.volume": [
            ("availabilityZone", "text", True),
            ("replicationStatus", "text", True),
            ("size", "int", False),
            ("status", "text", False),
            ("type", "text", True),
        ],
        "glance.image": [
            ("service", "text", True),
            ("size", "int", True),
            ("status", "text", False),
        ],
        "nova.server": [
            ("disk", "int", True),
            ("diskEphemeral", "int", True),
            ("diskRoot", "int", True),
            ("flavor", "text", True),
            ("ramMb", "int", True),
            ("state", "text", False),
            ("vcpu", "int", True),
        ],
    }
    for type_id, traits in expected.items():
        actual = [(t.name, t.kind, t.optional) for t in resource_type(type_id).traits]
        assert actual == traits, type_id


def test_every_field_is_documented() -> None:
    def check(schema: Any, where: str) -> None:
        if isinstance(schema, dict) and schema.get("type") == "record":
            assert schema.get("doc"), where
            for field in schema["fields"]:
                assert field.get("doc"), f"{where}.{field['name']}"
                check(field["type"], f"{where}.{field['name']}")
        elif isinstance(schema, list):
            for member in schema:
                check(member, where)

    for path in sorted(schema_folder().glob("*.avsc")):
        check(json.loads(path.read_text()), path.name)


def _server_schema() -> dict[str, Any]:
    path = schema_folder() / "stackmeter.snapshot.Server.avsc"
    loaded = load_schema(str(path), _write_hint=False)
    assert isinstance(loaded, dict)
    return loaded


def test_evolved_reader_reads_data_of_the_previous_writer() -> None:
    old = _server_schema()
    new = copy.deepcopy(old)
    traits = new["fields"][1]["type"]
    traits["fields"].append(
        {"name": "gpu", "type": ["null", "long"], "default": None, "doc": "GPUs."}
    )
    writer = SchemaRegistry()
    writer.add(old)
    reader = SchemaRegistry()
    reader.add(old, current=False)
    reader.add(new)
    record = {"envelope": envelope(), "traits": SEED_TRAITS["nova.server"]}

    decoded = reader.decode(writer.encode("stackmeter.snapshot.Server", record))

    assert decoded.record["traits"] == {**SEED_TRAITS["nova.server"], "gpu": None}
    assert decoded.record["envelope"] == record["envelope"]


def test_every_historical_schema_is_readable_by_the_current_one() -> None:
    """Data written by each earlier version in schemas/history decodes today."""
    history = schema_folder() / "history"
    registry = default_registry()
    for path in sorted(history.glob("*.avsc")) if history.is_dir() else []:
        old = load_schema(str(path), _write_hint=False)
        assert isinstance(old, dict)
        writer = SchemaRegistry()
        name = writer.add(old)
        assert name in registry.names(), f"{path.name}: no current schema {name}"
        for record in generate_many(old, 20):
            decoded = registry.decode(writer.encode(name, record))
            assert decoded.schema_name == name


def test_unknown_fingerprint_is_named_in_the_error() -> None:
    registry = default_registry()
    data = MARKER + bytes.fromhex("0102030405060708") + b"\x00"

    with pytest.raises(UnknownSchemaError, match="0102030405060708"):
        registry.decode(data)


@pytest.mark.parametrize("data", [b"", b"\xc3", b"{}", b"\xc3\x02" + bytes(8)])
def test_data_without_the_marker_is_a_codec_error(data: bytes) -> None:
    with pytest.raises(CodecError, match="single-object"):
        default_registry().decode(data)


def test_truncated_body_is_a_codec_error() -> None:
    registry = default_registry()
    record = {"envelope": envelope(), "traits": SEED_TRAITS["nova.server"]}
    data = registry.encode("stackmeter.snapshot.Server", record)

    with pytest.raises(
        CodecError, match=r"cannot decode a stackmeter\.snapshot\.Server"
    ):
        registry.decode(data[:-5])


def test_a_record_missing_a_required_field_is_a_codec_error() -> None:
    with pytest.raises(CodecError, match=r"cannot encode stackmeter\.snapshot\.Volume"):
        default_registry().encode(
            "stackmeter.snapshot.Volume", {"envelope": envelope(), "traits": {}}
        )


def test_decimal_money_round_trips_exactly() -> None:
    registry = default_registry()
    record = {
        "charge_id": "c",
        "usage_id": "u",
        "usage_revision": 1,
        "platform_id": "openstack.eu-west",
        "resource_type": "nova.server",
        "project_id": "p",
        "resource_id": "r",
        "resource_name": "",
        "hour_start": SAMPLED_AT,
        "estimated": False,
        "rated": True,
        "unrated_reason": None,
        "product_id": "vcpu",
        "product_name": "vCPU",
        "quantity": Decimal("4.000000000"),
        "unit": "h",
        "unit_price": Decimal("0.012345678"),
        "amount": Decimal("0.049382712"),
        "currency": "EUR",
        "catalog_version": "2026-11",
    }

    assert (
        registry.decode(registry.encode("stackmeter.RatedUsage", record)).record
        == record
    )


texts = st.text(max_size=40)
optional_ints = st.none() | st.integers(min_value=-(2**63), max_value=2**63 - 1)


@given(
    resource_id=texts,
    name=texts,
    ints=st.tuples(*[optional_ints] * 5),
    flavor=st.none() | texts,
    state=texts,
    millis=st.integers(min_value=0, max_value=2**42),
)
def test_any_server_snapshot_round_trips(
    resource_id: str,
    name: str,
    ints: tuple[int | None, ...],
    flavor: str | None,
    state: str,
    millis: int,
) -> None:
    registry = default_registry()
    env = envelope(resource_id) | {
        "resource_name": name,
        "sampled_at": datetime.fromtimestamp(millis / 1000, tz=UTC),
    }
    disk, ephemeral, root, ram, vcpu = ints
    traits = {
        "disk": disk,
        "diskEphemeral": ephemeral,
        "diskRoot": root,
        "flavor": flavor,
        "ramMb": ram,
        "state": state,
        "vcpu": vcpu,
    }
    record = {"envelope": env, "traits": traits}

    assert (
        registry.decode(registry.encode("stackmeter.snapshot.Server", record)).record
        == record
    )


def test_schema_folder_ships_with_the_package() -> None:
    assert Path(schema_folder(), "stackmeter.Usage.avsc").is_file()
