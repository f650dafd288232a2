"""The Prometheus endpoint every long-running stackmeter process can expose."""

from __future__ import annotations

import logging

from prometheus_client import start_http_server

from stackmeter.config import MetricsConfig

logger = logging.getLogger(__name__)


def serve_metrics(config: MetricsConfig) -> None:
    """Serve /metrics on the configured port; port 0 leaves it off."""
    if config.port == 0:
        return
    start_http_server(config.port, addr=config.host)
    logger.info("metrics on http://%s:%d/metrics", config.host, config.port)
