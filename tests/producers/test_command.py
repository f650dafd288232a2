"""``stackmeter sample``: configuration problems stop it at start with one line
each, and ``--once`` samples the simulator into the real local Kafka broker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from sampling_support import TopicReader, every_type_scenario

from stackmeter.cli import main
from stackmeter.simulator import DEFAULT_CLOUD, Scenario, Simulator


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """``main`` reconfigures the root logger; put pytest's handlers back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def write_config(path: Path, sampler: dict[str, object], kafka: str = "") -> Path:
    document: dict[str, object] = {"sampler": sampler}
    if kafka:
        document["kafka"] = {"bootstrap_servers": kafka, "topic_prefix": path.stem}
    path.write_text(yaml.safe_dump(document))
    return path


def test_unknown_cloud_fails_at_start_naming_the_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(yaml.safe_dump({"clouds": {"alpha": {}, "beta": {}}}))
    config = write_config(tmp_path / "config.yaml", {"clouds_yaml": str(clouds)})

    code = main(["--config", str(config), "sample", "--cloud", "nope", "--once"])

    assert code == 2
    problems = capsys.readouterr().err.splitlines()[1:]
    assert problems == [
        f"{clouds}: clouds.nope: no such cloud (named by platform "
        "'openstack.nope'); known: alpha, beta"
    ]


def test_every_configuration_problem_gets_its_own_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        yaml.safe_dump({"clouds": {"alpha": {"region_name": "RegionOne"}}})
    )
    config = write_config(
        tmp_path / "config.yaml",
        {
            "clouds_yaml": str(clouds),
            "page_size": 0,
            "api_retries": -1,
            "platforms": [
                {"cloud": "alpha", "platform_id": "openstack.a", "region": "RegionTwo"}
            ],
        },
    )

    code = main(["--config", str(config), "sample", "--once"])

    assert code == 2
    problems = capsys.readouterr().err.splitlines()[1:]
    assert problems == [
        f"{config}: sampler.page_size: must be at least 1, got 0",
        f"{config}: sampler.api_retries: must be 0 or more, got -1",
        f"{clouds}: clouds.alpha.regions: no region 'RegionTwo' (named by "
        "platform 'openstack.a'); known: RegionOne",
    ]


def test_missing_clouds_yaml_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(
        tmp_path / "config.yaml", {"clouds_yaml": str(tmp_path / "none.yaml")}
    )
    assert main(["--config", str(config), "sample", "--cloud", "x", "--once"]) == 2
    assert "sampler.clouds_yaml: no such file" in capsys.readouterr().err


@pytest.mark.kafka
def test_once_samples_every_type_and_logs_a_line_per_run(
    tmp_path: Path,
    kafka_bootstrap: str,
    start_simulator: Callable[[Scenario], Simulator],
    capsys: pytest.CaptureFixture[str],
) -> None:
    simulator = start_simulator(every_type_scenario())
    clouds = simulator.write_clouds_yaml(tmp_path / "clouds.yaml")
    config = write_config(
        tmp_path / "cli.yaml", {"clouds_yaml": str(clouds)}, kafka=kafka_bootstrap
    )

    code = main(["--config", str(config), "sample", "--cloud", DEFAULT_CLOUD, "--once"])

    assert code == 0
    lines = [
        line for line in capsys.readouterr().err.splitlines() if "run completed" in line
    ]
    assert len(lines) == 8
    servers = next(line for line in lines if "type=nova.server " in line)
    assert f"platform=openstack.{DEFAULT_CLOUD}" in servers
    assert "resources=6 pages=1 seconds=" in servers
    assert servers.endswith("published=6")


def test_clock_url_stamps_runs_with_the_simulators_time(
    tmp_path: Path,
    kafka_bootstrap: str,
    start_simulator: Callable[[Scenario], Simulator],
    read_topic: TopicReader,
) -> None:
    simulator = start_simulator(every_type_scenario())
    simulated = datetime(2026, 11, 2, 11, 35, tzinfo=UTC)
    simulator.clock.set(simulated)
    clouds = simulator.write_clouds_yaml(tmp_path / "clouds.yaml")
    config = write_config(
        tmp_path / "clock.yaml", {"clouds_yaml": str(clouds)}, kafka=kafka_bootstrap
    )

    code = main(
        [
            "--config",
            str(config),
            "sample",
            "--cloud",
            DEFAULT_CLOUD,
            "--once",
            "--types",
            "nova.server",
            "--clock-url",
            simulator.base_url,
        ]
    )

    assert code == 0
    messages = asyncio.run(read_topic("clock.snapshot.nova.server"))
    markers = [m for m in messages if m.schema_name == "stackmeter.RunMarker"]
    snapshots = [m for m in messages if m.schema_name == "stackmeter.snapshot.Server"]
    assert markers
    assert snapshots
    assert {m.record["sampled_at"] for m in markers} == {simulated}
    assert {m.record["envelope"]["sampled_at"] for m in snapshots} == {simulated}


def test_an_unreachable_clock_url_fails_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    auth = {"auth_url": "http://127.0.0.1:9/v3", "username": "u", "password": "p"}
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        yaml.safe_dump(
            {"clouds": {"alpha": {"region_name": "RegionOne", "auth": auth}}}
        )
    )
    config = write_config(tmp_path / "config.yaml", {"clouds_yaml": str(clouds)})

    code = main(
        [
            "--config",
            str(config),
            "sample",
            "--cloud",
            "alpha",
            "--clock-url",
            "http://127.0.0.1:9/",
        ]
    )

    assert code == 2
    assert "--clock-url http://127.0.0.1:9/: cannot read" in capsys.readouterr().err
