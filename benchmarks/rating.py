"""Rating rate of the worker's rating stage, against the codec work around it.

For a mix of usage records (servers, volumes, load balancers, routers) priced
by ``catalog/example.yaml``, it measures records per second of

- the baseline: decoding the Usage message and encoding the rated records
  (already computed), which any rating stage must do;
- ``rate()`` alone;
- the whole per-message step the agent runs (``Rater.handle``: decode, rate,
  encode).

The ratio of the whole step to the baseline says what pricing adds to the
unavoidable codec work; absolute rates depend on the machine. Run:
``.venv/bin/python benchmarks/rating.py [--records N]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stackmeter.codec import default_registry
from stackmeter.streams.rating import RATED_SCHEMA, USAGE_SCHEMA, rate
from stackmeter.streams.rating_stage import LiveCatalog, Rater, Source

EXAMPLE = Path(__file__).resolve().parents[1] / "catalog" / "example.yaml"
HOUR = datetime(2026, 3, 2, 10, tzinfo=UTC)
TRAITS: list[tuple[str, dict[str, Any]]] = [
    (
        "nova.server",
        {
            "disk": 80,
            "diskEphemeral": 0,
            "diskRoot": 80,
            "flavor": "v8.xlarge",
            "ramMb": 16384,
            "state": "ACTIVE",
            "vcpu": 8,
        },
    ),
    ("cinder.volume", {"size": 100, "status": "in-use", "type": "ssd"}),
    ("neutron.load_balancer", {"listeners": 3, "operatingStatus": "ONLINE"}),
    ("neutron.router", {}),
]


def usage(index: int) -> dict[str, Any]:
    type_id, traits = TRAITS[index % len(TRAITS)]
    return {
        "usage_id": f"u-{index}",
        "revision": 1,
        "platform_id": "openstack.eu-west",
        "resource_type": type_id,
        "project_id": "acme-prod" if index % 5 == 0 else "p-1",
        "resource_id": f"r-{index}",
        "resource_name": "",
        "hour_start": HOUR,
        "samples_observed": 12,
        "samples_expected": 12,
        "estimated": False,
        "traits": traits,
        "last_sampled_at": HOUR,
    }


def per_second(action: Callable[[], object], count: int) -> float:
    """Records per second of ``action`` over ``count`` records, best of three."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return count / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    count = parser.parse_args().records

    registry = default_registry()
    live = LiveCatalog(EXAMPLE)
    rater = Rater(live, registry)
    records = [usage(index) for index in range(count)]
    messages = [registry.encode(USAGE_SCHEMA, record) for record in records]
    rated = [rate(record, live.current) for record in records]
    source = Source("stackmeter.usage", 0, 0)

    def codec_only() -> None:
        for message, charges in zip(messages, rated, strict=True):
            registry.decode(message)
            for charge in charges:
                registry.encode(RATED_SCHEMA, charge)

    def rating_only() -> None:
        for record in records:
            rate(record, live.current)

    def whole_step() -> None:
        for message in messages:
            rater.handle(b"k", message, source)

    charges = sum(len(c) for c in rated)
    baseline = per_second(codec_only, count)
    pricing = per_second(rating_only, count)
    step = per_second(whole_step, count)
    print(f"usage records: {count}, charges: {charges}")
    print(f"baseline, decode usage + encode charges: {baseline:12,.0f} records/s")
    print(f"rate() alone:                            {pricing:12,.0f} records/s")
    print(f"whole step (Rater.handle):               {step:12,.0f} records/s")
    print(f"whole step / baseline time ratio:        {baseline / step:12.2f}")


if __name__ == "__main__":
    main()
