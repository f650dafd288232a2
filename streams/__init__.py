"""Stream processing: the worker that turns snapshots into hourly usage
(DESIGN.md §3 and §4), and the rating stage that prices it.

The billing logic (:mod:`~stackmeter.streams.existence`) loads without Faust;
the Faust app (:mod:`~stackmeter.streams.app`) and its runner
(:mod:`~stackmeter.streams.runner`) are imported only by the worker.
"""

from stackmeter.streams.existence import (
    MeterSettings,
    PartitionMeter,
    RunCompleted,
    Sighting,
    Step,
)
from stackmeter.streams.hours import UsageRecord, usage_id

__all__ = [
    "MeterSettings",
    "PartitionMeter",
    "RunCompleted",
    "Sighting",
    "Step",
    "UsageRecord",
    "usage_id",
]
