"""The existence check and hourly usage of one partition, on hand-computed cases.

Runs are every 5 minutes and the grace is 5 minutes unless a test says
otherwise, so hour H closes at the first marker after H + 1:05.
"""

from __future__ import annotations

import hashlib

from meter_support import (
    PLATFORM,
    SCOPE,
    SERVER,
    Driver,
    Run,
    at,
    events_of,
    every_5_min,
    hour,
    marker,
    server_traits,
    sighting,
)

from stackmeter.streams.existence import MeterSettings
from stackmeter.streams.hours import first_open_hour, usage_id
from stackmeter.streams.state import ResourceKey


def counts(driver: Driver, resource_id: str) -> dict[str, tuple[int, int, bool]]:
    """``{"HH": (observed, expected, estimated)}`` of the latest revisions."""
    return {
        f"{(record.hour_ms - hour('00')) // 3_600_000:02d}": (
            record.samples_observed,
            record.samples_expected,
            record.estimated,
        )
        for record in driver.by_hour(resource_id).values()
    }


def test_server_created_10_50_and_deleted_11_05_is_billed_for_hours_10_and_11() -> None:
    driver = Driver()
    runs = every_5_min("10:00", "12:10", ["keep"])
    for run in runs:
        if at("10:50") <= run.instant_ms <= at("11:00"):
            run.seen = ["keep", "srv"]

    early = driver.feed(events_of(r for r in runs if r.instant_ms <= at("11:05")))
    assert early == []
    driver.feed(events_of(r for r in runs if at("11:05") < r.instant_ms <= at("11:10")))
    assert counts(driver, "srv") == {"10": (2, 12, False)}
    driver.feed(events_of(r for r in runs if r.instant_ms > at("11:10")))

    assert counts(driver, "srv") == {"10": (2, 12, False), "11": (1, 12, False)}
    assert counts(driver, "keep") == {"10": (12, 12, False), "11": (12, 12, False)}
    srv = driver.by_hour("srv")
    assert srv[hour("10")].last_sampled_at_ms == at("10:55")
    assert srv[hour("11")].last_sampled_at_ms == at("11:00")
    assert {r.revision for r in driver.usage} == {1}
    assert sum(step.lives_ended for step in driver.steps) == 1
    key = ResourceKey(PLATFORM, SERVER, "srv")
    assert key not in driver.store.resources  # life ended, hours closed: forgotten


def test_failed_listing_at_12_20_ends_no_life() -> None:
    # 12:00-12:15 complete; 12:20 fails after listing only A; the sampler is
    # then down until 14:00. B must still be alive to get estimated hour 13.
    driver = Driver()
    shutoff = server_traits("SHUTOFF")
    runs = [
        *every_5_min("12:00", "12:15", ["a", "b"]),
        Run(at("12:20"), ["a"], completed=False, traits={"a": shutoff}),
        *every_5_min("14:00", "15:10", ["a", "b"]),
    ]
    driver.feed(events_of(runs))

    assert counts(driver, "a") == {
        "12": (4, 4, False),
        "13": (0, 0, True),
        "14": (12, 12, False),
    }
    assert counts(driver, "b") == counts(driver, "a")
    assert sum(step.lives_ended for step in driver.steps) == 0
    a, b = driver.by_hour("a"), driver.by_hour("b")
    # The failed run's sighting is the last observation of hour 12 ...
    assert a[hour("12")].last_sampled_at_ms == at("12:20")
    assert a[hour("12")].traits["state"] == "SHUTOFF"
    # ... and estimated hours carry the last observation before the gap.
    assert a[hour("13")].last_sampled_at_ms == at("12:20")
    assert a[hour("13")].traits["state"] == "SHUTOFF"
    assert b[hour("13")].last_sampled_at_ms == at("12:15")


def test_sampler_outage_13_to_15_estimates_hours_13_14_for_survivors_only() -> None:
    driver = Driver()
    runs = [
        *every_5_min("12:00", "12:55", ["a", "b"]),
        *every_5_min("15:00", "16:10", ["a", "c"]),
    ]
    driver.feed(events_of(runs))

    assert counts(driver, "a") == {
        "12": (12, 12, False),
        "13": (0, 0, True),
        "14": (0, 0, True),
        "15": (12, 12, False),
    }
    assert counts(driver, "b") == {"12": (12, 12, False)}  # deleted in the outage
    assert counts(driver, "c") == {"15": (12, 12, False)}  # created in the outage
    assert driver.by_hour("a")[hour("14")].last_sampled_at_ms == at("12:55")


def test_late_snapshot_after_close_yields_revision_2_with_the_same_usage_id() -> None:
    driver = Driver()
    driver.feed(events_of(every_5_min("10:00", "11:10", ["r"])))
    (first,) = driver.by_hour("r").values()
    assert (first.revision, first.traits["state"]) == (1, "ACTIVE")

    late = sighting("r", at("10:58"), run="failed-run", traits=server_traits("SHUTOFF"))
    (second,) = driver.feed([late])
    assert second.usage_id == first.usage_id
    assert second.revision == 2
    assert second.traits["state"] == "SHUTOFF"
    assert second.last_sampled_at_ms == at("10:58")
    assert (second.samples_observed, second.samples_expected) == (12, 12)

    # The same snapshot again, or an older one, changes nothing.
    assert driver.feed([late]) == []
    assert driver.feed([sighting("r", at("10:30"), run="other-failed-run")]) == []


def test_late_snapshot_of_an_unbilled_resource_yields_revision_1() -> None:
    driver = Driver()
    driver.feed(events_of(every_5_min("10:00", "11:10", ["r"])))
    (record,) = driver.feed([sighting("x", at("10:59"), run="failed-run")])
    assert record.resource_id == "x"
    assert (record.revision, record.samples_observed, record.samples_expected) == (
        1,
        0,
        12,
    )


def test_empty_partition_still_closes_its_hours() -> None:
    driver = Driver()
    driver.feed(events_of(every_5_min("10:00", "12:10", [])))

    clock = driver.store.clocks[SCOPE]
    assert clock.open_from_ms == hour("12") == first_open_hour(at("12:10"), 300_000)
    # The first marker (10:00) left 09:00 open: it closed at 10:10.
    closed = [h for step in driver.steps for h in step.closed_hours]
    assert closed == [hour("09"), hour("10"), hour("11")]


def test_partition_whose_resources_are_gone_still_publishes_their_last_hour() -> None:
    driver = Driver()
    runs = every_5_min("10:00", "12:10", [])
    for run in runs:
        if run.instant_ms <= at("11:00"):
            run.seen = ["b"]
    driver.feed(events_of(runs))
    assert counts(driver, "b") == {"10": (12, 12, False), "11": (1, 12, False)}


def test_sightings_of_failed_runs_bill_the_hour_without_counting_as_observed() -> None:
    driver = Driver()
    runs = [
        Run(at("10:20"), ["r"], completed=False),
        *every_5_min("10:30", "11:10", []),
    ]
    driver.feed(events_of(runs))
    # The failed run saw r; the completed 10:30 run did not and ended its life.
    assert counts(driver, "r") == {"10": (0, 6, False)}


def test_a_sighting_after_the_life_ended_starts_a_new_life_without_estimates() -> None:
    driver = Driver()
    runs = [
        *every_5_min("10:00", "10:55", ["r"]),
        # The sampler is down for hours 11 and 12; the first run after the
        # gap completes without r, which ends r's life before r shows again.
        *every_5_min("13:05", "13:05", []),
        *every_5_min("13:10", "14:10", ["r"]),
    ]
    driver.feed(events_of(runs))
    assert counts(driver, "r") == {"10": (12, 12, False), "13": (10, 11, False)}


def test_gap_fill_can_be_turned_off_and_is_bounded() -> None:
    runs = [
        *every_5_min("10:00", "10:55", ["r"]),
        *every_5_min("13:00", "14:10", ["r"]),
    ]
    off = Driver(settings=MeterSettings(gap_fill=False))
    off.feed(events_of(runs))
    assert counts(off, "r") == {"10": (12, 12, False), "13": (12, 12, False)}

    bounded = Driver(settings=MeterSettings(gap_fill_max_hours=1))
    bounded.feed(events_of(runs))
    assert counts(bounded, "r") == counts(off, "r")
    assert max(step.unfilled_gap_hours for step in bounded.steps) == 2


def test_trait_policies_first_and_max() -> None:
    runs = [
        Run(at("10:00"), ["v"], traits={"v": server_traits(vcpu=4)}),
        Run(at("10:30"), ["v"], traits={"v": server_traits("SHUTOFF", vcpu=2)}),
        *every_5_min("11:00", "11:10", ["v"]),
    ]
    first = Driver(settings=MeterSettings(trait_policy="first"))
    first.feed(events_of(runs))
    record = first.by_hour("v")[hour("10")]
    assert (record.traits["vcpu"], record.last_sampled_at_ms) == (4, at("10:00"))

    largest = Driver(settings=MeterSettings(trait_policy="max"))
    largest.feed(events_of(runs))
    record = largest.by_hour("v")[hour("10")]
    assert (record.traits["vcpu"], record.traits["state"]) == (4, "SHUTOFF")
    assert record.last_sampled_at_ms == at("10:30")


def test_snapshot_beyond_the_correction_horizon_is_rejected() -> None:
    driver = Driver(settings=MeterSettings(correction_horizon_hours=1))
    driver.feed(events_of(every_5_min("10:00", "12:10", ["r"])))
    # Hour 12 is open, 11 can be corrected, 10 is beyond the horizon.
    assert driver.feed([sighting("r", at("10:58"), run="late")]) == []
    assert len(driver.rejected) == 1
    assert "beyond the correction horizon of 1 h" in driver.rejected[0]
    assert len(driver.feed([sighting("r", at("11:58"), run="late")])) == 1


def test_markers_for_closed_hours_and_repeated_markers_change_nothing() -> None:
    driver = Driver()
    driver.feed(events_of(every_5_min("10:00", "11:10", ["r"])))
    before = driver.store.copy()

    late_run = driver.step(marker(at("10:40"), run="straggler"))
    assert late_run.late_run and not late_run.writes and not late_run.usage
    again = driver.step(marker(at("11:10")))
    assert again.duplicate and not again.writes
    assert driver.store.resources == before.resources


def test_state_is_forgotten_once_lives_end_and_hours_leave_the_horizon() -> None:
    driver = Driver(settings=MeterSettings(correction_horizon_hours=1))
    runs = [
        *every_5_min("10:00", "10:30", ["a", "b"]),
        *every_5_min("10:35", "13:10", []),
    ]
    driver.feed(events_of(runs))
    assert driver.store.resources == {}
    assert driver.store.emitted_hours == {}
    assert set(driver.store.clock(SCOPE).runs) == {hour("12"), hour("13")}  # type: ignore[union-attr]


def test_usage_id_is_sha256_of_platform_type_resource_and_hour() -> None:
    text = "openstack.test-1|nova.server|r1|2025-03-03T10:00:00Z"
    expected = hashlib.sha256(text.encode()).hexdigest()[:32]
    assert usage_id(PLATFORM, SERVER, "r1", hour("10")) == expected
    assert len(expected) == 32
