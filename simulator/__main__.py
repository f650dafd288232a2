"""Command line of the simulator: serve a scenario file (or a generated one) on
a port, optionally with an accelerated clock for demos.

    python -m stackmeter.simulator --scenario simulator/scenarios/demo.yaml \
        --port 8775 --clock-speed 60 --clouds-yaml var/clouds.yaml
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from stackmeter.errors import ConfigError
from stackmeter.simulator.generate import generate_scenario
from stackmeter.simulator.scenario import Scenario
from stackmeter.simulator.scenario_io import load_scenario
from stackmeter.simulator.server import DEFAULT_CLOUD, Simulator

logger = logging.getLogger(__name__)

_GENERATE_KEYS = (
    "servers",
    "volumes",
    "snapshots",
    "images",
    "floating_ips",
    "routers",
    "load_balancers",
    "projects",
    "seed",
)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, serve until interrupted; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        scenario = (
            load_scenario(args.scenario) if args.scenario else _generated(args.generate)
        )
        simulator = Simulator(
            scenario, max_page_size=args.max_page_size, clock_speed=args.clock_speed
        )
    except (ConfigError, ValueError) as exc:
        print(f"stackmeter.simulator: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_serve(simulator, args))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stackmeter.simulator",
        description="Serve a simulated OpenStack cloud for openstacksdk clients.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--scenario", help="scenario file (YAML or JSON)")
    source.add_argument(
        "--generate",
        metavar="SPEC",
        help="generate a scenario, e.g. servers=100000,volumes=5000,seed=1",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8775)
    parser.add_argument(
        "--clock-speed",
        type=float,
        default=0.0,
        help="simulated seconds per real second from the scenario start "
        "(0 freezes the clock; move it with POST /_sim/clock)",
    )
    parser.add_argument("--max-page-size", type=int, default=1000)
    parser.add_argument("--clouds-yaml", help="write a clouds.yaml for this server")
    parser.add_argument("--cloud", default=DEFAULT_CLOUD, help="cloud name in it")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def _generated(spec: str) -> Scenario:
    counts: dict[str, int] = {}
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        if key.strip() not in _GENERATE_KEYS:
            raise ValueError(
                f"--generate: unknown key {key!r}, expected some of {_GENERATE_KEYS}"
            )
        try:
            counts[key.strip()] = int(value)
        except ValueError:
            raise ValueError(f"--generate: {key}: expected an integer") from None
    return generate_scenario(
        servers=counts.get("servers", 0),
        volumes=counts.get("volumes", 0),
        snapshots=counts.get("snapshots", 0),
        images=counts.get("images", 0),
        floating_ips=counts.get("floating_ips", 0),
        routers=counts.get("routers", 0),
        load_balancers=counts.get("load_balancers", 0),
        projects=counts.get("projects", 10),
        seed=counts.get("seed", 0),
    )


async def _serve(simulator: Simulator, args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    base_url = await simulator.start(args.host, args.port)
    if args.clouds_yaml:
        path = simulator.write_clouds_yaml(args.clouds_yaml, args.cloud)
        logger.info("clouds.yaml written path=%s cloud=%s", path, args.cloud)
    print(
        f"simulator listening on {base_url} (auth_url {simulator.auth_url})",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await simulator.stop()


if __name__ == "__main__":
    sys.exit(main())
