"""The seven metered resource types, their snapshot schemas and their traits.

Trait names, kinds and optionality are read from the snapshot schemas, so the
schema files stay the one place where a trait is defined.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from stackmeter.codec import default_registry

TraitKind = Literal["int", "text"]


@dataclass(frozen=True, slots=True)
class Trait:
    """One trait of a resource type, as the platform docs name it."""

    name: str
    kind: TraitKind
    optional: bool


@dataclass(frozen=True, slots=True)
class ResourceType:
    """A metered resource type: its id, snapshot schema and traits."""

    type_id: str
    schema_name: str
    service: str
    traits: tuple[Trait, ...]

    def trait(self, name: str) -> Trait | None:
        """The trait of that name, or None when the type has none."""
        for trait in self.traits:
            if trait.name == name:
                return trait
        return None

    @property
    def trait_names(self) -> tuple[str, ...]:
        return tuple(trait.name for trait in self.traits)


# type id -> (snapshot schema name, OpenStack service that lists it)
_TYPES: dict[str, tuple[str, str]] = {
    "neutron.floating_ip": ("stackmeter.snapshot.FloatingIp", "network"),
    "neutron.router": ("stackmeter.snapshot.Router", "network"),
    "neutron.load_balancer": ("stackmeter.snapshot.LoadBalancer", "load-balancer"),
    "cinder.volume_snapshot": ("stackmeter.snapshot.VolumeSnapshot", "block-storage"),
    "cinder.volume": ("stackmeter.snapshot.Volume", "block-storage"),
    "glance.image": ("stackmeter.snapshot.Image", "image"),
    "nova.server": ("stackmeter.snapshot.Server", "compute"),
}

RESOURCE_TYPE_IDS: tuple[str, ...] = tuple(_TYPES)


def _trait_of(field: dict[str, Any]) -> Trait:
    avro_type = field["type"]
    optional = isinstance(avro_type, list) and "null" in avro_type
    if isinstance(avro_type, list):
        avro_type = next(member for member in avro_type if member != "null")
    kind: TraitKind = "int" if avro_type in ("long", "int") else "text"
    return Trait(name=field["name"], kind=kind, optional=optional)


@cache
def resource_types() -> dict[str, ResourceType]:
    """Every metered resource type by type id, in the design's order."""
    registry = default_registry()
    found = {}
    for type_id, (schema_name, service) in _TYPES.items():
        schema = registry.schema(schema_name)
        traits_field = next(f for f in schema["fields"] if f["name"] == "traits")
        traits = tuple(_trait_of(field) for field in traits_field["type"]["fields"])
        found[type_id] = ResourceType(type_id, schema_name, service, traits)
    return found


def resource_type(type_id: str) -> ResourceType:
    """The resource type of that id; raises KeyError naming the known ids."""
    types = resource_types()
    if type_id not in types:
        raise KeyError(
            f"unknown resource type {type_id!r}; known: {', '.join(RESOURCE_TYPE_IDS)}"
        )
    return types[type_id]


def type_of_schema(schema_name: str) -> str | None:
    """The type id whose snapshots use that schema, or None."""
    for type_id, (name, _service) in _TYPES.items():
        if name == schema_name:
            return type_id
    return None
