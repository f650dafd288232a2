"""How fast the OpenStack simulator serves a large listing, and what each
client layer adds on top.

Generates N servers (100,000 by default), serves them from a background thread
and measures in the same run, on the same data:

- render: building every page in-process (no HTTP), the simulator's own cost;
- baseline: a plain paginated HTTP listing with requests (JSON parsed);
- sdk-adapter: the same pages through openstacksdk's compute adapter
  (keystoneauth session, microversion header), following ``servers_links``;
- sdk-resources: ``conn.compute.servers(details=True, all_projects=True)`` on
  the first M servers (5,000 by default), extrapolated per server, because
  openstacksdk builds a Resource object per server at a cost that dwarfs the
  rest.

Prints seconds, servers per second and each figure's ratio to the baseline.
Absolute figures depend on the machine. Run:
``.venv/bin/python benchmarks/simulator_listing.py [--servers N] [--sdk-servers M]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path

import openstack.config
import openstack.connection
import requests

from stackmeter.simulator import DEFAULT_CLOUD, Simulator, generate_scenario
from stackmeter.simulator.listing import ROUTES, listing_body
from stackmeter.simulator.runner import run_simulator
from stackmeter.simulator.views import ViewContext

SERVERS_ROUTE = next(r for r in ROUTES if r.path.endswith("/servers/detail"))


def render_all(simulator: Simulator, page_size: int) -> int:
    """Build every page in-process; returns the number of servers."""
    state = simulator.state
    index = state.kinds["servers"]
    ts = simulator.clock.now_ts()
    ctx = ViewContext(state, "http://bench/compute/v2.1", ts, (2, 96), "user")
    marker: str | None = None
    count = 0
    while True:
        found, more = index.page(ts, marker, page_size)
        items = [SERVERS_ROUTE.view(ctx, timeline, obj) for timeline, obj in found]
        next_marker = found[-1][1].id if more else None
        listing_body(SERVERS_ROUTE, items, next_marker, "http://bench/x", {})
        count += len(items)
        if next_marker is None:
            return count
        marker = next_marker


def plain_listing(connection: openstack.connection.Connection, base_url: str) -> int:
    """Page through the servers with requests alone; returns the count."""
    token = connection.session.get_token()
    headers = {"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.96"}
    url: str | None = f"{base_url}/compute/v2.1/servers/detail?all_tenants=True"
    count = 0
    with requests.Session() as session:
        while url:
            body = session.get(url, headers=headers, timeout=60).json()
            count += len(body["servers"])
            links = body.get("servers_links", [])
            url = links[0]["href"] if links else None
    return count


def adapter_listing(connection: openstack.connection.Connection) -> int:
    """Page through the servers with openstacksdk's compute adapter."""
    url: str | None = "/servers/detail?all_tenants=True"
    count = 0
    while url:
        body = connection.compute.get(url, microversion="2.96").json()
        count += len(body["servers"])
        links = body.get("servers_links", [])
        url = links[0]["href"] if links else None
    return count


def resource_listing(connection: openstack.connection.Connection, limit: int) -> int:
    """List Server resources with openstacksdk, stopping after ``limit``."""
    servers = connection.compute.servers(details=True, all_projects=True)
    return sum(1 for _, _server in zip(range(limit), servers, strict=False))


def timed(label: str, count: int, seconds: float, baseline_rate: float | None) -> float:
    rate = count / seconds
    ratio = (
        f"  x{baseline_rate / rate:.2f} the baseline's time per server"
        if baseline_rate
        else ""
    )
    print(f"{label:<14} {count:>7} servers {seconds:7.2f} s {rate:>9.0f}/s{ratio}")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=100_000)
    parser.add_argument("--sdk-servers", type=int, default=5_000)
    parser.add_argument("--page-size", type=int, default=1000)
    args = parser.parse_args()
    # openstacksdk warns about its own internals on every resource it builds.
    warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="openstack")

    began = time.perf_counter()
    scenario = generate_scenario(servers=args.servers, projects=50, seed=1)
    print(f"generate       {time.perf_counter() - began:7.2f} s")
    with (
        tempfile.TemporaryDirectory() as folder,
        run_simulator(scenario, max_page_size=args.page_size) as simulator,
    ):
        simulator.clock.set(scenario.start + timedelta(hours=1))
        clouds_yaml = simulator.write_clouds_yaml(Path(folder) / "clouds.yaml")
        region = openstack.config.OpenStackConfig(
            config_files=[str(clouds_yaml)], load_envvars=False
        ).get_one(cloud=DEFAULT_CLOUD)
        connection = openstack.connection.Connection(config=region)
        try:
            connection.compute.get_endpoint()

            began = time.perf_counter()
            count = plain_listing(connection, simulator.base_url)
            baseline = timed("baseline", count, time.perf_counter() - began, None)

            began = time.perf_counter()
            count = render_all(simulator, args.page_size)
            timed("render", count, time.perf_counter() - began, baseline)

            began = time.perf_counter()
            count = adapter_listing(connection)
            timed("sdk-adapter", count, time.perf_counter() - began, baseline)

            began = time.perf_counter()
            count = resource_listing(connection, args.sdk_servers)
            elapsed = time.perf_counter() - began
            rate = timed("sdk-resources", count, elapsed, baseline)
            projected_s = args.servers / rate
            print(f"sdk-resources at {args.servers} servers: about {projected_s:.0f} s")
        finally:
            connection.close()


if __name__ == "__main__":
    main()
