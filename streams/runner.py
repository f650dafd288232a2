"""Running the usage worker: as the ``stackmeter worker`` process, or in a
thread of another process until a stop event is set.

Before Faust starts, the pipeline's topics are created if missing (the usage
topic compacted). With the RocksDB store, a worker that did not stop cleanly
drops its local table files at the next start and restores them from the
changelog: RocksDB keeps writes whose changelog messages a crash may have lost,
and replaying the changelog over them could mix old and new values.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
from pathlib import Path
from typing import Any

import faust

from stackmeter.config import Config
from stackmeter.errors import StackmeterError
from stackmeter.streams.app import build_app
from stackmeter.topics import TopicNames, ensure_topics, pipeline_topics

logger = logging.getLogger(__name__)

CLEAN_STOP_FILE = "stopped-cleanly"
_STOP_POLL_S = 0.2


class WorkerError(StackmeterError):
    """The worker stopped on an error; its log says which."""


def validate_worker_config(config: Config) -> None:
    """Raise one ConfigError for every problem the worker cares about."""
    sections = ["kafka", "worker"]
    if config.worker.rating:
        sections.append("rating")
    config.validate(*sections)


async def prepare_topics(config: Config) -> list[str]:
    """Create the pipeline's missing topics; returns the names created."""
    names = TopicNames(config.kafka.topic_prefix)
    return await ensure_topics(
        config.kafka.bootstrap_servers,
        pipeline_topics(names, config.kafka.partitions),
        config.kafka.replication_factor,
    )


class _FaustWorker(faust.Worker):
    """Faust's worker, quiet, leaving logging alone, signals only where allowed."""

    def __init__(self, app: faust.App, loop: asyncio.AbstractEventLoop) -> None:
        self._handle_signals = threading.current_thread() is threading.main_thread()
        super().__init__(
            app,
            loop=loop,
            quiet=True,
            redirect_stdouts=False,
            override_logging=False,
        )
        # The progress spinner writes terminal escapes to stdout.
        self.spinner = None

    def install_signal_handlers(self) -> None:
        # Signal handlers can only be installed from the main thread; in
        # another thread the stop event is the way to stop.
        if self._handle_signals:
            super().install_signal_handlers()


def run_worker(config: Config, stop: threading.Event | None = None) -> None:
    """Run the worker in this thread until SIGINT/SIGTERM or ``stop`` is set.

    Signals are handled only when called from the main thread. Raises
    :class:`WorkerError` when the worker stops on an error.
    """
    validate_worker_config(config)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    created = loop.run_until_complete(prepare_topics(config))
    if created:
        logger.info("topics created count=%d", len(created))
    app = build_app(config)
    clean_stop = _guard_local_state(app, config)
    worker = _FaustWorker(app, loop)
    finished = threading.Event()
    if stop is not None:
        threading.Thread(
            target=_stop_when_set,
            args=(stop, finished, worker, loop),
            name="stackmeter-worker-stop",
            daemon=True,
        ).start()
    logger.info(
        "worker starting app_id=%s store=%s partitions=%d rating=%s",
        config.worker.app_id,
        config.worker.store,
        config.kafka.partitions,
        config.worker.rating,
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise WorkerError(f"the worker stopped with exit code {exc.code}") from exc
    finally:
        finished.set()
    if clean_stop is not None:
        clean_stop.touch()
    logger.info("worker stopped app_id=%s", config.worker.app_id)


def _stop_when_set(
    stop: threading.Event,
    finished: threading.Event,
    worker: Any,
    loop: asyncio.AbstractEventLoop,
) -> None:
    while not finished.is_set():
        if stop.wait(_STOP_POLL_S):
            if not finished.is_set() and not loop.is_closed():
                asyncio.run_coroutine_threadsafe(worker.stop(), loop)
            return


def _guard_local_state(app: faust.App, config: Config) -> Path | None:
    """Drop RocksDB files left by a worker that did not stop cleanly.

    Returns the marker file to create after a clean stop, or None for the
    memory store, whose state always comes from the changelog.
    """
    if not config.worker.store.startswith("rocksdb"):
        return None
    datadir = Path(app.conf.datadir)
    marker = datadir / CLEAN_STOP_FILE
    tabledir = Path(app.conf.tabledir)
    if tabledir.exists() and not marker.exists():
        logger.warning(
            "the last worker run did not stop cleanly; local table files are "
            "removed and restored from the changelog path=%s",
            tabledir,
        )
        shutil.rmtree(tabledir)
    datadir.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    return marker
