"""The scenario model without HTTP: loading and checking scenario files, the
compiled state's answers at a given time and its paging, the generator, the
clock and the fault book."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stackmeter.simulator import (
    KINDS,
    FaultSpec,
    Scenario,
    ScenarioError,
    Server,
    SimClock,
    Volume,
    dump_scenario,
    generate_scenario,
    load_scenario,
    scenario_from_dict,
    scenario_to_dict,
)
from stackmeter.simulator.faults import FaultBook
from stackmeter.simulator.state import CloudState

START = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def _minimal(**extra: Any) -> dict[str, Any]:
    return {
        "start": "2026-11-02T10:00:00Z",
        "flavors": [{"name": "m1", "vcpus": 1, "ram_mb": 512, "disk_gib": 1}],
        "projects": [{"name": "alpha"}],
        **extra,
    }


def test_demo_scenario_loads_with_references_and_relative_times(
    demo_scenario: Scenario,
) -> None:
    web_2 = next(s for s in demo_scenario.servers if s.name == "web-2")
    snapshot = demo_scenario.snapshots[0]
    pool = demo_scenario.pools[0]

    assert web_2.project_id == "a0000000-0000-4000-8000-000000000001"
    assert web_2.created == START + timedelta(minutes=30)
    assert web_2.deleted == START + timedelta(hours=2, minutes=15)
    assert snapshot.volume_id == "70000000-0000-4000-8000-000000000002"
    assert pool.listener_id == "11000000-0000-4000-8000-000000000001"
    assert {f.name for f in demo_scenario.flavors} >= {"v4.large"}
    for kind in KINDS:
        assert demo_scenario.objects(kind), f"demo has no {kind}"


def test_v4_large_matches_the_platform_docs_example(demo_scenario: Scenario) -> None:
    flavor = next(f for f in demo_scenario.flavors if f.name == "v4.large")

    assert (flavor.vcpus, flavor.ram_mb, flavor.disk_gib, flavor.ephemeral_gib) == (
        4,
        1024,
        20,
        20,
    )


def test_scenario_round_trips_through_its_dict_and_files(
    demo_scenario: Scenario, tmp_path: Path
) -> None:
    again = scenario_from_dict(scenario_to_dict(demo_scenario))
    dump_scenario(demo_scenario, tmp_path / "demo.json")
    dump_scenario(demo_scenario, tmp_path / "demo.yaml")

    assert again == demo_scenario
    assert load_scenario(tmp_path / "demo.json") == demo_scenario
    assert load_scenario(tmp_path / "demo.yaml") == demo_scenario


def test_ids_derive_from_names_when_omitted() -> None:
    first = scenario_from_dict(_minimal())
    second = scenario_from_dict(_minimal())

    assert first.projects[0].id == second.projects[0].id
    assert len(first.projects[0].id) == 36


def _servers(**fields: Any) -> dict[str, Any]:
    return {"servers": [{"name": "a", "project_id": "alpha", **fields}]}


def _volumes(**fields: Any) -> dict[str, Any]:
    return {"volumes": [{"name": "v", "project_id": "alpha", **fields}]}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (_servers(flavor="m1", project_id="nope"), "project_id: no earlier"),
        (_servers(), r"missing field\(s\) \['flavor'\]"),
        (_servers(flavor="m1", colour=1), "colour"),
        (_volumes(size_gib="10"), "size_gib: expected an integer"),
        (_volumes(size_gib=1, created="soon"), "created: expected a time"),
        (
            _servers(flavor="m1", changes=[{"at": "+1h", "id": "x"}]),
            "not a field a change may set",
        ),
        ({"faults": [{"service": "swift"}]}, r"faults\[0\]: fault service"),
        ({"routers": [{"project_id": "alpha"}]}, "no name to derive it from"),
        ({"region": 5}, "region: expected text"),
    ],
)
def test_bad_scenarios_name_the_field(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        scenario_from_dict(_minimal(**extra), source="bad.yaml")


def test_unreadable_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"missing\.yaml: cannot read"):
        load_scenario(tmp_path / "missing.yaml")


def test_state_checks_life_spans_and_flavors() -> None:
    scenario = scenario_from_dict(_minimal())
    project_id = scenario.projects[0].id
    scenario.servers.append(
        Server(id="s1", project_id=project_id, flavor="m9", created=START)
    )
    with pytest.raises(ScenarioError, match="flavor: expected one of"):
        CloudState(scenario)

    scenario.servers[0] = Server(
        id="s1", project_id=project_id, flavor="m1", deleted=START
    )
    with pytest.raises(ScenarioError, match="deleted is not after created"):
        CloudState(scenario)


def test_state_answers_what_exists_at_a_time(demo_scenario: Scenario) -> None:
    state = CloudState(demo_scenario)

    def names(kind: str, minutes: float) -> set[str]:
        at = START + timedelta(minutes=minutes)
        return {getattr(obj, "name", obj.id) for obj in state.resources_at(kind, at)}

    assert names("servers", 0) == {"web-1", "db-1", "batch-1"}
    assert names("servers", 30) == {"web-1", "web-2", "db-1", "batch-1"}
    assert names("servers", 150) == {"web-1", "db-1", "ci-runner"}
    assert names("servers", -1) == set()
    sizes = {
        obj.name: obj.size_gib
        for obj in state.resources_at("volumes", START + timedelta(minutes=105))
        if isinstance(obj, Volume)
    }
    assert sizes["db-data"] == 150


def test_paging_starts_after_a_marker_even_a_deleted_one() -> None:
    scenario = scenario_from_dict(_minimal())
    project_id = scenario.projects[0].id
    scenario.servers.extend(
        Server(
            id=f"s{index}",
            project_id=project_id,
            flavor="m1",
            deleted=START + timedelta(hours=1) if index == 2 else None,
        )
        for index in range(5)
    )
    index = CloudState(scenario).kinds["servers"]
    later = START.timestamp() + 7200

    first, more = index.page(later, None, 2)
    rest, last_more = index.page(later, "s2", 10)

    assert [obj.id for _, obj in first] == ["s0", "s1"]
    assert more
    assert [obj.id for _, obj in rest] == ["s3", "s4"]
    assert not last_more


def test_generated_scenarios_are_deterministic_and_consistent() -> None:
    first = generate_scenario(
        servers=300, volumes=50, snapshots=20, load_balancers=5, seed=7
    )
    second = generate_scenario(
        servers=300, volumes=50, snapshots=20, load_balancers=5, seed=7
    )
    other = generate_scenario(servers=300, seed=8)

    assert scenario_to_dict(first) == scenario_to_dict(second)
    assert [s.id for s in first.servers] != [s.id for s in other.servers]
    assert len(first.servers) == 300
    assert len(first.pools) == 5
    assert 5 <= len(first.listeners) <= 10
    state = CloudState(first)  # checks every reference and life span
    assert 0 < len(state.resources_at("servers", START + timedelta(hours=1))) <= 300


def test_clock_is_frozen_until_given_a_speed() -> None:
    real = [100.0]
    clock = SimClock(START, real_clock=lambda: real[0])

    real[0] += 50
    assert clock.now() == START
    clock.advance(90)
    assert clock.now() == START + timedelta(seconds=90)
    clock.set_speed(60)
    real[0] += 2
    assert clock.now() == START + timedelta(seconds=90 + 120)
    clock.set(START)
    real[0] += 1
    assert clock.now() == START + timedelta(seconds=60)
    with pytest.raises(ValueError, match="speed"):
        clock.set_speed(-1)


def test_fault_book_matches_in_order_and_counts_down() -> None:
    book = FaultBook()
    page_fault = book.add(
        FaultSpec(service="compute", resource="servers", page=3, times=2)
    )
    book.add(FaultSpec(service="image", status=None, delay_s=1.5))

    assert book.fire("compute", "servers", 2) is None
    first = book.fire("compute", "servers", 3)
    assert first is not None and first.fault_id == page_fault and first.status == 500
    assert book.fire("compute", "servers", 3) is not None
    assert book.fire("compute", "servers", 3) is None
    slow = book.fire("image", "images", 1)
    assert slow is not None and (slow.status, slow.delay_s) == (None, 1.5)
    assert list(book.active()) == [2]
