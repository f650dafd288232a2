"""The usage worker's Prometheus metrics, served by
``stackmeter.metrics.serve_metrics``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

MESSAGES = Counter(
    "stackmeter_worker_messages",
    "Snapshot-topic messages processed, by kind: snapshot, marker or unreadable.",
    ("kind",),
)
USAGE_RECORDS = Counter(
    "stackmeter_worker_usage_records",
    "Usage records published, by kind: first (revision 1), correction or "
    "estimated (a gap hour).",
    ("kind",),
)
DEAD_LETTERS = Counter(
    "stackmeter_worker_dead_letters",
    "Messages sent to the dead-letter topic, by reason: unreadable or too_late.",
    ("reason",),
)
LATE_RUNS = Counter(
    "stackmeter_worker_late_run_markers",
    "Run markers for hours already closed, treated as failed runs.",
)
LIVES_ENDED = Counter(
    "stackmeter_worker_lives_ended",
    "Resources a completed run no longer saw.",
)
HOURS_CLOSED = Counter(
    "stackmeter_worker_hours_closed",
    "Hours closed, counted once per partition, platform and resource type.",
)
UNFILLED_GAPS = Counter(
    "stackmeter_worker_unfilled_gaps",
    "Sampling gaps longer than gap_fill_max_h, left without estimated usage.",
)
STREAM_TIME = Gauge(
    "stackmeter_worker_stream_time_seconds",
    "Latest run marker instant per platform and resource type (any partition).",
    ("platform", "type"),
)
PUBLISH_RETRIES = Counter(
    "stackmeter_worker_publish_retries",
    "Failed attempts to publish usage or dead letters, each retried.",
)
