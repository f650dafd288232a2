"""Per-topic batches: what was read, what to insert, and which offsets it covers.

A topic has at most one sealed batch, being stored, and one open batch filling
behind it. A sealed batch never changes: retried after a timeout it carries
the same rows and the same deduplication token, so ClickHouse keeps it once.
Its offsets are committed only after its insert succeeded, in order, so the
committed position never passes a row that is not stored.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from stackmeter.sinks.rows import Row, TableSpec


@dataclass(frozen=True, slots=True)
class OffsetRange:
    """The first and last offset a batch read from one partition."""

    partition: int
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class RefusedMessage:
    """A message that goes to the dead-letter topic, with the reason."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str


@dataclass
class _PartitionPart:
    first: int
    last: int
    rows: list[Row] = field(default_factory=list)
    refused: list[RefusedMessage] = field(default_factory=list)


class TopicBatch:
    """Messages of one topic read since the last batch, grouped by partition."""

    def __init__(self, topic: str, table: TableSpec) -> None:
        self.topic = topic
        self.table = table
        self.opened_at: float | None = None
        self._parts: dict[int, _PartitionPart] = {}
        self._size = 0
        self.refused_sent = False

    def _part(self, partition: int, offset: int, now: float) -> _PartitionPart:
        if self.opened_at is None:
            self.opened_at = now
        part = self._parts.get(partition)
        if part is None:
            part = self._parts[partition] = _PartitionPart(offset, offset)
        elif offset <= part.last:
            raise ValueError(
                f"{self.topic}[{partition}]: offset {offset} read after {part.last}"
            )
        part.last = offset
        return part

    def add_row(self, partition: int, offset: int, row: Row, now: float) -> None:
        self._part(partition, offset, now).rows.append(row)
        self._size += 1

    def add_skipped(self, partition: int, offset: int, now: float) -> None:
        """A message read and deliberately not stored; only its offset counts."""
        self._part(partition, offset, now)

    def add_refused(self, refused: RefusedMessage, now: float) -> None:
        self._part(refused.partition, refused.offset, now).refused.append(refused)
        self._size += 1

    @property
    def size(self) -> int:
        """Rows and refused messages; skipped messages cost nothing to hold."""
        return self._size

    @property
    def empty(self) -> bool:
        return not self._parts

    def due(self, now: float, batch_rows: int, batch_s: float) -> bool:
        """Full, or holding messages for ``batch_s`` already."""
        if self.opened_at is None:
            return False
        return self._size >= batch_rows or now - self.opened_at >= batch_s

    def rows(self) -> list[Row]:
        """The rows to insert, partition by partition in offset order."""
        rows = [row for part in self._parts.values() for row in part.rows]
        if self.table.distinct_rows:
            rows = list(dict.fromkeys(rows))
        return rows

    def refused(self) -> list[RefusedMessage]:
        return [message for part in self._parts.values() for message in part.refused]

    def ranges(self) -> list[OffsetRange]:
        return [
            OffsetRange(partition, part.first, part.last)
            for partition, part in sorted(self._parts.items())
        ]

    def offsets_to_commit(self) -> dict[int, int]:
        """Per partition, the offset of the next message to read."""
        return {r.partition: r.last + 1 for r in self.ranges()}

    def dedup_token(self) -> str:
        """The same token for the same messages, in this process or after a restart."""
        spans = ",".join(f"{r.partition}:{r.first}-{r.last}" for r in self.ranges())
        digest = hashlib.sha256(f"{self.topic}|{spans}".encode()).hexdigest()
        return f"{self.table.name}-{digest[:32]}"

    def drop_partitions(self, partitions: Iterable[int]) -> int:
        """Forget what was read from partitions this consumer no longer owns.

        Nothing of it was committed, so the partition's next owner reads it
        again. Returns how many rows and refused messages were dropped.
        """
        dropped = 0
        for partition in partitions:
            part = self._parts.pop(partition, None)
            if part is not None:
                dropped += len(part.rows) + len(part.refused)
        self._size -= dropped
        if not self._parts:
            self.opened_at = None
        return dropped


def backoff_s(
    attempt: int,
    initial_s: float,
    max_s: float,
    rand: random.Random | None = None,
) -> float:
    """Delay before attempt ``attempt + 1``: doubling, capped, with jitter.

    The jitter (50 to 100 percent of the delay) keeps several sinks from
    hitting a recovering ClickHouse at the same instant.
    """
    delay = min(max_s, initial_s * 2.0 ** max(attempt - 1, 0))
    fraction = rand.uniform(0.5, 1.0) if rand else random.uniform(0.5, 1.0)
    return delay * fraction


class TopicPipeline:
    """The open and sealed batches of one topic and the retry state of the sealed."""

    def __init__(self, topic: str, table: TableSpec) -> None:
        self.topic = topic
        self.table = table
        self.open = TopicBatch(topic, table)
        self.sealed: TopicBatch | None = None
        self.failed_attempts = 0
        self.retry_at = 0.0

    def seal_if_due(self, now: float, batch_rows: int, batch_s: float) -> bool:
        """Move the open batch to sealed when it is due and nothing is sealed."""
        if self.sealed is not None or not self.open.due(now, batch_rows, batch_s):
            return False
        self.sealed, self.open = self.open, TopicBatch(self.topic, self.table)
        self.failed_attempts = 0
        self.retry_at = now
        return True

    def ready(self, now: float) -> bool:
        """A sealed batch waits and its back-off, if any, has passed."""
        return self.sealed is not None and now >= self.retry_at

    def stored(self) -> TopicBatch:
        """The sealed batch is stored and committed; returns it."""
        batch = self.sealed
        if batch is None:
            raise RuntimeError(f"{self.topic}: no sealed batch to mark stored")
        self.sealed = None
        self.failed_attempts = 0
        return batch

    def failed(self, now: float, delay_s: float) -> None:
        self.failed_attempts += 1
        self.retry_at = now + delay_s

    @property
    def idle(self) -> bool:
        """Nothing read that is not stored and committed."""
        return self.sealed is None and self.open.empty

    def holds_back(self, batch_rows: int) -> bool:
        """Stop reading this topic until the sealed batch is stored.

        While the sealed batch is being inserted normally, reading goes on
        until a second batch is full (pausing costs a fetch round trip on
        resume). Once an attempt has failed, reading stops as soon as one
        batch is full, so an outage holds at most two batches in memory.
        """
        if self.sealed is None:
            return False
        if self.failed_attempts:
            return self.open.size >= batch_rows
        return self.open.size >= 2 * batch_rows
