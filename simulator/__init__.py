"""A simulated OpenStack cloud (Keystone, Nova, Cinder, Glance, Neutron,
Octavia) that openstacksdk talks to over HTTP, driven by a scenario over a
simulated clock, with injectable faults; used by tests and the demo."""

from stackmeter.simulator.clock import SimClock
from stackmeter.simulator.faults import FaultSpec, FaultSpecError
from stackmeter.simulator.generate import generate_scenario
from stackmeter.simulator.runner import run_simulator
from stackmeter.simulator.scenario import (
    KINDS,
    Change,
    Credentials,
    Flavor,
    FloatingIp,
    Image,
    Listener,
    LoadBalancer,
    Pool,
    Project,
    Router,
    Scenario,
    ScenarioError,
    Server,
    Snapshot,
    Timed,
    Volume,
    stable_id,
)
from stackmeter.simulator.scenario_io import (
    DEMO_SCENARIO,
    dump_scenario,
    load_scenario,
    scenario_from_dict,
    scenario_to_dict,
)
from stackmeter.simulator.server import DEFAULT_CLOUD, Simulator

__all__ = [
    "DEFAULT_CLOUD",
    "DEMO_SCENARIO",
    "KINDS",
    "Change",
    "Credentials",
    "FaultSpec",
    "FaultSpecError",
    "Flavor",
    "FloatingIp",
    "Image",
    "Listener",
    "LoadBalancer",
    "Pool",
    "Project",
    "Router",
    "Scenario",
    "ScenarioError",
    "Server",
    "SimClock",
    "Simulator",
    "Snapshot",
    "Timed",
    "Volume",
    "dump_scenario",
    "generate_scenario",
    "load_scenario",
    "run_simulator",
    "scenario_from_dict",
    "scenario_to_dict",
    "stable_id",
]
