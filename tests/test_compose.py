"""docker-compose.yml loads with the Compose loader for every profile and stays
in step with the code: the local broker's Kafka version, configuration fields,
CLI commands, ports and the files it mounts.

The loading is done by tools/composecheck (Go, compose-go: the loader inside
``docker compose``), which also checks health checks, restart policies, pinned
images and that no secret is written in the file. It prints the loaded
projects as JSON, which the tests below read.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from stackmeter import __version__, local_kafka
from stackmeter import up as stackmeter_up
from stackmeter.cli import build_parser
from stackmeter.config import ENV_PREFIX, Config, load_config
from stackmeter.simulator.__main__ import _parser as simulator_parser

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
TOOL_DIR = REPO / "tools" / "composecheck"
CONFIG_TARGET = "/etc/stackmeter/stackmeter.yaml"
CLOUDS_TARGET = "/etc/openstack/clouds.yaml"
# The first `go run` compiles compose-go; later runs reuse Go's build cache.
GO_RUN_TIMEOUT_S = 280

Service = dict[str, Any]


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    """composecheck's JSON report on docker-compose.yml."""
    go = shutil.which("go")
    if go is None:
        pytest.skip(
            "go is not on PATH: docker-compose.yml is validated by "
            "tools/composecheck, a Go program using the Compose loader"
        )
    result = subprocess.run(
        [go, "run", ".", "-f", str(COMPOSE_FILE), "-json"],
        cwd=TOOL_DIR,
        capture_output=True,
        text=True,
        timeout=GO_RUN_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"composecheck rejected docker-compose.yml:\n{result.stderr}")
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


@pytest.fixture(scope="module")
def profiles(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Loaded project per profile name ("" is the default set)."""
    return {entry["profile"]: entry["project"] for entry in report["profiles"]}


@pytest.fixture(scope="module")
def services(profiles: dict[str, dict[str, Any]]) -> dict[str, Service]:
    """Every service of every profile, by name."""
    found: dict[str, Service] = {}
    for project in profiles.values():
        found.update(project["services"])
    return found


def stackmeter_services(services: dict[str, Service]) -> Iterator[tuple[str, Service]]:
    """Services of the stackmeter image that run its ``stackmeter`` command."""
    for name, service in sorted(services.items()):
        if service["image"].startswith("stackmeter:") and not service["entrypoint"]:
            yield name, service


def host_path(service: Service, container_path: str) -> Path | None:
    """The host file a bind mount of ``service`` shows at ``container_path``."""
    wanted = PurePosixPath(container_path)
    for volume in service.get("volumes") or []:
        if volume["type"] != "bind":
            continue
        target = PurePosixPath(volume["target"])
        if wanted == target or target in wanted.parents:
            return Path(volume["source"]) / wanted.relative_to(target)
    return None


def service_config(service: Service) -> Config:
    """The configuration the service's process reads: the mounted file with
    the service's STACKMETER_* environment applied."""
    config_file = host_path(service, CONFIG_TARGET)
    assert config_file is not None, f"nothing mounted at {CONFIG_TARGET}"
    environment = {k: v for k, v in service["environment"].items() if v is not None}
    return load_config(config_file, environment)


def option(command: Sequence[str], name: str) -> str:
    index = list(command).index(name)
    return command[index + 1]


def parse(
    parser: argparse.ArgumentParser, command: Sequence[str]
) -> argparse.Namespace:
    try:
        return parser.parse_args(list(command))
    except SystemExit:
        pytest.fail(f"{parser.prog} does not accept {' '.join(command)!r}")


def port_of(url: str) -> int | None:
    return urlsplit(url).port


def test_every_profile_loads_with_the_expected_services(
    profiles: dict[str, dict[str, Any]],
) -> None:
    names = {profile: set(project["services"]) for profile, project in profiles.items()}
    core = {"kafka", "clickhouse", "worker", "sink"}

    assert set(names) == {"", "openstack", "demo"}
    assert names[""] == core
    assert names["openstack"] == core | {"sampler"}
    assert names["demo"] == core | {"simulator", "demo-sampler"}


def test_the_clickhouse_password_is_required_not_written(
    report: dict[str, Any], services: dict[str, Service]
) -> None:
    dummy = "composecheck-dummy-CLICKHOUSE_PASSWORD"

    assert report["required_variables"] == ["CLICKHOUSE_PASSWORD"]
    assert services["clickhouse"]["environment"]["CLICKHOUSE_PASSWORD"] == dummy
    sink_url = urlsplit(services["sink"]["environment"]["STACKMETER_SINK_CLICKHOUSE"])
    assert sink_url.password == dummy


def test_kafka_runs_the_local_brokers_version(services: dict[str, Service]) -> None:
    assert services["kafka"]["image"] == f"apache/kafka:{local_kafka.KAFKA_VERSION}"


def test_kafka_settings_agree_with_the_local_broker(
    services: dict[str, Service],
) -> None:
    # apache/kafka turns KAFKA_SOME_SETTING into some.setting.
    compose_properties = {
        key.removeprefix("KAFKA_").lower().replace("_", "."): value
        for key, value in services["kafka"]["environment"].items()
        if key.startswith("KAFKA_")
    }
    local_properties: dict[str, str] = local_kafka._DEFAULT_PROPERTIES
    shared = sorted(set(compose_properties) & set(local_properties))

    assert "auto.create.topics.enable" in shared
    assert {key: compose_properties[key] for key in shared} == {
        key: local_properties[key] for key in shared
    }


def test_the_stackmeter_image_is_tagged_with_the_package_version(
    services: dict[str, Service],
) -> None:
    images = {
        service["image"]
        for service in services.values()
        if service["image"].startswith("stackmeter")
    }

    assert images == {f"stackmeter:{__version__}"}


def test_every_stackmeter_variable_names_a_config_field(
    services: dict[str, Service],
) -> None:
    defaults = Config()
    fields = {
        section.name: {f.name for f in dataclasses.fields(getattr(defaults, name))}
        for section in dataclasses.fields(defaults)
        if (name := section.name) != "source"
    }
    named = 0
    for name, service in stackmeter_services(services):
        for key in service["environment"]:
            if not key.startswith(ENV_PREFIX):
                continue
            section, _, field = key.removeprefix(ENV_PREFIX).lower().partition("_")
            assert field in fields.get(section, set()), f"{name}: {key}"
            named += 1
        # Types are right too: the loader rejects a value of the wrong type.
        service_config(service)

    assert named > 0


def test_the_configuration_is_valid_in_every_service(
    services: dict[str, Service],
) -> None:
    sections = {
        "sampler": ("kafka", "sampler", "metrics"),
        "demo-sampler": ("kafka", "sampler", "metrics"),
        "worker": ("kafka", "worker", "rating", "metrics"),
        "sink": ("kafka", "sink", "metrics"),
    }
    for name, checked in sections.items():
        service = services[name]
        config = service_config(service)
        # Container paths are checked as the host files mounted there.
        catalog = host_path(service, config.rating.catalog)
        if "rating" in checked:
            assert catalog is not None, f"{name}: catalog not mounted"
            config.rating.catalog = str(catalog)
        if "sampler" in checked:
            assert config.sampler.clouds_yaml == CLOUDS_TARGET
            config.sampler.clouds_yaml = None

        assert config.problems(checked) == [], name


def test_commands_are_stackmeter_subcommands(services: dict[str, Service]) -> None:
    parser = build_parser()
    for name, service in stackmeter_services(services):
        command = service["command"]
        args = parse(parser, command)

        assert getattr(args, "run", None) is not None, f"{name}: {command}"
        assert args.config == CONFIG_TARGET, name


def test_samplers_sample_a_cloud_their_clouds_yaml_and_config_name(
    services: dict[str, Service],
) -> None:
    for name, example in (
        ("sampler", REPO / "deploy" / "clouds.yaml.example"),
        ("demo-sampler", None),
    ):
        service = services[name]
        cloud = option(service["command"], "--cloud")
        clouds_file = host_path(service, CLOUDS_TARGET)
        assert clouds_file is not None, f"{name}: no clouds.yaml mounted"
        clouds = yaml.safe_load((example or clouds_file).read_text())["clouds"]
        platforms = service_config(service).sampler.platforms

        assert cloud in clouds, name
        assert cloud in {platform.cloud for platform in platforms}, name


def test_the_demo_samples_the_platform_stackmeter_up_samples(
    services: dict[str, Service],
) -> None:
    (platform,) = service_config(services["demo-sampler"]).sampler.platforms

    assert (platform.cloud, platform.platform_id) == (
        stackmeter_up.DEMO_CLOUD,
        stackmeter_up.DEMO_PLATFORM,
    )


def test_the_real_clouds_yaml_is_the_users_file_never_created(
    services: dict[str, Service],
) -> None:
    mount = next(
        volume
        for volume in services["sampler"]["volumes"]
        if volume["target"] == CLOUDS_TARGET
    )

    assert Path(mount["source"]) == REPO / "clouds.yaml"
    assert mount["read_only"] is True
    assert mount["bind"].get("create_host_path") is False


def test_mounted_files_exist_in_the_checkout(services: dict[str, Service]) -> None:
    user_files = {REPO / "clouds.yaml"}
    for name, service in sorted(services.items()):
        for volume in service.get("volumes") or []:
            source = Path(volume.get("source") or "")
            if volume["type"] == "bind" and source not in user_files:
                assert source.exists(), f"{name}: {source} does not exist"


def test_the_simulator_serves_what_the_demo_sampler_reads(
    services: dict[str, Service],
) -> None:
    simulator = services["simulator"]
    assert simulator["entrypoint"] == ["python", "-m", "stackmeter.simulator"]
    args = parse(simulator_parser(), simulator["command"])
    clouds_file = host_path(services["demo-sampler"], CLOUDS_TARGET)
    assert clouds_file is not None
    clouds = yaml.safe_load(clouds_file.read_text())["clouds"]
    (entry,) = clouds.values()
    auth = dict(entry["auth"])
    auth_url = urlsplit(auth.pop("auth_url"))
    scenario_file = host_path(simulator, args.scenario)
    assert scenario_file is not None, "scenario not mounted"
    scenario = yaml.safe_load(scenario_file.read_text())

    assert auth == scenario["credentials"]
    assert entry["region_name"] == scenario["region"]
    assert args.host == "0.0.0.0"
    assert (auth_url.hostname, auth_url.port) == ("simulator", args.port)
    assert f"127.0.0.1:{args.port}/" in " ".join(simulator["healthcheck"]["test"])
    assert str(args.port) in simulator["expose"]


def test_health_checks_read_the_configured_metrics_port(
    services: dict[str, Service],
) -> None:
    for name, service in stackmeter_services(services):
        port = service_config(service).metrics.port
        check = " ".join(service["healthcheck"]["test"])

        assert port > 0, name
        assert f"127.0.0.1:{port}/metrics" in check, name
        assert str(port) in service["expose"], name


def test_the_sink_writes_to_the_database_clickhouse_creates(
    services: dict[str, Service],
) -> None:
    clickhouse = services["clickhouse"]["environment"]
    sink = services["sink"]
    config = service_config(sink)
    url = urlsplit(config.sink.clickhouse)

    assert (url.hostname, url.port) == ("clickhouse", 8123)
    assert url.username == clickhouse["CLICKHOUSE_USER"]
    assert config.sink.database == clickhouse["CLICKHOUSE_DB"]


def test_each_worker_replica_keeps_state_in_its_own_volume(
    services: dict[str, Service],
) -> None:
    worker = services["worker"]
    data_dir = service_config(worker).worker.data_dir
    (state,) = [v for v in worker["volumes"] if v["target"] == data_dir]

    # Anonymous: Docker gives each replica its own; a named one is shared.
    assert state["type"] == "volume"
    assert not state.get("source")
    assert worker["deploy"]["replicas"] >= 1


def test_git_ignores_the_files_that_hold_credentials() -> None:
    git = shutil.which("git")
    if git is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(
        [git, "check-ignore", "--no-index", ".env", "clouds.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )

    assert ignored.stdout.split() == [".env", "clouds.yaml"]


def test_the_image_build_context_holds_every_package_folder() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    allowed = {
        line.removeprefix("!").rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    readme = pyproject["project"]["readme"]
    # Stage folders sit at the top and are linked into stackmeter/.
    folders = {
        (REPO / package.replace(".", "/")).resolve().relative_to(REPO).parts[0]
        for package in pyproject["tool"]["setuptools"]["packages"]
    }

    assert {"pyproject.toml", readme, "catalog", "deploy/stackmeter.yaml"} <= allowed
    assert folders <= allowed, sorted(folders - allowed)


def test_the_image_prepares_what_the_services_use(
    services: dict[str, Service],
) -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    worker = service_config(services["worker"])
    simulator_port = option(services["simulator"]["command"], "--port")

    assert f"mkdir -p {worker.worker.data_dir}" in dockerfile
    assert f"COPY deploy/stackmeter.yaml {CONFIG_TARGET}" in dockerfile
    assert f"EXPOSE {worker.metrics.port} {simulator_port}" in dockerfile
    assert 'ENTRYPOINT ["stackmeter"]' in dockerfile
