"""``python -m stackmeter.simulator`` as the demo runs it: a scenario file on a
port, an accelerated clock, and a clouds.yaml that openstacksdk can use."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import openstack.config
import openstack.connection
import pytest
import requests
import yaml

from stackmeter.simulator import DEFAULT_CLOUD, DEMO_SCENARIO

pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning:openstack")


def test_cli_serves_a_scenario_with_a_running_clock(tmp_path: Path) -> None:
    clouds_yaml = tmp_path / "clouds.yaml"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stackmeter.simulator",
            "--scenario",
            str(DEMO_SCENARIO),
            "--port",
            "0",
            "--clock-speed",
            "3600",
            "--clouds-yaml",
            str(clouds_yaml),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        match = re.search(r"listening on (http://\S+)", banner)
        assert match, banner
        base_url = match.group(1)

        first = _clock_now(base_url)
        time.sleep(0.2)
        second = _clock_now(base_url)
        assert (second - first).total_seconds() >= 0.2 * 3600 * 0.5

        region = openstack.config.OpenStackConfig(
            config_files=[str(clouds_yaml)], load_envvars=False
        ).get_one(cloud=DEFAULT_CLOUD)
        conn = openstack.connection.Connection(config=region)
        try:
            assert len(list(conn.network.routers())) >= 1
        finally:
            conn.close()
        auth = yaml.safe_load(clouds_yaml.read_text())["clouds"][DEFAULT_CLOUD]
        assert auth["auth"]["auth_url"] == f"{base_url}/identity/v3"
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr


def test_cli_refuses_a_missing_scenario_file(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stackmeter.simulator",
            "--scenario",
            str(tmp_path / "nope.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert "nope.yaml: cannot read scenario" in result.stderr


def _clock_now(base_url: str) -> datetime:
    now = requests.get(f"{base_url}/_sim/clock", timeout=5).json()["now"]
    return datetime.fromisoformat(now.replace("Z", "+00:00"))
