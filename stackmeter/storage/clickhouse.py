"""Storage adapters over clickhouse-connect: a ClickHouse server, or chDB in-process.

clickhouse-connect 1.12 drives either an HTTP(S) server or an embedded chDB
engine behind one ``Client`` API, so both adapters share this code: inserts are
serialised column by column into ClickHouse's Native format (exact for
Decimal, DateTime64, Nullable, Map and LowCardinality), query results are
decoded from Native, and ``{name:Type}`` parameters travel apart from the SQL.
Only connection setup and the meaning of a failure differ.

On batches of 20,000 rows of the pipeline's column types into chDB, this
Native path took half the time of orjson-encoded ``JSONEachRow`` through
chDB's own streaming insert, and as long as streaming the same Native bytes
without the temporary file clickhouse-connect's chDB backend writes per
insert. clickhouse-connect calls that backend experimental; the storage
tests run every case on both adapters.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.datatypes.base import ClickHouseType
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import (
    ClickHouseError,
    OperationalError,
    StreamFailureError,
)

from stackmeter.errors import ConfigError, StorageError
from stackmeter.storage.port import (
    QueryResult,
    StorageQueryError,
    StorageUnavailableError,
)

logger = logging.getLogger(__name__)

# Server error codes that describe load or a cluster hiccup rather than the
# statement: the same call can succeed once the server recovers.
RETRIABLE_ERROR_CODES = frozenset(
    {
        159,  # TIMEOUT_EXCEEDED
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        203,  # NO_FREE_CONNECTION
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY (a replica lost its Keeper session)
        252,  # TOO_MANY_PARTS
        279,  # ALL_CONNECTION_TRIES_FAILED
        319,  # UNKNOWN_STATUS_OF_INSERT
        425,  # SYSTEM_ERROR
        439,  # CANNOT_SCHEDULE_TASK
        999,  # KEEPER_EXCEPTION
    }
)

# The same placeholder shape the server parses: {name:Type}.
_PLACEHOLDER = re.compile(r"\{(\w+):[^{}]+\}")

_SERVER_PORTS = {"http": 8123, "https": 8443}

# Settings sent with every insert: synchronous, so the data is in a part on
# disk when the call returns (a sink commits Kafka offsets only after that).
_INSERT_SETTINGS: dict[str, Any] = {"async_insert": 0, "insert_deduplicate": 1}


def _is_retriable(exc: ClickHouseError) -> bool:
    code = getattr(exc, "code", None)
    if code in RETRIABLE_ERROR_CODES:
        return True
    if isinstance(exc, StreamFailureError):
        # A coded failure in the middle of a result is the statement's fault;
        # one without a code is the connection dropping.
        return code is None
    return isinstance(exc, OperationalError)


def _bind(sql: str, parameters: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Check that every parameter has a server-side placeholder.

    clickhouse-connect would otherwise fall back to formatting values into the
    SQL text client-side; stackmeter keeps values out of the SQL entirely.
    """
    if not parameters:
        return None
    placeholders = set(_PLACEHOLDER.findall(sql))
    unbound = sorted(set(parameters) - placeholders)
    if unbound:
        raise StorageQueryError(
            f"parameters {unbound} have no {{name:Type}} placeholder in the SQL"
        )
    return dict(parameters)


class ClientStorage:
    """The storage port over one clickhouse-connect client, opened on first use.

    Threads may share an instance; its calls run one at a time.
    """

    def __init__(self, target: str) -> None:
        self._target = target
        self._lock = threading.RLock()
        self._client: Client | None = None
        self._closed = False
        self._insert_types: dict[tuple[str, tuple[str, ...]], Sequence[ClickHouseType]]
        self._insert_types = {}

    @property
    def target(self) -> str:
        return self._target

    def _connect(self) -> Client:
        raise NotImplementedError

    def _live_client(self) -> Client:
        if self._closed:
            raise StorageQueryError(f"storage {self._target} is closed")
        if self._client is None:
            self._client = self._connect()
            logger.info("storage connected target=%s", self._target)
        return self._client

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            with self._lock:
                yield
        except ClickHouseError as exc:
            error: StorageError
            message = f"{action} failed on {self._target}: {exc}"
            if _is_retriable(exc):
                error = StorageUnavailableError(message)
            else:
                error = StorageQueryError(message)
            raise error from exc

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        bound = _bind(sql, parameters)
        with self._errors("command"):
            self._live_client().command(sql, parameters=bound)

    def query(
        self, sql: str, parameters: Mapping[str, Any] | None = None
    ) -> QueryResult:
        bound = _bind(sql, parameters)
        with self._errors("query"):
            result = self._live_client().query(sql, parameters=bound)
            return QueryResult(
                column_names=tuple(result.column_names),
                rows=[tuple(row) for row in result.result_rows],
            )

    def insert(
        self,
        table: str,
        column_names: Sequence[str],
        rows: Sequence[Sequence[Any]],
        dedup_token: str | None = None,
    ) -> None:
        if not rows:
            return
        settings = dict(_INSERT_SETTINGS)
        if dedup_token is not None:
            settings["insert_deduplication_token"] = dedup_token
        key = (table, tuple(column_names))
        with self._errors(f"insert into {table}"):
            client = self._live_client()
            try:
                client.insert(
                    table,
                    rows,
                    column_names=list(column_names),
                    column_types=self._column_types(client, key),
                    settings=settings,
                )
            except (TypeError, ValueError, AttributeError, ArithmeticError) as exc:
                # clickhouse-connect lets a value of the wrong Python type
                # escape as a plain Python error while it encodes the column.
                self._insert_types.pop(key, None)
                raise StorageQueryError(
                    f"insert into {table} on {self._target}: rows do not match "
                    f"the column types: {exc}"
                ) from exc
            except ClickHouseError:
                # The table may have changed under the cached column types.
                self._insert_types.pop(key, None)
                raise
        logger.debug(
            "inserted table=%s rows=%d dedup_token=%s", table, len(rows), dedup_token
        )

    def _column_types(
        self, client: Client, key: tuple[str, tuple[str, ...]]
    ) -> Sequence[ClickHouseType]:
        """The insert columns' types, asked of the server once per table."""
        types = self._insert_types.get(key)
        if types is None:
            table, column_names = key
            context = client.create_insert_context(table, list(column_names))
            types = list(context.column_types)
            self._insert_types[key] = types
        return types

    def ping(self) -> bool:
        try:
            with self._lock:
                return bool(self._live_client().ping())
        except (StorageError, ClickHouseError):
            return False

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            client, self._client = self._client, None
            if client is not None:
                client.close()
                logger.info("storage closed target=%s", self._target)

    def __enter__(self) -> ClientStorage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ServerStorage(ClientStorage):
    """A ClickHouse server (or cluster endpoint) over HTTP or HTTPS.

    The URL carries everything: ``https://user:password@host:8443/database``.
    The port defaults to 8123 for http and 8443 for https, the user to
    ``default`` and the database to the user's default. The connection opens
    on the first call, so a sink can start while ClickHouse is down and retry.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in _SERVER_PORTS or not parts.hostname:
            raise ConfigError(
                f"storage URL must be http(s)://[user[:password]@]host[:port][/db], "
                f"got scheme {parts.scheme!r} host {parts.hostname!r}"
            )
        if parts.query or parts.fragment:
            raise ConfigError(
                "storage URL takes no query string or fragment, "
                f"got {parts.query or parts.fragment!r}"
            )
        try:
            port = parts.port or _SERVER_PORTS[parts.scheme]
        except ValueError as exc:
            raise ConfigError(f"storage URL has an invalid port: {exc}") from exc
        self._interface = parts.scheme
        self._host = parts.hostname
        self._port = port
        self._username = unquote(parts.username) if parts.username else "default"
        self._password = unquote(parts.password) if parts.password else ""
        self._database = unquote(parts.path.strip("/")) or None
        database = f"/{self._database}" if self._database else ""
        super().__init__(f"{parts.scheme}://{parts.hostname}:{port}{database}")

    def _connect(self) -> Client:
        with self._errors("connect"):
            return clickhouse_connect.get_client(
                interface=self._interface,
                host=self._host,
                port=self._port,
                username=self._username,
                password=self._password,
                database=self._database,
                # No server session: every request stands alone, so a server
                # restart loses nothing the client relies on.
                autogenerate_session_id=False,
                dedicated_pool=True,
                tz_mode="schema",
            )


class ChdbStorage(ClientStorage):
    """The ClickHouse engine inside this process, data in a local folder.

    chDB hosts one engine per process, bound to one folder. Any number of
    ``ChdbStorage`` objects may share that folder; opening a different folder
    fails (``StorageQueryError``) until every object on the first folder is
    closed, after which the engine shuts down and can start on another one.
    Other chDB use in the process counts too: ``chdb.query()`` runs on
    ``:memory:`` and fails while a folder is open.
    Tests therefore close their storage before the next test opens its own,
    and a process that needs two folders needs a second process (the HTTP
    test server in ``tests/chdb_http.py`` is one). ``:memory:`` keeps the data
    in RAM.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        text = os.fspath(path)
        if text != ":memory:":
            folder = Path(text).expanduser()
            folder.mkdir(parents=True, exist_ok=True)
            # chDB compares folders as strings, so one folder has one spelling.
            text = os.path.realpath(folder)
        self._path = text
        super().__init__(f"chdb://{text}")
        # Open now: a second folder in the same process is a set-up mistake
        # and should fail at start, not at the first insert.
        self._live_client()

    def _connect(self) -> Client:
        with self._errors("open chDB"):
            return clickhouse_connect.get_client(
                interface="chdb", path=self._path, tz_mode="schema"
            )


def open_storage(target: str) -> ClientStorage:
    """Open the storage a target names.

    ``http://`` and ``https://`` URLs reach a ClickHouse server; ``chdb://``
    followed by a path (``chdb:///var/lib/stackmeter`` is absolute), a bare
    folder path, or ``:memory:`` start chDB in this process.
    """
    if target.startswith(("http://", "https://")):
        return ServerStorage(target)
    if target.startswith("chdb://"):
        path = unquote(target.removeprefix("chdb://"))
    elif "://" in target:
        raise ConfigError(
            f"storage target {target.split('://', 1)[0]!r}:// is not supported; "
            "use http(s):// for a server or chdb:// or a folder for chDB"
        )
    else:
        path = target
    if not path:
        raise ConfigError("storage target names no chDB folder")
    return ChdbStorage(path)
