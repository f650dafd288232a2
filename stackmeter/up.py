"""``stackmeter up``: the whole pipeline on one machine on the embedded defaults.

It starts a local Kafka broker, the OpenStack simulator with the demo scenario,
the worker (hourly usage and rating) and the sink into embedded ClickHouse as
child processes, then samples the simulated cloud run after run on a stepped
clock: each run's ``sampled_at`` is the simulated instant, so the billing
numbers are exactly those of a real five-minute sampler, only sooner. When the
last hour is stored it prints the month's cost report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    CoordinatorNotAvailableError,
    GroupCoordinatorNotAvailableError,
)

from stackmeter.codec import default_registry
from stackmeter.config import Config, load_config
from stackmeter.errors import ConfigError, StackmeterError
from stackmeter.local_kafka import LocalKafka, die_with_parent_prefix
from stackmeter.logs import FORMAT
from stackmeter.producers.clock import PolledClock
from stackmeter.producers.sampler import Sampler, run_names
from stackmeter.sinks.report import monthly_report, render_table
from stackmeter.storage import open_storage
from stackmeter.topics import TopicNames, ensure_topics, pipeline_topics

logger = logging.getLogger(__name__)

DEMO_CLOUD = "stackmeter-demo"
DEMO_PLATFORM = "openstack.demo"
CONFIG_NAME = "stackmeter.yaml"
DEFAULT_CATALOG = Path(__file__).resolve().parent.parent / "catalog" / "example.yaml"


class PipelineStalledError(StackmeterError):
    """A stage stopped making progress, or a child process exited."""


@dataclass
class DemoOptions:
    """What to run and how fast; defaults reproduce the README's demo."""

    workdir: Path
    scenario: Path | None = None  # the simulator's demo scenario
    catalog: Path = DEFAULT_CATALOG
    hours: int = 3
    interval_s: int = 300
    pace_s: float = 0.3
    partitions: int = 3
    settle_timeout_s: float = 240.0


@dataclass
class Progress:
    """What the pipeline has done so far, as the status line shows it."""

    runs_completed: int = 0
    runs_failed: int = 0
    usage_records: int = 0
    hours_closed: set[datetime] = field(default_factory=set)
    rows_stored: int = 0
    sim_time: datetime | None = None

    def line(self) -> str:
        clock = self.sim_time.strftime("%Y-%m-%d %H:%M") if self.sim_time else "-"
        return (
            f"sim {clock} | runs {self.runs_completed} completed, "
            f"{self.runs_failed} failed | hours closed {len(self.hours_closed)} | "
            f"usage {self.usage_records} | rows stored {self.rows_stored}"
        )


@dataclass
class DemoResult:
    """Where the demo left its data, for the report and the tests."""

    config: Config
    config_path: Path
    progress: Progress


def write_demo_config(options: DemoOptions, bootstrap: str, clouds: Path) -> Path:
    """The configuration the child processes read, written into the workdir."""
    settings: dict[str, Any] = {
        "kafka": {"bootstrap_servers": bootstrap, "partitions": options.partitions},
        "sampler": {
            "interval_s": options.interval_s,
            "jitter_s": 0,
            "page_size": 50,
            "clouds_yaml": str(clouds),
            "platforms": [{"cloud": DEMO_CLOUD, "platform_id": DEMO_PLATFORM}],
        },
        "worker": {
            "grace_s": options.interval_s,
            "store": "rocksdb://",
            "data_dir": str(options.workdir / "worker"),
        },
        "rating": {"catalog": str(options.catalog), "reload_s": 5},
        "sink": {
            "clickhouse": str(options.workdir / "clickhouse"),
            "batch_s": 0.5,
            "expected_runs_per_hour": 3600 // options.interval_s,
        },
    }
    path = options.workdir / CONFIG_NAME
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


class Children:
    """The worker and sink processes; every one is stopped on the way out.

    Each child runs under ``setpriv --pdeathsig`` as the broker does, so even a
    ``kill -9`` of ``stackmeter up`` leaves no orphan behind.
    """

    def __init__(self, config_path: Path, logs: Path) -> None:
        self._config_path = config_path
        self._logs = logs
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *command: str) -> None:
        log = (self._logs / f"{name}.log").open("ab")
        argv = [
            *die_with_parent_prefix(),
            sys.executable,
            "-m",
            "stackmeter.cli",
            "--config",
            str(self._config_path),
            *command,
        ]
        self._processes[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        logger.info(
            "started %s (pid %d), log %s",
            name,
            self._processes[name].pid,
            self._logs / f"{name}.log",
        )

    def check(self) -> None:
        """Raise when a child has exited on its own."""
        for name, process in self._processes.items():
            code = process.poll()
            if code is not None:
                raise PipelineStalledError(
                    f"{name} exited with code {code}; see {self._logs / name}.log"
                )

    def stop(self, timeout_s: float = 30.0) -> None:
        for process in self._processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for name, process in self._processes.items():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop in %.0f s; killing it", name, timeout_s)
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self._processes.clear()


class Watcher:
    """Reads the usage topic and the consumer groups' committed offsets.

    Rows stored are the offsets the sink has committed on the usage and rated
    usage topics: the sink commits only after ClickHouse took the insert.
    """

    def __init__(self, config: Config, progress: Progress) -> None:
        self._config = config
        self._progress = progress
        self._names = TopicNames(config.kafka.topic_prefix)
        bootstrap = config.kafka.bootstrap_servers
        self._consumer = AIOKafkaConsumer(
            self._names.usage, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
        )
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self._registry = default_registry()
        self._started = False

    async def start(self) -> None:
        await self._consumer.start()
        await self._admin.start()
        self._started = True

    async def stop(self) -> None:
        if self._started:
            await self._consumer.stop()
            await self._admin.close()

    async def poll(self) -> None:
        # Started at the first poll, after the first runs have published:
        # by then every topic has a leader, so the first fetch does not fail.
        if not self._started:
            await self.start()
        batches = await self._consumer.getmany(timeout_ms=200)
        for messages in batches.values():
            for message in messages:
                if message.value is None:
                    continue
                record = self._registry.decode(message.value).record
                self._progress.usage_records += 1
                self._progress.hours_closed.add(record["hour_start"])
        self._progress.rows_stored = await self._committed(
            self._config.sink.group_id, [self._names.usage, self._names.rated_usage]
        )

    async def lag(self, group_id: str, topics: list[str]) -> int | None:
        """Messages of those topics the group has not committed yet; None while
        the group's coordinator is not known yet."""
        # up creates every topic with kafka.partitions partitions.
        count = self._config.kafka.partitions
        partitions = [TopicPartition(t, p) for t in topics for p in range(count)]
        ends: dict[TopicPartition, int] = await self._consumer.end_offsets(partitions)
        committed = await self._group_offsets(group_id)
        if committed is None:
            return None
        return sum(
            ends[tp] - (committed[tp].offset if tp in committed else 0)
            for tp in partitions
        )

    async def _committed(self, group_id: str, topics: list[str]) -> int:
        committed = await self._group_offsets(group_id) or {}
        return sum(meta.offset for tp, meta in committed.items() if tp.topic in topics)

    async def _group_offsets(self, group_id: str) -> dict[TopicPartition, Any] | None:
        # Until a group first commits, the broker may not know its coordinator.
        try:
            offsets: dict[
                TopicPartition, Any
            ] = await self._admin.list_consumer_group_offsets(group_id)
        except (GroupCoordinatorNotAvailableError, CoordinatorNotAvailableError):
            return None
        return offsets


async def run_demo(
    options: DemoOptions, show: Callable[[Progress], None] = lambda _: None
) -> DemoResult:
    """Run the pipeline over the scenario's hours; returns once all is stored."""
    # The simulator comes with the ``simulator`` extra, which production
    # installs leave out; only the demo needs it.
    from stackmeter.simulator import (  # noqa: PLC0415
        DEMO_SCENARIO,
        load_scenario,
        run_simulator,
    )

    options.workdir.mkdir(parents=True, exist_ok=True)
    scenario = load_scenario(options.scenario or DEMO_SCENARIO)
    with (
        _log_to_file("stackmeter.producers", options.workdir / "sampler.log"),
        LocalKafka() as kafka,
        run_simulator(scenario, max_page_size=50) as sim,
    ):
        sim.clock.set(scenario.start)
        clouds = options.workdir / "clouds.yaml"
        sim.write_clouds_yaml(clouds, cloud=DEMO_CLOUD)
        config_path = write_demo_config(options, kafka.bootstrap_servers, clouds)
        config = load_config(config_path, environ={})
        config.validate()
        names = TopicNames(config.kafka.topic_prefix)
        await ensure_topics(
            config.kafka.bootstrap_servers,
            pipeline_topics(names, config.kafka.partitions),
        )
        children = Children(config_path, options.workdir)
        children.start("worker", "worker")
        children.start("sink", "sink")
        run = _DemoRun(options, config, sim, children, show)
        try:
            await run.sample_and_settle()
        finally:
            children.stop()
    return DemoResult(config=config, config_path=config_path, progress=run.progress)


@dataclass
class _DemoRun:
    """Everything one demo run shares between its steps."""

    options: DemoOptions
    config: Config
    sim: Any
    children: Children
    show: Callable[[Progress], None]
    progress: Progress = field(default_factory=Progress)

    async def sample_and_settle(self) -> None:
        start = self.sim.clock.now()
        end = start + timedelta(hours=self.options.hours)
        watcher = Watcher(self.config, self.progress)
        try:
            await self._sample(start, end, watcher)
            await self._settle(start, watcher)
        finally:
            await watcher.stop()

    async def _sample(self, start: datetime, end: datetime, watcher: Watcher) -> None:
        # Runs go on past the last hour until stream time passes its end plus
        # the grace, so that the worker closes it.
        interval = timedelta(seconds=self.options.interval_s)
        last_run = end + timedelta(seconds=self.config.worker.grace_s) + interval
        platform = self.config.sampler.platforms[0]
        names = run_names(None, self.config, projects=True)
        async with Sampler(self.config, platform, PolledClock(self.sim.clock.now)) as s:
            moment = start
            while moment <= last_run:
                self.sim.clock.set(moment)
                self.progress.sim_time = moment
                for result in await s.sample_all(names):
                    if result.completed:
                        self.progress.runs_completed += 1
                    else:
                        self.progress.runs_failed += 1
                await watcher.poll()
                self.children.check()
                self.show(self.progress)
                await asyncio.sleep(self.options.pace_s)
                moment += interval

    async def _settle(self, start: datetime, watcher: Watcher) -> None:
        """Wait until every hour is closed, rated and stored."""
        names = TopicNames(self.config.kafka.topic_prefix)
        hours = {start + timedelta(hours=h) for h in range(self.options.hours)}
        deadline = time.monotonic() + self.options.settle_timeout_s
        quiet_polls = 0
        while quiet_polls < 3:
            if time.monotonic() > deadline:
                raise PipelineStalledError(
                    f"not settled after {self.options.settle_timeout_s:.0f} s: "
                    f"{self.progress.line()}"
                )
            await asyncio.sleep(1.0)
            await watcher.poll()
            self.children.check()
            self.show(self.progress)
            rating_lag = await watcher.lag(self.config.worker.app_id, [names.usage])
            sink_lag = await watcher.lag(
                self.config.sink.group_id, [names.usage, names.rated_usage]
            )
            closed = hours <= self.progress.hours_closed
            quiet_polls = (
                quiet_polls + 1 if closed and rating_lag == sink_lag == 0 else 0
            )
        logger.info("settled: %s", self.progress.line())


@contextlib.contextmanager
def _log_to_file(logger_name: str, path: Path) -> Iterator[None]:
    """Send one logger's records to a file instead of the terminal: the
    sampler's line per run would drown the status line."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(FORMAT))
    target = logging.getLogger(logger_name)
    target.addHandler(handler)
    target.propagate = False
    try:
        yield
    finally:
        target.removeHandler(handler)
        target.propagate = True
        handler.close()


@contextlib.contextmanager
def _status_line() -> Iterator[Callable[[Progress], None]]:
    interactive = sys.stderr.isatty()
    last = [0.0]

    def show(progress: Progress) -> None:
        if interactive:
            sys.stderr.write("\r" + progress.line() + "\x1b[K")
            sys.stderr.flush()
        elif time.monotonic() - last[0] > 5:
            logger.info("%s", progress.line())
            last[0] = time.monotonic()

    try:
        yield show
    finally:
        if interactive:
            sys.stderr.write("\n")


def register(subparsers: Any) -> None:
    """Add ``stackmeter up``."""
    parser = subparsers.add_parser(
        "up",
        help="run the whole pipeline locally on the demo cloud",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("var/demo"),
        help="folder for logs, worker state and ClickHouse data (default: var/demo;"
        " emptied first if it holds an earlier demo)",
    )
    parser.add_argument(
        "--catalog",
        type=Path,
        default=DEFAULT_CATALOG,
        help=f"product catalog (default: {DEFAULT_CATALOG.name} from the repository)",
    )
    parser.add_argument(
        "--hours", type=int, default=3, help="simulated hours to run (default: 3)"
    )
    parser.add_argument(
        "--pace",
        type=float,
        default=0.3,
        metavar="SECONDS",
        help="real seconds between two five-minute runs (default: 0.3)",
    )
    parser.set_defaults(run=_run_up)


def _run_up(args: argparse.Namespace) -> int:
    _empty_workdir(args.workdir)
    options = DemoOptions(
        workdir=args.workdir.resolve(),
        catalog=args.catalog.resolve(),
        hours=args.hours,
        pace_s=args.pace,
    )
    with _status_line() as show:
        result = asyncio.run(run_demo(options, show))
    print(render_demo_report(result))
    print(f"data, logs and config are in {options.workdir}")
    return 0


def _empty_workdir(workdir: Path) -> None:
    """Remove an earlier demo's folder; refuse any other non-empty folder, so a
    mistyped ``--workdir`` never deletes someone's files."""
    if not workdir.exists():
        return
    if any(workdir.iterdir()) and not (workdir / CONFIG_NAME).is_file():
        raise ConfigError(
            f"--workdir {workdir}: not empty and not an earlier demo's folder "
            f"(no {CONFIG_NAME} in it); choose another folder"
        )
    shutil.rmtree(workdir)


def render_demo_report(result: DemoResult) -> str:
    """The month's cost table read from the embedded ClickHouse."""
    sim_time = result.progress.sim_time or datetime.now(UTC)
    storage = open_storage(result.config.sink.clickhouse)
    try:
        report = monthly_report(
            storage, result.config.sink.database, sim_time.date().replace(day=1)
        )
    finally:
        storage.close()
    return render_table(report)
