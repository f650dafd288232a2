"""Sampling rate of ``nova.server`` from the OpenStack simulator into Kafka.

Starts its own Kafka broker (LocalKafka) and, in a child process so that it
does not share this process's interpreter lock, the simulator with N generated
servers (100,000 by default, all existing at the simulated now); then measures,
alternating, in the same run and on the same data:

- baseline: a plain paginated HTTP listing (requests, one token, following
  ``servers_links``; JSON parsed, nothing else done with the items);
- sampler: one complete sampler run (openstacksdk session, mapping, Avro
  encoding, idempotent lz4 producer with acks=all, markers after every ack).

It prints resources per second for each round and the ratio sampler / baseline
of the best rates; the simulator's own serving cost is in both, so the ratio is
the figure to watch. Absolute rates depend on the machine. Run:
``.venv/bin/python benchmarks/sample_servers.py [--servers N] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from stackmeter.config import Config, KafkaConfig, PlatformConfig, SamplerConfig
from stackmeter.local_kafka import LocalKafka
from stackmeter.producers import HttpClock, RunResult, Sampler
from stackmeter.producers.collectors import COMPUTE_MICROVERSION
from stackmeter.simulator import Simulator, generate_scenario

CLOUD = "bench"
START_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class SimulatorProcess:
    """A simulator serving in a child process: its URL and clouds.yaml."""

    base_url: str
    clouds_yaml: Path
    auth: dict[str, Any]


@contextlib.contextmanager
def simulator_process(
    servers: int, page_size: int, folder: Path
) -> Iterator[SimulatorProcess]:
    """Serve a generated cloud from a child process (this script with
    ``--serve``) on a free port; stop it after."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clouds_yaml = folder / "clouds.yaml"
    command = [
        sys.executable,
        __file__,
        "--serve",
        str(clouds_yaml),
        "--port",
        str(port),
        "--servers",
        str(servers),
        "--page-size",
        str(page_size),
    ]
    process = subprocess.Popen(command)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        # The child writes clouds.yaml once it is listening.
        while not clouds_yaml.exists():
            if process.poll() is not None:
                raise SystemExit(f"the simulator exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise SystemExit("the simulator did not start in time")
            time.sleep(0.2)
        auth = yaml.safe_load(clouds_yaml.read_text())["clouds"][CLOUD]["auth"]
        base_url = auth["auth_url"].removesuffix("/identity/v3")
        yield SimulatorProcess(base_url, clouds_yaml, auth)
    finally:
        process.terminate()
        process.wait(30)


async def serve(clouds_yaml: Path, port: int, servers: int, page_size: int) -> None:
    """The child's part: every server exists for the whole run (no churn)."""
    scenario = generate_scenario(servers=servers, routers=1, projects=50, churn=0)
    simulator = Simulator(scenario, max_page_size=page_size)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await simulator.start("127.0.0.1", port)
    written = simulator.write_clouds_yaml(clouds_yaml.with_suffix(".tmp"), CLOUD)
    written.rename(clouds_yaml)
    try:
        await stop.wait()
    finally:
        await simulator.stop()


def plain_listing(
    simulator: SimulatorProcess, page_size: int
) -> tuple[int, int, float]:
    """(servers, pages, seconds) of a bare paginated listing over HTTP."""
    auth = simulator.auth
    session = requests.Session()
    password_auth = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": auth["username"],
                        "password": auth["password"],
                        "domain": {"name": auth["user_domain_name"]},
                    }
                },
            },
            "scope": {
                "project": {
                    "name": auth["project_name"],
                    "domain": {"name": auth["project_domain_name"]},
                }
            },
        }
    }
    token = session.post(
        f"{auth['auth_url']}/auth/tokens", json=password_auth, timeout=30
    )
    token.raise_for_status()
    session.headers["X-Auth-Token"] = token.headers["X-Subject-Token"]
    session.headers["OpenStack-API-Version"] = f"compute {COMPUTE_MICROVERSION}"
    url: str | None = (
        f"{simulator.base_url}/compute/v2.1/servers/detail"
        f"?all_tenants=True&limit={page_size}"
    )
    servers = pages = 0
    started = time.perf_counter()
    while url is not None:
        response = session.get(url, timeout=60)
        response.raise_for_status()
        body = response.json()
        servers += len(body["servers"])
        pages += 1
        links = [x for x in body.get("servers_links", ()) if x.get("rel") == "next"]
        url = links[0]["href"] if links else None
    return servers, pages, time.perf_counter() - started


@dataclass(frozen=True)
class Round:
    """One plain listing and one sampler run, measured back to back."""

    listed: int
    pages: int
    listing_s: float
    run: RunResult

    @property
    def baseline_rate(self) -> float:
        return self.listed / self.listing_s

    @property
    def sampler_rate(self) -> float:
        return self.run.resources / self.run.seconds


async def measure(
    config: Config, simulator: SimulatorProcess, page_size: int, rounds: int
) -> list[Round]:
    """``rounds`` of a plain listing followed by a sampler run of nova.server,
    on the simulator's clock, alternating so that both see the same load."""
    platform = config.sampler.platforms[0]
    results = []
    async with Sampler(config, platform, HttpClock(simulator.base_url)) as sampler:
        # A tiny run first, so that authentication, version discovery, topic
        # leadership and the producer's first metadata fetch are not measured.
        await sampler.sample("neutron.router")
        for _ in range(rounds):
            listed, pages, listing_s = await asyncio.to_thread(
                plain_listing, simulator, page_size
            )
            run = await sampler.sample("nova.server")
            if not run.completed:
                raise SystemExit(f"the sampler run failed: {run.error}")
            results.append(Round(listed, pages, listing_s, run))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.serve:
        asyncio.run(serve(args.serve, args.port, args.servers, args.page_size))
        return

    with (
        tempfile.TemporaryDirectory() as folder,
        LocalKafka() as broker,
        simulator_process(args.servers, args.page_size, Path(folder)) as simulator,
    ):
        config = Config(
            kafka=KafkaConfig(
                bootstrap_servers=broker.bootstrap_servers,
                topic_prefix="bench",
                partitions=args.partitions,
            ),
            sampler=SamplerConfig(
                clouds_yaml=str(simulator.clouds_yaml),
                page_size=args.page_size,
                platforms=[PlatformConfig(cloud=CLOUD, platform_id="openstack.bench")],
            ),
        )
        rounds = asyncio.run(measure(config, simulator, args.page_size, args.rounds))

    for number, measured in enumerate(rounds, 1):
        run = measured.run
        print(
            f"round {number}: plain HTTP listing {measured.listed} servers, "
            f"{measured.pages} pages, {measured.listing_s:.2f} s = "
            f"{measured.baseline_rate:,.0f}/s; sampler {run.resources} servers, "
            f"{run.pages} pages, {run.seconds:.2f} s, {run.published} acked = "
            f"{measured.sampler_rate:,.0f}/s; ratio "
            f"{measured.sampler_rate / measured.baseline_rate:.2f}"
        )
    best_baseline = max(r.baseline_rate for r in rounds)
    best_sampler = max(r.sampler_rate for r in rounds)
    print(f"plain paginated HTTP listing (best): {best_baseline:,.0f} servers/s")
    print(f"sampler into Kafka (best):           {best_sampler:,.0f} servers/s")
    print(f"ratio sampler / plain listing:       {best_sampler / best_baseline:.2f}")


if __name__ == "__main__":
    main()
