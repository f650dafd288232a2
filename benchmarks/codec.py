"""Single-object encode and decode rates for a server snapshot.

The baseline is plain ``fastavro.schemaless_writer``/``schemaless_reader`` on
the same parsed schema in the same run, so the ratio says what the marker,
fingerprint lookup and error handling cost; absolute rates depend on the
machine. Run: ``.venv/bin/python benchmarks/codec.py [--records N]``.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from datetime import UTC, datetime

from fastavro import schemaless_reader, schemaless_writer

from stackmeter.codec import default_registry

SCHEMA = "stackmeter.snapshot.Server"
RECORD = {
    "envelope": {
        "platform_id": "openstack.eu-west",
        "project_id": "8c1f0b8e2f8f4a43a6b1f6f1d1e1c1b1",
        "resource_id": "4f5a0a8c-3b8e-4c51-9d7c-2c4f3e0f7b11",
        "resource_name": "web-01",
        "run_id": "0b0e5b2e-2a4f-4f44-9f0c-6a8c5d3b2e11",
        "sampled_at": datetime(2026, 11, 2, 10, 0, tzinfo=UTC),
    },
    "traits": {
        "disk": 20,
        "diskEphemeral": 20,
        "diskRoot": 20,
        "flavor": "v4.large",
        "ramMb": 1024,
        "state": "ACTIVE",
        "vcpu": 4,
    },
}


def rate(action: Callable[[], object], count: int) -> float:
    """Calls per second of ``action``, best of three rounds of ``count`` calls."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(count):
            action()
        best = min(best, time.perf_counter() - started)
    return count / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=50_000)
    count = parser.parse_args().records

    registry = default_registry()
    parsed = registry.schema(SCHEMA)
    encoded = registry.encode(SCHEMA, RECORD)
    body = encoded[10:]

    def plain_encode() -> bytes:
        buffer = io.BytesIO()
        schemaless_writer(buffer, parsed, RECORD)
        return buffer.getvalue()

    def plain_decode() -> object:
        return schemaless_reader(io.BytesIO(body), parsed, None)

    rows = [
        (
            "encode",
            rate(lambda: registry.encode(SCHEMA, RECORD), count),
            rate(plain_encode, count),
        ),
        (
            "decode",
            rate(lambda: registry.decode(encoded), count),
            rate(plain_decode, count),
        ),
    ]
    print(f"server snapshot, {len(encoded)} bytes single-object, {count} records")
    print(f"{'op':<8}{'stackmeter/s':>14}{'fastavro/s':>14}{'ratio':>8}")
    for op, ours, plain in rows:
        print(f"{op:<8}{ours:>14,.0f}{plain:>14,.0f}{ours / plain:>8.2f}")


if __name__ == "__main__":
    main()
