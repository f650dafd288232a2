"""Fixtures for the simulator's tests: the demo scenario, a simulator running in
a background thread, and openstacksdk connections made from a real clouds.yaml."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openstack
import openstack.config
import openstack.connection
import pytest

from stackmeter.simulator import (
    DEFAULT_CLOUD,
    DEMO_SCENARIO,
    Scenario,
    Simulator,
    load_scenario,
    run_simulator,
)


@pytest.fixture
def demo_scenario() -> Scenario:
    """The demo scenario file, freshly loaded."""
    return load_scenario(DEMO_SCENARIO)


@pytest.fixture
def start_sim() -> Iterator[Callable[..., Simulator]]:
    """Start a simulator in a background thread; it stops when the test ends."""
    with contextlib.ExitStack() as stack:

        def start(scenario: Scenario, **options: Any) -> Simulator:
            return stack.enter_context(run_simulator(scenario, **options))

        yield start


@pytest.fixture
def connect(
    tmp_path: Path,
) -> Iterator[Callable[[Simulator], openstack.connection.Connection]]:
    """Open an openstacksdk connection to a simulator through a clouds.yaml file
    written for it; connections close when the test ends."""
    connections: list[openstack.connection.Connection] = []

    def open_connection(simulator: Simulator) -> openstack.connection.Connection:
        clouds_yaml = simulator.write_clouds_yaml(tmp_path / "clouds.yaml")
        config = openstack.config.OpenStackConfig(
            config_files=[str(clouds_yaml)], load_envvars=False
        )
        region = config.get_one(cloud=DEFAULT_CLOUD)
        connection = openstack.connection.Connection(config=region)
        connections.append(connection)
        return connection

    yield open_connection
    for connection in connections:
        connection.close()
