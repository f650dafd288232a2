"""The sampler's Prometheus metrics, served by ``stackmeter.metrics.serve_metrics``.

Every metric is labelled by platform and by run name (a resource type id, or
``keystone.project`` for the project listing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from stackmeter.producers.runs import RunResult

_LABELS = ("platform", "type")

RUN_SECONDS = Histogram(
    "stackmeter_sampler_run_duration_seconds",
    "Duration of sampling runs, completed or not.",
    _LABELS,
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
RUN_RESOURCES = Gauge(
    "stackmeter_sampler_run_resources",
    "Resources listed by the latest run.",
    _LABELS,
)
RUN_PAGES = Gauge(
    "stackmeter_sampler_run_pages",
    "API pages read by the latest run.",
    _LABELS,
)
RUNS = Counter(
    "stackmeter_sampler_runs",
    "Sampling runs by outcome: completed (marker published), failed or crashed.",
    (*_LABELS, "outcome"),
)
API_ERRORS = Counter(
    "stackmeter_sampler_api_errors",
    "Runs abandoned because an OpenStack API call failed after retries or "
    "returned an item that cannot be mapped.",
    _LABELS,
)
PUBLISH_ERRORS = Counter(
    "stackmeter_sampler_publish_errors",
    "Runs abandoned because Kafka did not acknowledge a record.",
    _LABELS,
)
LAST_COMPLETED = Gauge(
    "stackmeter_sampler_last_completed_run_timestamp_seconds",
    "Sampling instant of the latest completed run, seconds since the epoch.",
    _LABELS,
)


def record_run(result: RunResult) -> None:
    """Count one run's outcome."""
    labels = (result.platform_id, result.type_id)
    RUN_SECONDS.labels(*labels).observe(result.seconds)
    RUN_RESOURCES.labels(*labels).set(result.resources)
    RUN_PAGES.labels(*labels).set(result.pages)
    if result.completed:
        RUNS.labels(*labels, "completed").inc()
        LAST_COMPLETED.labels(*labels).set(result.sampled_at.timestamp())
        return
    RUNS.labels(*labels, "failed").inc()
    if result.error_kind == "publish":
        PUBLISH_ERRORS.labels(*labels).inc()
    else:
        API_ERRORS.labels(*labels).inc()
