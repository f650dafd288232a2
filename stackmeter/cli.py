"""The ``stackmeter`` command: one subcommand per pipeline stage.

Each stage module adds its own subcommands through ``register``; this module
parses the global options, sets up logging and turns errors into one clear line
and a non-zero exit code instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from stackmeter import __version__
from stackmeter.errors import ConfigError, StackmeterError
from stackmeter.logs import setup_logging

logger = logging.getLogger(__name__)

# Modules that define ``register(subparsers)``; each adds its subcommands.
COMMAND_MODULES: tuple[str, ...] = (
    "stackmeter.producers.command",
    "stackmeter.sinks.command",
    "stackmeter.streams.catalog_command",
    "stackmeter.streams.command",
    "stackmeter.up",
)

DESCRIPTION = """\
stackmeter meters OpenStack usage per hour for billing.

The pipeline: `sample` lists every billable resource through the OpenStack
APIs and publishes Avro snapshots to Kafka; `worker` turns them into hourly
usage with an existence check and prices it with the product catalog; `sink`
stores usage in ClickHouse; `report` prints a month's costs. `catalog` checks
and previews a product catalog; `up` runs everything on one machine against
a simulated cloud. `stackmeter COMMAND --help` explains each command.
"""

EPILOG = """\
Configuration comes from --config FILE (YAML) and from environment variables
STACKMETER_<SECTION>_<FIELD>, e.g. STACKMETER_KAFKA_BOOTSTRAP_SERVERS. Every
problem in it is reported at start, one line each, naming the file and field.
"""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every stage's subcommands."""
    parser = argparse.ArgumentParser(
        prog="stackmeter",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument(
        "--config", metavar="FILE", help="YAML configuration file (default: none)"
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (default: INFO)",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one stackmeter command; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    run = getattr(args, "run", None)
    if run is None:
        parser.print_help()
        return 2
    try:
        code: int = run(args)
    except ConfigError as exc:
        print(f"stackmeter: configuration error:\n{exc}", file=sys.stderr)
        return 2
    except StackmeterError as exc:
        logger.error("stopped: %s", exc)
        return 1
    except KeyboardInterrupt:
        logger.info("interrupted")
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
