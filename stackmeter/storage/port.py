"""The storage port: what the rest of stackmeter may ask of ClickHouse.

Adapters (embedded chDB, a ClickHouse server over HTTP) implement ``Storage``
and run the same SQL; callers never see which one they hold. Failures surface
as ``StorageError`` subclasses whose ``retriable`` flag tells a sink whether to
back off and try the same call again or to give up on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from stackmeter.errors import StorageError

Row = tuple[Any, ...]


class StorageUnavailableError(StorageError):
    """ClickHouse could not be reached or was overloaded; the call may succeed later."""

    retriable = True


class StorageQueryError(StorageError):
    """ClickHouse refused the statement or its data; repeating it fails the same way."""

    retriable = False


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Rows of a query as tuples, in the order of ``column_names``."""

    column_names: tuple[str, ...]
    rows: list[Row]


@runtime_checkable
class Storage(Protocol):
    """One connection to ClickHouse, embedded or remote.

    Parameters are bound server-side: write ``{name:Type}`` in the SQL and pass
    ``{"name": value}``; values never become part of the SQL text. Methods are
    blocking (asyncio callers run them in a thread); threads may share one
    storage, whose calls then run one at a time.
    """

    @property
    def target(self) -> str:
        """Where the data lives, without credentials (safe to log)."""
        ...

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns no rows (DDL, ALTER, OPTIMIZE)."""
        ...

    def query(
        self, sql: str, parameters: Mapping[str, Any] | None = None
    ) -> QueryResult:
        """Run a SELECT and return all of its rows."""
        ...

    def insert(
        self,
        table: str,
        column_names: Sequence[str],
        rows: Sequence[Sequence[Any]],
        dedup_token: str | None = None,
    ) -> None:
        """Insert a batch synchronously; it is durable when this returns.

        ``dedup_token`` is ClickHouse's ``insert_deduplication_token``: the
        same token on the same table within its deduplication window is
        written once. A plain (non-replicated) MergeTree table only
        deduplicates when created with ``non_replicated_deduplication_window``
        set above zero; its default is 0, which silently keeps both copies.
        """
        ...

    def ping(self) -> bool:
        """Whether ClickHouse answers now; never raises."""
        ...

    def close(self) -> None:
        """Release the connection; further calls raise ``StorageQueryError``."""
        ...
