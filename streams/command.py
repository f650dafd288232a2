"""The ``stackmeter worker`` command: hourly usage from snapshots, and rating."""

from __future__ import annotations

import argparse
from typing import Any

from stackmeter.config import load_config
from stackmeter.metrics import serve_metrics

DESCRIPTION = """\
Consume every snapshot topic, close event-time hours as run markers advance
stream time, and publish one usage record per resource and hour to the usage
topic (compacted, keyed by usage id). With worker.rating (the default) the
same process prices usage with the product catalog.

Start several workers with the same worker.app_id to split the partitions;
each needs its own worker.data_dir. Stops on SIGINT or SIGTERM.
"""


def register(subparsers: Any) -> None:
    """Add ``worker`` to the ``stackmeter`` command."""
    parser = subparsers.add_parser(
        "worker",
        help="turn snapshots into hourly usage and rate it",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--no-rating",
        action="store_true",
        help="run the usage stage only (overrides worker.rating)",
    )
    parser.set_defaults(run=run_worker_command)


def run_worker_command(args: argparse.Namespace) -> int:
    """Run the command; returns the exit code."""
    # Faust is imported here, not at registration, so that other commands
    # do not pay for it.
    from stackmeter.streams.runner import (  # noqa: PLC0415
        run_worker,
        validate_worker_config,
    )

    config = load_config(args.config)
    if args.no_rating:
        config.worker.rating = False
    validate_worker_config(config)
    serve_metrics(config.metrics)
    run_worker(config)
    return 0
