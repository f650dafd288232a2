"""Reads and writes scenarios in their YAML/JSON form (see README.md in this
folder for the format), checking every field's type and every reference."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml

from stackmeter.simulator.clock import iso_z, to_ts
from stackmeter.simulator.faults import FaultSpec, FaultSpecError
from stackmeter.simulator.scenario import (
    FIXED_FIELDS,
    KINDS,
    Change,
    Credentials,
    Flavor,
    FloatingIp,
    Scenario,
    ScenarioError,
    Timed,
    parse_time,
    stable_id,
)

#: The demo scenario shipped with the simulator (see README.md beside it).
DEMO_SCENARIO = Path(__file__).parent / "scenarios" / "demo.yaml"

_TOP_LEVEL = {"start", "region", "credentials", "flavors", "faults", *KINDS}

_T = TypeVar("_T")


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario from a YAML or JSON file."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{source}: cannot read scenario: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{source}: not valid YAML/JSON: {exc}") from exc
    return scenario_from_dict(data, source=str(source))


def dump_scenario(scenario: Scenario, path: str | Path) -> None:
    """Write a scenario as JSON (``.json``) or YAML (any other suffix)."""
    target = Path(path)
    data = scenario_to_dict(scenario)
    if target.suffix == ".json":
        target.write_text(json.dumps(data, indent=1), encoding="utf-8")
    else:
        target.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def scenario_from_dict(data: object, source: str = "scenario") -> Scenario:
    """Build a scenario from its parsed YAML/JSON form."""
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{source}: expected a mapping at the top level")
    unknown = sorted(set(data) - _TOP_LEVEL)
    if unknown:
        raise ScenarioError(f"{source}: unknown top-level key(s) {unknown}")
    if "start" not in data:
        raise ScenarioError(f"{source}: start: missing (the scenario's first instant)")
    start = parse_time(data["start"], None, f"{source}: start")
    scenario = Scenario(
        start=start,
        region=_text(data.get("region", "RegionOne"), f"{source}: region"),
        credentials=_credentials(data.get("credentials", {}), source),
        flavors=[
            _flavor(item, f"{source}: flavors[{index}]")
            for index, item in enumerate(_items(data, "flavors", source))
        ],
        faults=[
            _fault(item, f"{source}: faults[{index}]")
            for index, item in enumerate(_items(data, "faults", source))
        ],
    )
    refs = _References()
    for kind, cls in KINDS.items():
        objects = scenario.objects(kind)
        for index, item in enumerate(_items(data, kind, source)):
            where = f"{source}: {kind}[{index}]"
            obj = _timed(cls, item, start, refs, where)
            refs.add(kind, obj, where)
            objects.append(obj)
    return scenario


def scenario_to_dict(scenario: Scenario) -> dict[str, Any]:
    """The YAML/JSON form of a scenario; fields at their default are left out."""
    data: dict[str, Any] = {
        "start": iso_z(to_ts(scenario.start)),
        "region": scenario.region,
        "credentials": dataclasses.asdict(scenario.credentials),
        "flavors": [_plain(flavor) for flavor in scenario.flavors],
    }
    for kind in KINDS:
        objects = scenario.objects(kind)
        if objects:
            data[kind] = [_plain(obj) for obj in objects]
    if scenario.faults:
        data["faults"] = [fault.to_dict() for fault in scenario.faults]
    return data


class _References:
    """Ids and unique names seen so far, per kind, to resolve reference fields."""

    def __init__(self) -> None:
        self._ids: dict[str, set[str]] = {kind: set() for kind in KINDS}
        self._names: dict[str, dict[str, str | None]] = {kind: {} for kind in KINDS}

    def add(self, kind: str, obj: Timed, where: str) -> None:
        if obj.id in self._ids[kind]:
            raise ScenarioError(f"{where}: id: {obj.id!r} is used twice in {kind}")
        self._ids[kind].add(obj.id)
        name = getattr(obj, "name", "")
        if name:
            names = self._names[kind]
            # A name given twice can no longer be used as a reference.
            names[name] = None if name in names else obj.id

    def resolve(self, kind: str, value: str, where: str) -> str:
        if value in self._ids[kind]:
            return value
        names = self._names[kind]
        if value not in names:
            raise ScenarioError(
                f"{where}: no earlier entry of {kind} has the id or name {value!r}"
            )
        resolved = names[value]
        if resolved is None:
            raise ScenarioError(
                f"{where}: the name {value!r} is ambiguous in {kind}; use an id"
            )
        return resolved


def _items(data: Mapping[str, Any], key: str, source: str) -> list[Mapping[str, Any]]:
    items = data.get(key) or []
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise ScenarioError(f"{source}: {key}: expected a list of mappings")
    return items


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ScenarioError(f"{where}: expected text, got {value!r}")
    return value


def _credentials(data: object, source: str) -> Credentials:
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{source}: credentials: expected a mapping")
    return _build(Credentials, data, None, None, f"{source}: credentials")


def _flavor(data: Mapping[str, Any], where: str) -> Flavor:
    if "id" not in data and "name" in data:
        data = {"id": stable_id("flavors", str(data["name"])), **data}
    return _build(Flavor, data, None, None, where)


def _fault(data: Mapping[str, Any], where: str) -> FaultSpec:
    try:
        return FaultSpec.from_dict(data)
    except FaultSpecError as exc:
        raise ScenarioError(f"{where}: {exc}") from exc


def _timed(
    cls: type[Timed],
    data: Mapping[str, Any],
    start: datetime,
    refs: _References,
    where: str,
) -> Timed:
    if "id" not in data:
        basis = data.get("name") or (
            data.get("floating_ip_address") if cls is FloatingIp else None
        )
        if not basis:
            raise ScenarioError(f"{where}: id: missing, and no name to derive it from")
        data = {"id": stable_id(cls.KIND, str(basis)), **data}
    return _build(cls, data, start, refs, where)


def _build(
    cls: type[_T],
    data: Mapping[str, Any],
    start: datetime | None,
    refs: _References | None,
    where: str,
) -> _T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ScenarioError(
            f"{where}: unknown field(s) {unknown}, expected some of {sorted(fields)}"
        )
    ref_kinds: Mapping[str, str] = getattr(cls, "REFS", {})
    values: dict[str, Any] = {}
    for name, raw in data.items():
        field_where = f"{where}: {name}"
        if name == "changes":
            values[name] = tuple(
                _change(
                    cls,
                    hints,
                    item,
                    start=start,
                    refs=refs,
                    where=f"{field_where}[{index}]",
                )
                for index, item in enumerate(_change_items(raw, field_where))
            )
            continue
        value = _coerce(raw, hints[name], start, field_where)
        if name in ref_kinds and value is not None and refs is not None:
            value = refs.resolve(ref_kinds[name], value, field_where)
        values[name] = value
    missing = sorted(
        name
        for name, f in fields.items()
        if name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    )
    if missing:
        raise ScenarioError(f"{where}: missing field(s) {missing}")
    return cls(**values)


def _change_items(raw: object, where: str) -> list[Mapping[str, Any]]:
    if not isinstance(raw, list) or not all(isinstance(i, Mapping) for i in raw):
        raise ScenarioError(f"{where}: expected a list of mappings with 'at'")
    return raw


def _change(
    cls: type[Any],
    hints: Mapping[str, Any],
    data: Mapping[str, Any],
    *,
    start: datetime | None,
    refs: _References | None,
    where: str,
) -> Change:
    if "at" not in data:
        raise ScenarioError(f"{where}: at: missing (when the change happens)")
    at = parse_time(data["at"], start, f"{where}: at")
    attrs: dict[str, Any] = {}
    ref_kinds: Mapping[str, str] = getattr(cls, "REFS", {})
    for name, raw in data.items():
        if name == "at":
            continue
        if name in FIXED_FIELDS or name not in hints or name.isupper():
            raise ScenarioError(f"{where}: {name}: not a field a change may set")
        value = _coerce(raw, hints[name], start, f"{where}: {name}")
        if name in ref_kinds and value is not None and refs is not None:
            value = refs.resolve(ref_kinds[name], value, f"{where}: {name}")
        attrs[name] = value
    if not attrs:
        raise ScenarioError(f"{where}: a change must set at least one field")
    return Change(at=at, attrs=attrs)


def _coerce(value: object, hint: Any, start: datetime | None, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is types.UnionType or origin is typing.Union:
        if value is None and type(None) in args:
            return None
        (inner,) = [arg for arg in args if arg is not type(None)]
        return _coerce(value, inner, start, where)
    if hint is datetime:
        return parse_time(value, start, where)
    if hint is bool:
        if not isinstance(value, bool):
            raise ScenarioError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ScenarioError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        return _text(value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise ScenarioError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(item, args[0], start, where) for item in value)
    if origin is Mapping:
        if not isinstance(value, Mapping):
            raise ScenarioError(f"{where}: expected a mapping, got {value!r}")
        return {str(key): str(item) for key, item in value.items()}
    raise ScenarioError(f"{where}: unsupported field type {hint!r}")


def _plain(obj: Any) -> dict[str, Any]:
    """One dataclass as YAML/JSON-able data, leaving out default values."""
    data: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.default is not dataclasses.MISSING and value == f.default:
            continue
        if (
            f.default_factory is not dataclasses.MISSING
            and value == f.default_factory()
        ):
            continue
        data[f.name] = _plain_value(value)
    return data


def _plain_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_z(to_ts(value))
    if isinstance(value, Change):
        return {"at": iso_z(to_ts(value.at)), **dict(value.attrs)}
    if isinstance(value, tuple | list):
        return [_plain_value(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _plain_value(item) for key, item in value.items()}
    return value
