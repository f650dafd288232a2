"""The clock a sampler reads its runs' ``sampled_at`` from and schedules them by.

Production uses the wall clock. Tests and the demo pass the OpenStack
simulator's clock instead, which may be frozen, moved by hand or run faster
than real time; the sampler's interval is then measured in simulated time too.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Where a sampler gets the time from."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    async def sleep_until(self, moment: datetime) -> None:
        """Return once :meth:`now` has reached ``moment``."""
        ...


def to_millis(moment: datetime) -> datetime:
    """``moment`` in UTC with the sub-millisecond part dropped, as Avro's
    timestamp-millis keeps it."""
    if moment.tzinfo is None:
        raise ValueError(f"expected a timezone-aware time, got {moment!r}")
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class WallClock:
    """The real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, moment: datetime) -> None:
        delay_s = (moment - self.now()).total_seconds()
        if delay_s > 0:
            await asyncio.sleep(delay_s)


class PolledClock:
    """Any function that tells the time, e.g. the simulator's ``SimClock.now``.

    Waiting polls the function every ``poll_s`` real seconds, so it works for a
    clock that is frozen, jumps when a test moves it, or runs at any speed.
    ``now_fn`` must be quick: it is called on the event loop.
    """

    def __init__(self, now_fn: Callable[[], datetime], poll_s: float = 0.05) -> None:
        if poll_s <= 0:
            raise ValueError(f"poll_s must be above 0, got {poll_s}")
        self._now_fn = now_fn
        self._poll_s = poll_s

    def now(self) -> datetime:
        moment = self._now_fn()
        if moment.tzinfo is None:
            raise ValueError(f"clock function returned a naive time {moment!r}")
        return moment

    async def sleep_until(self, moment: datetime) -> None:
        # Polling is the point: the time is another component's to move.
        while self.now() < moment:  # noqa: ASYNC110
            await asyncio.sleep(self._poll_s)


class HttpClock(PolledClock):
    """The simulated clock of a simulator in another process, read from its
    control endpoint (``GET <base_url>/_sim/clock``, which answers a JSON
    object with the time as ISO 8601 text under ``now``).

    Each reading is one HTTP request to loopback; ``poll_s`` keeps that rare.
    """

    def __init__(self, base_url: str, poll_s: float = 0.2, timeout_s: float = 5.0):
        self._url = base_url.rstrip("/") + "/_sim/clock"
        self._timeout_s = timeout_s
        super().__init__(self._read, poll_s)

    def _read(self) -> datetime:
        with urllib.request.urlopen(self._url, timeout=self._timeout_s) as response:
            body = json.loads(response.read())
        return datetime.fromisoformat(str(body["now"]).replace("Z", "+00:00"))


def jittered(moment: datetime, jitter_s: float, draw: Callable[[], float]) -> datetime:
    """``moment`` pushed later by ``draw() * jitter_s`` seconds (``draw`` gives a
    number in [0, 1)), so that samplers of several platforms do not all hit
    the APIs at the same second."""
    return moment + timedelta(seconds=draw() * jitter_s)
