"""Window state in one plain Faust table, seen as one store per partition.

Keys are JSON arrays naming the kind of value, the partition and the value's
own key (``["r", 3, platform, type, resource id]``), values are the JSON of the
state classes. Faust writes each change to the table's changelog partition of
the event being processed, so every key of partition ``p`` lives in changelog
partition ``p`` and is restored with it.

The table is a plain one, not a windowed one: Faust's windowed tables close
windows on a wall-clock timer, lose their close callbacks across partitions
and rebalances, and delete the data before the callback runs, while billing
needs hours closed by event time that run markers advance. The hour buckets
are therefore fields of the values here, closed by
:mod:`stackmeter.streams.existence`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import orjson

from stackmeter.streams.state import (
    Clock,
    EmittedHours,
    ResourceKey,
    ResourceState,
    Scope,
)
from stackmeter.streams.store import (
    ClockWrite,
    EmittedWrite,
    IndexEntry,
    ResourceIndex,
    ResourceWrite,
    Write,
)

logger = logging.getLogger(__name__)

CLOCK = "c"
RESOURCE = "r"
EMITTED = "e"


class RawTable(Protocol):
    """The part of a Faust table (bytes to bytes) the store uses."""

    def get(self, key: bytes) -> bytes | None: ...

    def __setitem__(self, key: bytes, value: bytes) -> None: ...

    def __delitem__(self, key: bytes) -> None: ...

    def items(self) -> Iterable[tuple[bytes, bytes]]: ...


def table_key(kind: str, partition: int, parts: Iterable[str]) -> bytes:
    return orjson.dumps([kind, partition, *parts])


def _load(raw: bytes | None) -> Any:
    return None if raw is None else orjson.loads(raw)


class TableWindowStore:
    """The :class:`~stackmeter.streams.store.WindowStore` of one partition."""

    def __init__(self, table: RawTable, partition: int, index: ResourceIndex) -> None:
        self._table = table
        self._partition = partition
        self._index = index

    def clock(self, scope: Scope) -> Clock | None:
        data = _load(self._table.get(table_key(CLOCK, self._partition, scope)))
        return None if data is None else Clock.from_json(data)

    def resource(self, key: ResourceKey) -> ResourceState | None:
        data = _load(self._table.get(table_key(RESOURCE, self._partition, key)))
        return None if data is None else ResourceState.from_json(data)

    def emitted(self, key: ResourceKey) -> EmittedHours | None:
        data = _load(self._table.get(table_key(EMITTED, self._partition, key)))
        return None if data is None else EmittedHours.from_json(data)

    def index(self, scope: Scope) -> Mapping[str, IndexEntry]:
        return self._index.entries(scope)

    def apply(self, writes: Sequence[Write]) -> None:
        for write in writes:
            if isinstance(write, ClockWrite):
                key = table_key(CLOCK, self._partition, write.scope)
                self._table[key] = orjson.dumps(write.clock.to_json())
                continue
            value: ResourceState | EmittedHours | None
            if isinstance(write, ResourceWrite):
                key = table_key(RESOURCE, self._partition, write.key)
                value = write.state
            else:
                key = table_key(EMITTED, self._partition, write.key)
                value = write.emitted
            if value is None:
                self._delete(key)
            else:
                self._table[key] = orjson.dumps(value.to_json())
            self._index.note(write)

    def _delete(self, key: bytes) -> None:
        try:
            del self._table[key]
        except KeyError:
            logger.debug("deleting a key already gone key=%r", key)


class PartitionIndexes:
    """The resource index of each partition, rebuilt from the table on demand.

    After a rebalance the table holds what recovery restored, so the indexes
    are dropped then and rebuilt, in one pass over the table, when the next
    event arrives (Faust delivers none before recovery completes).
    """

    def __init__(self, table: RawTable) -> None:
        self._table = table
        self._by_partition: dict[int, ResourceIndex] | None = None

    def invalidate(self) -> None:
        self._by_partition = None

    def store(self, partition: int) -> TableWindowStore:
        if self._by_partition is None:
            self._by_partition = self._rebuild()
        index = self._by_partition.setdefault(partition, ResourceIndex())
        return TableWindowStore(self._table, partition, index)

    def _rebuild(self) -> dict[int, ResourceIndex]:
        indexes: dict[int, ResourceIndex] = {}
        for raw_key, raw_value in self._table.items():
            kind, partition, *parts = orjson.loads(raw_key)
            if kind not in (RESOURCE, EMITTED):
                continue
            key = ResourceKey(*parts)
            index = indexes.setdefault(partition, ResourceIndex())
            data = orjson.loads(raw_value)
            if kind == RESOURCE:
                index.note(ResourceWrite(key, ResourceState.from_json(data)))
            else:
                index.note(EmittedWrite(key, EmittedHours.from_json(data)))
        logger.info(
            "window index rebuilt partitions=%d resources=%d",
            len(indexes),
            sum(len(index) for index in indexes.values()),
        )
        return indexes
