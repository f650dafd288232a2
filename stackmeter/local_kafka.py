"""A real single-node Apache Kafka broker (KRaft mode) on loopback, for tests and demos.

The broker's jars are fetched once with Maven into a cache folder; every
``LocalKafka`` formats fresh storage in its own temporary folder and runs the
broker as a child process that cannot outlive the Python process.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import fcntl
import logging
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType

from stackmeter.errors import StackmeterError

logger = logging.getLogger(__name__)

KAFKA_VERSION = "4.0.1"
SCALA_VERSION = "2.13"
# slf4j-api must be 2.x: Kafka still pulls in 1.7, which would not find the
# log4j2 binding and would print nothing at all.
SLF4J_VERSION = "2.0.16"
LOG4J_VERSION = "2.24.3"

CACHE_DIR_ENV = "STACKMETER_CACHE_DIR"
_MANIFEST_NAME = "manifest.txt"
_NODE_ID = 1
_LOG_TAIL_LINES = 40
_PORT_ATTEMPTS = 3
_PROBE_INTERVAL_S = 0.25
_WORKDIR_PREFIX = "stackmeter-kafka-"
_OWNER_FILE = "owner.pid"

# Settings for a one-node cluster on a small machine. Topics are never created
# implicitly: the pipeline declares its topics, and a missing declaration must
# fail in tests rather than pass by accident.
_DEFAULT_PROPERTIES: dict[str, str] = {
    "auto.create.topics.enable": "false",
    "num.partitions": "1",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "4",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "4",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "num.network.threads": "2",
    "num.io.threads": "2",
    "background.threads": "2",
    # The cleaner's default 128 MiB buffer would take a quarter of the heap.
    "log.cleaner.dedupe.buffer.size": "16777216",
    "log.retention.check.interval.ms": "60000",
}

_LOG4J2_PROPERTIES = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.target = SYSTEM_OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = OUT
logger.requests.name = kafka.request.logger
logger.requests.level = warn
logger.state.name = state.change.logger
logger.state.level = warn
"""

_POM_TEMPLATE = """\
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>stackmeter.local</groupId>
  <artifactId>kafka-broker-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{dependencies}
  </dependencies>
</project>
"""


class LocalKafkaError(StackmeterError):
    """The local broker could not be fetched, started or stopped."""


class _PortTakenError(LocalKafkaError):
    """Another process bound a chosen port before the broker did."""


def cache_root() -> Path:
    """Return the folder under which stackmeter caches downloads.

    ``$STACKMETER_CACHE_DIR`` when set, else ``~/.cache/stackmeter``.
    """
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "stackmeter"


def kafka_home(cache_dir: Path | None = None) -> Path:
    """Return the folder that holds (or will hold) the broker's jars."""
    base = cache_dir if cache_dir is not None else cache_root()
    return base / f"kafka-{KAFKA_VERSION}"


def fetch_kafka(cache_dir: Path | None = None) -> Path:
    """Return the broker's folder, fetching its jars with Maven if absent.

    The jars are downloaded into a temporary sibling folder which is renamed
    into place only once complete, so an interrupted fetch is never mistaken
    for a finished one. A lock file keeps concurrent fetches from racing.
    """
    home = kafka_home(cache_dir)
    if _is_complete(home):
        return home

    home.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(home.parent / f".{home.name}.lock"):
        if _is_complete(home):
            return home
        _remove_leftovers(home)

        staging = Path(
            tempfile.mkdtemp(prefix=f".{home.name}.partial-", dir=home.parent)
        )
        try:
            _download_jars(staging)
            staging.chmod(0o755)  # mkdtemp made it private to its creator
            staging.rename(home)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    logger.info("Kafka jars ready home=%s", home)
    return home


def _is_complete(home: Path) -> bool:
    return (home / _MANIFEST_NAME).is_file()


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    with path.open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _remove_leftovers(home: Path) -> None:
    # Holding the lock means no other fetch is running, so every partial
    # folder is what an interrupted fetch left behind.
    for partial in home.parent.glob(f".{home.name}.partial-*"):
        logger.warning("removing interrupted Kafka download path=%s", partial)
        shutil.rmtree(partial, ignore_errors=True)
    if home.exists():
        logger.warning("removing incomplete Kafka folder path=%s", home)
        shutil.rmtree(home)


def _download_jars(staging: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalKafkaError(
            "Maven ('mvn') is not on PATH; it is needed once to fetch the "
            f"Kafka {KAFKA_VERSION} jars into {kafka_home(staging.parent)}"
        )
    (staging / "pom.xml").write_text(_pom_xml(), encoding="utf-8")
    libs = staging / "libs"
    logger.info("fetching Kafka jars with Maven version=%s", KAFKA_VERSION)
    started = time.monotonic()
    options = [f"-DoutputDirectory={libs}", "-DincludeScope=runtime"]
    _run_tool(
        [mvn, "-q", "-B", "dependency:copy-dependencies", *options],
        cwd=staging,
        failure=f"Maven could not fetch Kafka {KAFKA_VERSION}",
    )

    jars = sorted(path.name for path in libs.glob("*.jar"))
    expected = f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar"
    if expected not in jars:
        raise LocalKafkaError(f"Maven finished but {expected} is not in {libs}")
    (staging / _MANIFEST_NAME).write_text("\n".join(jars) + "\n", encoding="utf-8")
    logger.info(
        "fetched Kafka jars count=%d elapsed_s=%.1f",
        len(jars),
        time.monotonic() - started,
    )


def _pom_xml() -> str:
    coordinates = [
        ("org.apache.kafka", f"kafka_{SCALA_VERSION}", KAFKA_VERSION),
        ("org.slf4j", "slf4j-api", SLF4J_VERSION),
        ("org.apache.logging.log4j", "log4j-slf4j2-impl", LOG4J_VERSION),
        ("org.apache.logging.log4j", "log4j-core", LOG4J_VERSION),
    ]
    dependencies = "\n".join(
        "    <dependency>"
        f"<groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
        f"<version>{version}</version></dependency>"
        for group, artifact, version in coordinates
    )
    return _POM_TEMPLATE.format(dependencies=dependencies)


class LocalKafka:
    """One Kafka broker and controller in one process, on 127.0.0.1.

    Use it as a context manager or call ``start()`` and ``stop()``. Each start
    uses a fresh temporary folder (storage, configuration, ``broker.log``),
    removed again by ``stop()``. Call ``start()`` from a thread that lives as
    long as the broker should: on Linux the broker is killed when the thread
    that started it ends, which is how it cannot outlive a crashed test run.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        heap_mib: int = 512,
        start_timeout_s: float = 120.0,
        stop_timeout_s: float = 30.0,
        properties: Mapping[str, str] | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        if port is not None and not 0 < port < 65536:
            raise LocalKafkaError(f"port must be in 1..65535, got {port}")
        if heap_mib < 128:
            raise LocalKafkaError(f"heap_mib must be at least 128, got {heap_mib}")
        self._requested_port = port
        self._heap_mib = heap_mib
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._properties = dict(properties or {})
        self._cache_dir = cache_dir
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._port: int | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:PORT`` of the running broker."""
        if self._port is None or self._process is None:
            raise LocalKafkaError("the local Kafka broker is not running")
        return f"127.0.0.1:{self._port}"

    @property
    def pid(self) -> int | None:
        """Process id of the broker's JVM, or None when not started."""
        return self._process.pid if self._process is not None else None

    @property
    def log_path(self) -> Path | None:
        """The broker's log file while it runs (removed by ``stop()``)."""
        return self._workdir / "broker.log" if self._workdir is not None else None

    def is_running(self) -> bool:
        """True while the broker's process is alive."""
        return self._process is not None and self._process.poll() is None

    def wait(self) -> int:
        """Block until the broker exits on its own; return its exit code."""
        if self._process is None:
            raise LocalKafkaError("the local Kafka broker was not started")
        return self._process.wait()

    def log_tail(self) -> str:
        """The last lines of the broker's log, for error messages."""
        log_path = self.log_path
        if log_path is None or not log_path.exists():
            return "(no broker log)"
        return _last_lines(log_path.read_text(encoding="utf-8", errors="replace"))

    def start(self) -> None:
        """Fetch the jars if needed, format storage, start and await the broker."""
        if self._process is not None:
            raise LocalKafkaError("the local Kafka broker is already started")
        home = fetch_kafka(self._cache_dir)
        java = _find_java()
        attempts = 1 if self._requested_port is not None else _PORT_ATTEMPTS

        for attempt in range(1, attempts + 1):
            try:
                self._start_once(java, home)
                return
            except _PortTakenError:
                self.stop()
                if attempt == attempts:
                    raise
                logger.warning(
                    "port taken before the broker bound it attempt=%d", attempt
                )
            except BaseException:
                self.stop()
                raise

    def _start_once(self, java: str, home: Path) -> None:
        started = time.monotonic()
        _remove_orphaned_workdirs()
        workdir = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX))
        self._workdir = workdir
        (workdir / _OWNER_FILE).write_text(str(os.getpid()), encoding="utf-8")
        broker_port, controller_port = _free_ports(self._requested_port)
        config_path = self._write_config(workdir, broker_port, controller_port)
        jvm_options = self._jvm_options(workdir)
        classpath = str(home / "libs" / "*")

        _format_storage(java, jvm_options, classpath, config_path, workdir)
        command = [
            *die_with_parent_prefix(),
            java,
            *jvm_options,
            "-cp",
            classpath,
            "kafka.Kafka",
            str(config_path),
        ]
        with (workdir / "broker.log").open("wb") as log_file:
            process = subprocess.Popen(
                command,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._process = process
        self._port = broker_port
        _live_brokers.add(self)
        logger.info(
            "Kafka broker starting pid=%d port=%d controller_port=%d",
            process.pid,
            broker_port,
            controller_port,
        )

        self._await_ready(process, broker_port, started + self._start_timeout_s)
        logger.info(
            "Kafka broker ready bootstrap=%s elapsed_s=%.1f",
            self.bootstrap_servers,
            time.monotonic() - started,
        )

    def _write_config(
        self, workdir: Path, broker_port: int, controller_port: int
    ) -> Path:
        properties = {
            "process.roles": "broker,controller",
            "node.id": str(_NODE_ID),
            "controller.quorum.voters": f"{_NODE_ID}@127.0.0.1:{controller_port}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{broker_port},"
                f"CONTROLLER://127.0.0.1:{controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": (
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
            ),
            "log.dirs": str(workdir / "data"),
            **_DEFAULT_PROPERTIES,
            **self._properties,
        }
        config_path = workdir / "server.properties"
        lines = [f"{key}={value}" for key, value in properties.items()]
        config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        (workdir / "log4j2.properties").write_text(_LOG4J2_PROPERTIES, encoding="utf-8")
        return config_path

    def _jvm_options(self, workdir: Path) -> list[str]:
        return [
            f"-Xmx{self._heap_mib}m",
            # A test broker starts often and works little: the client compiler
            # alone and the serial collector start faster and use fewer threads.
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            "-XX:+ExitOnOutOfMemoryError",
            "-XX:-UsePerfData",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={workdir / 'log4j2.properties'}",
        ]

    def _await_ready(
        self, process: subprocess.Popen[bytes], port: int, deadline: float
    ) -> None:
        while True:
            exit_code = process.poll()
            if exit_code is not None:
                tail = self.log_tail()
                error = _PortTakenError if "Address already in use" in tail else None
                raise (error or LocalKafkaError)(
                    f"the Kafka broker exited with code {exit_code} before it "
                    f"answered; last lines of its log:\n{tail}"
                )
            if _broker_answers(port):
                return
            if time.monotonic() > deadline:
                raise LocalKafkaError(
                    f"the Kafka broker did not answer on 127.0.0.1:{port} within "
                    f"{self._start_timeout_s:.0f} s; last lines of its log:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(_PROBE_INTERVAL_S)

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL) and remove its folder.

        Safe to call more than once and on a broker that failed to start.
        """
        process = self._process
        if process is not None:
            self._terminate(process)
        _live_brokers.discard(self)
        self._process = None
        self._port = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def _terminate(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is not None:
            return
        started = time.monotonic()
        # The broker leads its own process group, and the group cannot be
        # reused while its leader is not yet reaped, so signalling it is safe.
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=self._stop_timeout_s)
        except subprocess.TimeoutExpired:
            logger.warning(
                "Kafka broker ignored SIGTERM, killing it pid=%d timeout_s=%.0f",
                process.pid,
                self._stop_timeout_s,
            )
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
        logger.info(
            "Kafka broker stopped pid=%d exit_code=%d elapsed_s=%.1f",
            process.pid,
            process.returncode,
            time.monotonic() - started,
        )

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


# Brokers started and not yet stopped; stopped at interpreter exit so that a
# forgotten stop() still leaves no JVM behind.
_live_brokers: set[LocalKafka] = set()


@atexit.register
def _stop_live_brokers() -> None:
    for broker in list(_live_brokers):
        broker.stop()


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def die_with_parent_prefix() -> list[str]:
    """Return a command prefix that asks Linux to SIGKILL the child with its parent.

    This covers the parent dying without running ``atexit`` (SIGKILL, a crash).
    The setting applies from the moment ``setpriv`` runs, so a parent dying in
    the few milliseconds before can still leave the broker running. Without
    ``setpriv`` (util-linux) only ``atexit`` and ``stop()`` remain.
    """
    setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    if setpriv is None:
        logger.warning(
            "setpriv not found: the Kafka broker would outlive a killed Python"
        )
        return []
    return [setpriv, "--pdeathsig", "KILL", "--"]


def _remove_orphaned_workdirs() -> None:
    """Remove broker folders left by Python processes that were killed."""
    for workdir in Path(tempfile.gettempdir()).glob(f"{_WORKDIR_PREFIX}*"):
        try:
            owner_pid = int((workdir / _OWNER_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not ours to judge, or its owner is still writing it
        if not _process_exists(owner_pid):
            logger.info("removing orphaned broker folder path=%s", workdir)
            shutil.rmtree(workdir, ignore_errors=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user
    return True


def _find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    java = shutil.which("java")
    if java is None:
        raise LocalKafkaError(
            "no Java runtime: set JAVA_HOME or put 'java' (17 or newer) on PATH"
        )
    return java


def _format_storage(
    java: str,
    jvm_options: Sequence[str],
    classpath: str,
    config_path: Path,
    workdir: Path,
) -> None:
    tool = [java, *jvm_options, "-cp", classpath, "kafka.tools.StorageTool"]
    cluster_id = _random_cluster_id()
    _run_tool(
        [*tool, "format", "--cluster-id", cluster_id, "--config", str(config_path)],
        cwd=workdir,
        failure="formatting Kafka storage failed",
    )


def _run_tool(command: Sequence[str], *, cwd: Path, failure: str) -> None:
    """Run a command to completion; on failure raise with its last lines."""
    result = subprocess.run(
        command,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        output = _last_lines(result.stdout + result.stderr)
        raise LocalKafkaError(f"{failure} (exit code {result.returncode}):\n{output}")


def _random_cluster_id() -> str:
    # Kafka's own generator skips ids starting with '-', which its command
    # line tools would read as an option.
    while True:
        cluster_id = base64.urlsafe_b64encode(secrets.token_bytes(16))
        text = cluster_id.decode("ascii").rstrip("=")
        if not text.startswith("-"):
            return text


def _free_ports(broker_port: int | None) -> tuple[int, int]:
    """Return (broker, controller) ports that were free a moment ago.

    Another process may still take one before the broker binds it; the
    caller retries on a fresh pair when that happens.
    """
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for requested in (broker_port or 0, 0):
            sock = stack.enter_context(
                socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            )
            try:
                sock.bind(("127.0.0.1", requested))
            except OSError as exc:
                raise LocalKafkaError(
                    f"port {requested} on 127.0.0.1 is not free: {exc}"
                ) from exc
            ports.append(sock.getsockname()[1])
    return ports[0], ports[1]


def _broker_answers(port: int) -> bool:
    """True when the broker serves a Metadata request that lists a broker.

    A KRaft broker enables client requests only after it has caught up with
    the metadata log and been unfenced, and lists only unfenced brokers, so
    an answer naming one means topics can be created and written.
    """
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=2.0) as sock,
            sock.makefile("rb") as stream,
        ):
            sock.sendall(_METADATA_REQUEST)
            # Response header v0 (correlation id), throttle_time_ms, then the
            # length of the broker array.
            _, _, _, broker_count = struct.unpack(">iiii", stream.read(16))
    except (OSError, struct.error) as exc:
        logger.debug("broker not answering yet port=%d reason=%s", port, exc)
        return False
    return bool(broker_count > 0)


def _metadata_request() -> bytes:
    # Metadata v8 (the newest before flexible encoding), header v1, asking
    # about no topic: api_key 3, version 8, correlation id, client id, then an
    # empty topic array and three false flags.
    client_id = b"stackmeter-local-kafka"
    body = (
        struct.pack(">hhih", 3, 8, 1, len(client_id))
        + client_id
        + struct.pack(">ibbb", 0, 0, 0, 0)
    )
    return struct.pack(">i", len(body)) + body


_METADATA_REQUEST = _metadata_request()


def _last_lines(text: str, count: int = _LOG_TAIL_LINES) -> str:
    lines = text.rstrip().splitlines()
    return "\n".join(lines[-count:]) if lines else "(no output)"


def _property_argument(value: str) -> tuple[str, str]:
    key, separator, setting = value.partition("=")
    if not separator or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    return key.strip(), setting.strip()


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stackmeter.local_kafka",
        description=(
            f"Fetch and run a local single-node Apache Kafka {KAFKA_VERSION} "
            "broker (KRaft) on 127.0.0.1 for tests and demos. Jars are cached "
            f"under ${CACHE_DIR_ENV} (default ~/.cache/stackmeter)."
        ),
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log debug messages too"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "fetch",
        help="fetch the broker's jars with Maven (once) and print their folder",
        description="Fetch the broker's jars with Maven unless already cached.",
    )
    run = commands.add_parser(
        "run",
        help="start a broker, print its bootstrap address, stop on Ctrl-C/SIGTERM",
        description=(
            "Start a broker in a fresh temporary folder, print its bootstrap "
            "address on stdout and run until SIGINT or SIGTERM; then stop it "
            "and remove the folder. Topics are not auto-created."
        ),
    )
    run.add_argument(
        "--port",
        type=int,
        default=None,
        help="client port on 127.0.0.1 (default: a free port)",
    )
    run.add_argument(
        "--heap-mib", type=int, default=512, help="JVM heap limit (default: 512)"
    )
    run.add_argument(
        "--start-timeout-s",
        type=float,
        default=120.0,
        help="how long to wait for the broker to answer (default: 120)",
    )
    run.add_argument(
        "--property",
        dest="properties",
        type=_property_argument,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra broker setting, e.g. auto.create.topics.enable=true (repeatable)",
    )
    return parser


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _run(arguments: argparse.Namespace) -> int:
    broker = LocalKafka(
        port=arguments.port,
        heap_mib=arguments.heap_mib,
        start_timeout_s=arguments.start_timeout_s,
        properties=dict(arguments.properties),
    )
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        broker.start()
        print(broker.bootstrap_servers, flush=True)
        exit_code = broker.wait()
        logger.error(
            "Kafka broker exited on its own exit_code=%d; last lines of its log:\n%s",
            exit_code,
            broker.log_tail(),
        )
        return 1
    except KeyboardInterrupt:
        logger.info("stop requested")
        return 0
    finally:
        broker.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the process exit code."""
    arguments = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if arguments.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if arguments.command == "fetch":
            print(fetch_kafka(), flush=True)
            return 0
        return _run(arguments)
    except LocalKafkaError as exc:
        logger.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
