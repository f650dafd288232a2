"""``stackmeter up`` as a user runs it: stopped, it leaves no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # A zombie has exited; only its parent has not reaped it yet.
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _wait_for(path: Path, pattern: str, timeout_s: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = re.search(pattern, path.read_text()) if path.exists() else None
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{pattern!r} not in {path} after {timeout_s} s")


@pytest.mark.kafka
@pytest.mark.parametrize(
    ("signum", "exit_code"), [(signal.SIGINT, 130), (signal.SIGKILL, -9)]
)
def test_stopping_up_stops_every_process_it_started(
    tmp_path: Path, signum: signal.Signals, exit_code: int
) -> None:
    """Ctrl-C stops the children in order; a kill -9 takes them along."""
    workdir = tmp_path / "demo"
    stderr_path = tmp_path / "up.err"
    with stderr_path.open("wb") as stderr:
        up = subprocess.Popen(
            [sys.executable, "-m", "stackmeter.cli", "up", "--workdir", str(workdir)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        broker = _wait_for(stderr_path, r"Kafka broker starting pid=(\d+)", 120)
        worker = _wait_for(stderr_path, r"started worker \(pid (\d+)\)", 60)
        sink = _wait_for(stderr_path, r"started sink \(pid (\d+)\)", 60)
        _wait_for(stderr_path, r"runs \d+ completed", 60)
        pids = [int(m.group(1)) for m in (broker, worker, sink)]
        assert all(_alive(pid) for pid in pids)

        up.send_signal(signum)
        code = up.wait(timeout=90)
    finally:
        if up.poll() is None:
            os.kill(up.pid, signal.SIGKILL)

    assert code == exit_code
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [pid for pid in pids if _alive(pid)] == []


def test_a_foreign_workdir_is_never_emptied(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stackmeter.cli import main  # noqa: PLC0415

    (tmp_path / "precious.txt").write_text("keep me")

    code = main(["up", "--workdir", str(tmp_path)])

    assert code == 2
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    assert "not an earlier demo's folder" in capsys.readouterr().err
