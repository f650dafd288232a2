"""Runs the simulator in a background thread with its own asyncio loop, for
synchronous callers such as tests that drive openstacksdk directly."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager

from stackmeter.simulator.scenario import Scenario
from stackmeter.simulator.server import Simulator

logger = logging.getLogger(__name__)

#: Real seconds to wait for the server thread to start or stop.
THREAD_TIMEOUT_S = 30.0


@contextmanager
def run_simulator(
    scenario: Scenario,
    *,
    max_page_size: int = 1000,
    clock_speed: float = 0.0,
    host: str = "127.0.0.1",
    port: int = 0,
) -> Iterator[Simulator]:
    """Serve ``scenario`` on ``host:port`` (0: a free port) from a background
    thread and yield the running :class:`Simulator`.

    Its clock, faults, ``base_url`` and ``write_clouds_yaml`` are safe to use
    from the caller's thread. The server stops when the block exits.
    """
    simulator = Simulator(
        scenario, max_page_size=max_page_size, clock_speed=clock_speed
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=_run_loop, args=(loop,), name="stackmeter-simulator", daemon=True
    )
    thread.start()
    try:
        started: Future[str] = asyncio.run_coroutine_threadsafe(
            simulator.start(host, port), loop
        )
        started.result(THREAD_TIMEOUT_S)
        yield simulator
    finally:
        try:
            stopped = asyncio.run_coroutine_threadsafe(simulator.stop(), loop)
            stopped.result(THREAD_TIMEOUT_S)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(THREAD_TIMEOUT_S)
            loop.close()


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        # Let cancelled tasks and closing transports finish before the loop
        # is closed by the owning thread.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
