"""Where one partition's window state is read and written: the store interface,
the writes a step produces, an index of resources by scope, and a dict store.

The Faust worker implements the same interface over a table with a changelog
(:mod:`stackmeter.streams.tables`); unit tests use :class:`MemoryWindowStore`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from stackmeter.streams.state import (
    Clock,
    EmittedHours,
    ResourceKey,
    ResourceState,
    Scope,
)


@dataclass(frozen=True, slots=True)
class ClockWrite:
    scope: Scope
    clock: Clock


@dataclass(frozen=True, slots=True)
class ResourceWrite:
    """Replace a resource's state; None deletes it."""

    key: ResourceKey
    state: ResourceState | None


@dataclass(frozen=True, slots=True)
class EmittedWrite:
    """Replace a resource's published hours; None deletes them."""

    key: ResourceKey
    emitted: EmittedHours | None


Write = ClockWrite | ResourceWrite | EmittedWrite


@dataclass(slots=True)
class IndexEntry:
    """What run markers need to know of a resource without loading it."""

    alive: bool = False
    last_seen_ms: int = 0
    first_open_hour_ms: int | None = None
    first_emitted_hour_ms: int | None = None
    has_state: bool = False

    @property
    def empty(self) -> bool:
        return not self.has_state and self.first_emitted_hour_ms is None


class ResourceIndex:
    """Resources of one partition by scope, with the fields markers act on.

    It is derived from the stored values alone, so a store can rebuild it
    after a restart or a rebalance by reading its values once.
    """

    def __init__(self) -> None:
        self._by_scope: dict[Scope, dict[str, IndexEntry]] = {}

    def entries(self, scope: Scope) -> Mapping[str, IndexEntry]:
        return self._by_scope.get(scope, {})

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._by_scope.values())

    def note(self, write: ResourceWrite | EmittedWrite) -> None:
        key = write.key
        entries = self._by_scope.setdefault(key.scope, {})
        entry = entries.get(key.resource_id) or IndexEntry()
        if isinstance(write, ResourceWrite):
            state = write.state
            entry.has_state = state is not None
            entry.alive = state.alive if state is not None else False
            entry.last_seen_ms = state.last_seen_ms if state is not None else 0
            entry.first_open_hour_ms = (
                state.first_open_hour() if state is not None else None
            )
        else:
            emitted = write.emitted
            entry.first_emitted_hour_ms = (
                emitted.first_hour() if emitted is not None else None
            )
        if entry.empty:
            entries.pop(key.resource_id, None)
            if not entries:
                del self._by_scope[key.scope]
        else:
            entries[key.resource_id] = entry


class WindowStore(Protocol):
    """Window state of one partition."""

    def clock(self, scope: Scope) -> Clock | None: ...

    def resource(self, key: ResourceKey) -> ResourceState | None: ...

    def emitted(self, key: ResourceKey) -> EmittedHours | None: ...

    def index(self, scope: Scope) -> Mapping[str, IndexEntry]: ...

    def apply(self, writes: Sequence[Write]) -> None:
        """Apply writes in order; a crash may keep any prefix of them."""
        ...


class MemoryWindowStore:
    """A :class:`WindowStore` in plain dicts, for tests and tools."""

    def __init__(self) -> None:
        self.clocks: dict[Scope, Clock] = {}
        self.resources: dict[ResourceKey, ResourceState] = {}
        self.emitted_hours: dict[ResourceKey, EmittedHours] = {}
        self._index = ResourceIndex()

    def clock(self, scope: Scope) -> Clock | None:
        return self.clocks.get(scope)

    def resource(self, key: ResourceKey) -> ResourceState | None:
        return self.resources.get(key)

    def emitted(self, key: ResourceKey) -> EmittedHours | None:
        return self.emitted_hours.get(key)

    def index(self, scope: Scope) -> Mapping[str, IndexEntry]:
        return self._index.entries(scope)

    def apply(self, writes: Sequence[Write]) -> None:
        for write in writes:
            if isinstance(write, ClockWrite):
                self.clocks[write.scope] = write.clock
                continue
            if isinstance(write, ResourceWrite):
                if write.state is None:
                    self.resources.pop(write.key, None)
                else:
                    self.resources[write.key] = write.state
            elif write.emitted is None:
                self.emitted_hours.pop(write.key, None)
            else:
                self.emitted_hours[write.key] = write.emitted
            self._index.note(write)

    def copy(self) -> MemoryWindowStore:
        """An independent store with the same state (values are immutable)."""
        twin = MemoryWindowStore()
        twin.apply([ClockWrite(s, c) for s, c in self.clocks.items()])
        twin.apply([ResourceWrite(k, v) for k, v in self.resources.items()])
        twin.apply([EmittedWrite(k, v) for k, v in self.emitted_hours.items()])
        return twin
