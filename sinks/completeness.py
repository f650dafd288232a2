"""How many sampling runs an hour should have, recorded beside the runs that did.

The ``metering_completeness`` view divides the completed runs of each hour
(from the run markers) by the expectation valid in that hour. The sink records
the expectation at start, from its own setting or the sampler's interval, and
records a new one from the current hour on when the configuration changed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import UTC, datetime

from stackmeter.config import Config
from stackmeter.storage import Storage

logger = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def runs_expected_per_hour(config: Config) -> int:
    """``sink.expected_runs_per_hour``, or one run per sampler interval."""
    if config.sink.expected_runs_per_hour > 0:
        return config.sink.expected_runs_per_hour
    return max(1, math.floor(3600 / config.sampler.interval_s))


def record_expectations(
    storage: Storage,
    database: str,
    resource_types: Sequence[str],
    runs_per_hour: int,
    now: datetime,
) -> list[str]:
    """Store the expectation for each type where it is new or changed.

    A type's first expectation is valid from the epoch, so hours sampled
    before the sink first ran are measured too; a changed one is valid from
    the start of the current hour. Returns the types written.
    """
    result = storage.query(
        "SELECT resource_type, argMax(runs_expected_per_hour, valid_from) "
        f"FROM {database}.metering_expectations FINAL GROUP BY resource_type"
    )
    current = {str(name): int(runs) for name, runs in result.rows}
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    rows = []
    for type_id in resource_types:
        if type_id not in current:
            rows.append((type_id, _EPOCH, runs_per_hour))
        elif current[type_id] != runs_per_hour:
            rows.append((type_id, hour, runs_per_hour))
    if rows:
        storage.insert(
            f"{database}.metering_expectations",
            ("resource_type", "valid_from", "runs_expected_per_hour"),
            rows,
        )
        logger.info(
            "recorded expected runs per hour runs=%d types=%s",
            runs_per_hour,
            [row[0] for row in rows],
        )
    return [row[0] for row in rows]
