"""The ``stackmeter sample`` command: check the configuration and clouds.yaml,
serve metrics, then sample once or on the interval until stopped."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

from stackmeter.config import Config, PlatformConfig, load_config
from stackmeter.errors import ConfigError
from stackmeter.metrics import serve_metrics
from stackmeter.producers.clock import Clock, HttpClock
from stackmeter.producers.clouds import check_platforms
from stackmeter.producers.runs import RunResult
from stackmeter.producers.sampler import run_sampler, sample_once
from stackmeter.resources import RESOURCE_TYPE_IDS

logger = logging.getLogger(__name__)

DESCRIPTION = """\
List every billable resource of an OpenStack cloud through its APIs and publish
one Avro snapshot per resource to Kafka, then a run marker to every partition
of the type's topic. Keystone projects are published alongside.

Without --once it samples on sampler.interval_s (plus up to sampler.jitter_s)
until SIGINT or SIGTERM; a run that fails publishes no marker and is tried
again at the next interval.
"""


def register(subparsers: Any) -> None:
    """Add ``sample`` to the ``stackmeter`` command."""
    parser = subparsers.add_parser(
        "sample",
        help="sample OpenStack resources into Kafka",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--cloud",
        metavar="NAME",
        help="clouds.yaml cloud to sample (default: every sampler.platforms "
        "entry); its platform id comes from sampler.platforms, or is "
        "openstack.NAME when no entry names it",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="one run of each type, then exit; exit code 1 if any run failed",
    )
    parser.add_argument(
        "--types",
        nargs="+",
        metavar="TYPE",
        choices=RESOURCE_TYPE_IDS,
        help=f"resource types to sample (default: sampler.types); one or more "
        f"of {', '.join(RESOURCE_TYPE_IDS)}",
    )
    parser.add_argument(
        "--clock-url",
        metavar="URL",
        help="take run instants and the interval from the OpenStack simulator's "
        "clock at URL (its GET URL/_sim/clock) instead of the wall clock: for "
        "demos and tests on an accelerated simulated cloud, never for a real one",
    )
    parser.set_defaults(run=run_sample)


def run_sample(args: argparse.Namespace) -> int:
    """Run the command; returns the exit code."""
    config = load_config(args.config)
    if args.types:
        config.sampler.types = list(args.types)
    platforms = _platforms(config, args.cloud)
    _validate(config, platforms)
    clock = _simulator_clock(args.clock_url) if args.clock_url else None
    serve_metrics(config.metrics)
    if args.once:
        results = asyncio.run(_sample_once(config, platforms, clock))
        failed = [result for result in results if not result.completed]
        logger.info("sampled once runs=%d failed=%d", len(results), len(failed))
        return 1 if failed else 0
    asyncio.run(_run_until_signalled(config, platforms, clock))
    return 0


def _simulator_clock(url: str) -> Clock:
    """The simulator's clock, read once now so a wrong URL fails at start."""
    clock = HttpClock(url)
    try:
        now = clock.now()
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"--clock-url {url}: cannot read the simulator's clock: {exc}"
        ) from exc
    logger.info("runs follow the simulator's clock url=%s now=%s", url, now)
    return clock


def _platforms(config: Config, cloud: str | None) -> list[PlatformConfig]:
    configured = config.sampler.platforms
    if cloud is None:
        return list(configured)
    named = [platform for platform in configured if platform.cloud == cloud]
    return named or [PlatformConfig(cloud=cloud, platform_id=f"openstack.{cloud}")]


def _validate(config: Config, platforms: list[PlatformConfig]) -> None:
    """Every problem of the configuration and of clouds.yaml, one line each."""
    lines: list[str] = []
    try:
        config.validate("kafka", "sampler", "metrics")
    except ConfigError as exc:
        lines.append(str(exc))
    if not platforms:
        lines.append(
            f"{config.source}: sampler.platforms: no platform configured; "
            "add one or name a cloud with --cloud"
        )
    else:
        try:
            check_platforms(config.sampler, platforms, config.source)
        except ConfigError as exc:
            lines.append(str(exc))
    if lines:
        raise ConfigError("\n".join(lines))


async def _sample_once(
    config: Config, platforms: list[PlatformConfig], clock: Clock | None
) -> list[RunResult]:
    per_platform = await asyncio.gather(
        *(sample_once(config, platform, clock) for platform in platforms)
    )
    return [result for results in per_platform for result in results]


async def _run_until_signalled(
    config: Config, platforms: list[PlatformConfig], clock: Clock | None
) -> None:
    """Sample until the first SIGINT/SIGTERM lets runs in progress finish; a
    second one cancels them."""
    stop = asyncio.Event()
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set() and main is not None:
            logger.warning("second signal: cancelling runs in progress")
            main.cancel()
            return
        logger.info("stopping after the runs in progress")
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    try:
        await asyncio.gather(
            *(run_sampler(config, platform, clock, stop) for platform in platforms)
        )
    except asyncio.CancelledError:
        logger.info("sampling cancelled")
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
