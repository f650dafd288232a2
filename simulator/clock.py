"""The simulator's clock: simulated UTC time that tests move by hand or that runs
at a chosen speed (simulated seconds per real second) for demos."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime


def to_ts(moment: datetime) -> float:
    """Seconds since the epoch for an aware datetime; naive ones count as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def from_ts(ts: float) -> datetime:
    """The aware UTC datetime of an epoch timestamp."""
    return datetime.fromtimestamp(ts, tz=UTC)


@functools.lru_cache(maxsize=1 << 16)
def iso_z(ts: float) -> str:
    """ISO 8601 UTC text with a ``Z`` suffix and whole seconds, as OpenStack APIs
    print timestamps. Cached: listings print the same few instants many times."""
    return from_ts(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


class SimClock:
    """Simulated time, frozen while ``speed`` is 0.

    Every change re-anchors the clock on the real monotonic clock, so setting,
    advancing and changing speed compose without drift. Safe to use from several
    threads: the test thread moves it while the server thread reads it.
    """

    def __init__(
        self,
        start: datetime,
        speed: float = 0.0,
        real_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed < 0:
            raise ValueError(f"clock speed must be >= 0, got {speed}")
        self._lock = threading.Lock()
        self._real_clock = real_clock
        self._anchor_sim_ts = to_ts(start)
        self._anchor_real = real_clock()
        self._speed = speed

    @property
    def speed(self) -> float:
        """Simulated seconds that pass per real second."""
        return self._speed

    def now_ts(self) -> float:
        """Current simulated time in seconds since the epoch."""
        with self._lock:
            return self._now_locked()

    def now(self) -> datetime:
        """Current simulated time as an aware UTC datetime."""
        return from_ts(self.now_ts())

    def set(self, moment: datetime) -> None:
        """Jump to ``moment``; the clock keeps its speed from there."""
        with self._lock:
            self._anchor_sim_ts = to_ts(moment)
            self._anchor_real = self._real_clock()

    def advance(self, seconds: float) -> None:
        """Move the clock forward (or back, when negative) by ``seconds``."""
        with self._lock:
            self._anchor_sim_ts = self._now_locked() + seconds
            self._anchor_real = self._real_clock()

    def set_speed(self, speed: float) -> None:
        """Run at ``speed`` simulated seconds per real second from now on."""
        if speed < 0:
            raise ValueError(f"clock speed must be >= 0, got {speed}")
        with self._lock:
            self._anchor_sim_ts = self._now_locked()
            self._anchor_real = self._real_clock()
            self._speed = speed

    def _now_locked(self) -> float:
        elapsed = self._real_clock() - self._anchor_real
        return self._anchor_sim_ts + elapsed * self._speed
