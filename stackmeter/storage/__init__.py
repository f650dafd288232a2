"""ClickHouse storage for stackmeter: one port, an embedded and a server adapter.

``open_storage(target)`` picks the adapter from the target: an http(s) URL
reaches a ClickHouse server, a folder (or ``chdb://`` path) runs chDB in this
process. See ``stackmeter.storage.port`` for the contract.
"""

from stackmeter.storage.clickhouse import (
    RETRIABLE_ERROR_CODES,
    ChdbStorage,
    ClientStorage,
    ServerStorage,
    open_storage,
)
from stackmeter.storage.port import (
    QueryResult,
    Row,
    Storage,
    StorageQueryError,
    StorageUnavailableError,
)

__all__ = [
    "RETRIABLE_ERROR_CODES",
    "ChdbStorage",
    "ClientStorage",
    "QueryResult",
    "Row",
    "ServerStorage",
    "Storage",
    "StorageQueryError",
    "StorageUnavailableError",
    "open_storage",
]
