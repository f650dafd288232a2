"""The storage port against both adapters: chDB in this process, and a server over HTTP.

The server is the chDB-backed HTTP stand-in from ``tests/chdb_http.py``, so the
HTTP adapter runs clickhouse-connect's real HTTP transport end to end.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from chdb_http import ChdbHttpServer

from stackmeter.errors import ConfigError, StorageError
from stackmeter.storage import (
    ChdbStorage,
    QueryResult,
    ServerStorage,
    Storage,
    StorageQueryError,
    StorageUnavailableError,
    open_storage,
)

USAGE_DDL = """
CREATE TABLE usage (
    usage_id String,
    resource_type LowCardinality(String),
    project_id String,
    vcpu Nullable(Int64),
    hour DateTime64(3, 'UTC'),
    amount Decimal(38, 9),
    traits Map(String, String),
    samples_observed UInt32,
    estimated Bool,
    revision UInt32
)
ENGINE = ReplacingMergeTree(revision)
ORDER BY usage_id
SETTINGS non_replicated_deduplication_window = 100
"""
USAGE_COLUMNS = (
    "usage_id",
    "resource_type",
    "project_id",
    "vcpu",
    "hour",
    "amount",
    "traits",
    "samples_observed",
    "estimated",
    "revision",
)
HOUR = datetime(2025, 3, 30, 1, 0, tzinfo=UTC)


def usage_row(index: int, **changes: Any) -> tuple[Any, ...]:
    values: dict[str, Any] = {
        "usage_id": f"u-{index:05d}",
        "resource_type": "nova.server",
        "project_id": f"p-{index % 7}",
        "vcpu": index % 16 or None,
        "hour": HOUR,
        "amount": Decimal("0.041666667") * index,
        "traits": {"flavor": "m1.small", "state": "ACTIVE"},
        "samples_observed": 12,
        "estimated": index % 2 == 0,
        "revision": 1,
    }
    values.update(changes)
    return tuple(values[name] for name in USAGE_COLUMNS)


@pytest.fixture(params=["chdb", "http"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """Each adapter in turn, on empty storage of its own."""
    opened: Storage
    if request.param == "chdb":
        opened = ChdbStorage(tmp_path / "chdb")
    else:
        opened = open_storage(request.getfixturevalue("clickhouse_http_url"))
    try:
        yield opened
    finally:
        opened.close()


def count(storage: Storage, table: str) -> int:
    result = storage.query(f"SELECT count() FROM {table}")
    return int(result.rows[0][0])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_every_column_type_round_trips(storage: Storage) -> None:
    storage.command(USAGE_DDL)
    rows = [
        usage_row(0),
        usage_row(
            1,
            project_id="",
            vcpu=None,
            hour=datetime(1970, 1, 1, tzinfo=UTC),
            amount=Decimal("-0.000000001"),
            traits={},
            samples_observed=0,
            estimated=False,
        ),
        usage_row(
            2,
            project_id="projekt-\u00e9\u00df\u6f22\U0001f600 'quoted' \\ \t\n",
            vcpu=-(2**63),
            hour=datetime(2299, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
            amount=Decimal("99999999999999999999999999999.999999999"),
            traits={"": "", "k'\"\\\n": "v\t\u00e9", "x" * 300: "y" * 300},
            samples_observed=2**32 - 1,
            estimated=True,
        ),
        *(usage_row(index) for index in range(3, 3000)),
    ]

    storage.insert("usage", USAGE_COLUMNS, rows)

    result = storage.query(f"SELECT {', '.join(USAGE_COLUMNS)} FROM usage ORDER BY 1")
    assert result.column_names == USAGE_COLUMNS
    assert result.rows == rows
    hour = result.rows[0][USAGE_COLUMNS.index("hour")]
    assert hour.tzinfo is not None
    assert hour.utcoffset().total_seconds() == 0


def test_decimal_money_sums_exactly(storage: Storage) -> None:
    storage.command(USAGE_DDL)
    rows = [usage_row(index, amount=Decimal("0.100000001")) for index in range(1000)]
    storage.insert("usage", USAGE_COLUMNS, rows)

    result = storage.query("SELECT sum(amount), toTypeName(sum(amount)) FROM usage")

    assert result.rows == [(Decimal("100.000001000"), "Decimal(38, 9)")]


def test_replacing_merge_tree_keeps_the_highest_revision(storage: Storage) -> None:
    storage.command(USAGE_DDL)
    storage.insert("usage", USAGE_COLUMNS, [usage_row(1, amount=Decimal("1.5"))])
    storage.insert(
        "usage", USAGE_COLUMNS, [usage_row(1, amount=Decimal("2.25"), revision=2)]
    )

    result = storage.query("SELECT amount, revision FROM usage FINAL")

    assert result.rows == [(Decimal("2.25"), 2)]


def test_parameters_are_bound_server_side(storage: Storage) -> None:
    storage.command(USAGE_DDL)
    tricky = "p' OR 1 = 1 --\\\t\n\u00e9"
    storage.insert("usage", USAGE_COLUMNS, [usage_row(1, project_id=tricky)])

    found = storage.query(
        "SELECT usage_id FROM usage WHERE project_id = {project:String}"
        " AND hour = {hour:DateTime64(3, 'UTC')} AND amount < {limit:Decimal(38, 9)}",
        {"project": tricky, "hour": HOUR, "limit": Decimal("0.041666668")},
    )
    injected = storage.query(
        "SELECT count() FROM usage WHERE project_id = {project:String}",
        {"project": "x' OR 1 = 1 --"},
    )
    echoed = storage.query("SELECT {text:String} AS text", {"text": tricky})

    assert found == QueryResult(("usage_id",), [("u-00001",)])
    assert injected.rows == [(0,)]
    assert echoed.rows == [(tricky,)]


def test_a_large_parameter_travels_intact(storage: Storage) -> None:
    # Over 4 KiB, clickhouse-connect moves parameters into a form body.
    text = "\u00e9x" * 5000
    result = storage.query("SELECT length({text:String})", {"text": text})
    assert result.rows == [(len(text.encode()),)]


def test_a_parameter_without_placeholder_is_refused(storage: Storage) -> None:
    with pytest.raises(StorageQueryError, match="placeholder"):
        storage.query("SELECT %(value)s", {"value": 1})


def test_sql_error_is_not_retriable(storage: Storage) -> None:
    with pytest.raises(StorageError) as raised:
        storage.query("SELECT no_such_column FROM system.one")
    assert raised.value.retriable is False
    assert "UNKNOWN_IDENTIFIER" in str(raised.value)
    assert raised.value.__cause__ is not None

    with pytest.raises(StorageQueryError):
        storage.command("CREATE TABLE broken (")


def test_rows_of_the_wrong_type_are_not_retriable(storage: Storage) -> None:
    storage.command(USAGE_DDL)
    with pytest.raises(StorageQueryError, match="column"):
        storage.insert("usage", USAGE_COLUMNS, [usage_row(1, amount="lots")])
    with pytest.raises(StorageQueryError):
        storage.insert("no_such_table", USAGE_COLUMNS, [usage_row(1)])
    storage.insert("usage", USAGE_COLUMNS, [usage_row(1)])
    assert count(storage, "usage") == 1


def test_same_dedup_token_counts_a_batch_once(storage: Storage) -> None:
    storage.command(USAGE_DDL)
    # Large enough for several Native blocks: clickhouse-connect cuts ~2 MiB.
    batch = [usage_row(index) for index in range(40_000)]

    storage.insert("usage", USAGE_COLUMNS, batch, dedup_token="usage-0-0-39999")
    storage.insert("usage", USAGE_COLUMNS, batch, dedup_token="usage-0-0-39999")
    assert count(storage, "usage") == 40_000

    fresh = [usage_row(index) for index in range(40_000, 40_010)]
    storage.insert("usage", USAGE_COLUMNS, fresh, dedup_token="usage-0-40000")
    assert count(storage, "usage") == 40_010


def test_plain_merge_tree_keeps_both_copies_of_a_token(storage: Storage) -> None:
    # The pitfall the window setting exists for: its default is 0.
    storage.command("CREATE TABLE plain (id UInt32) ENGINE = MergeTree ORDER BY id")
    storage.insert("plain", ["id"], [(1,), (2,)], dedup_token="same")
    storage.insert("plain", ["id"], [(1,), (2,)], dedup_token="same")
    assert count(storage, "plain") == 4


def test_threads_can_share_one_storage(storage: Storage) -> None:
    storage.command(USAGE_DDL)

    def write(worker: int) -> None:
        for batch in range(5):
            first = (worker * 5 + batch) * 100
            rows = [usage_row(index) for index in range(first, first + 100)]
            storage.insert("usage", USAGE_COLUMNS, rows, dedup_token=f"b{first}")
            storage.query("SELECT count() FROM usage")

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(write, range(4)))

    assert count(storage, "usage") == 2000


def test_an_empty_batch_is_a_no_op(storage: Storage) -> None:
    storage.insert("no_such_table", USAGE_COLUMNS, [])


def test_closed_storage_refuses_calls(storage: Storage) -> None:
    assert storage.ping() is True
    storage.close()
    storage.close()
    assert storage.ping() is False
    with pytest.raises(StorageQueryError, match="closed"):
        storage.query("SELECT 1")


def test_refused_connection_is_retriable() -> None:
    storage = open_storage(f"http://127.0.0.1:{free_port()}/stackmeter")
    with storage:
        assert storage.ping() is False
        with pytest.raises(StorageError) as raised:
            storage.query("SELECT 1")
        assert raised.value.retriable is True
        with pytest.raises(StorageUnavailableError):
            storage.insert("usage", USAGE_COLUMNS, [usage_row(1)])


def test_server_outage_is_retriable_and_recovers(
    clickhouse_http_server: ChdbHttpServer, clickhouse_http_url: str
) -> None:
    with open_storage(clickhouse_http_url) as storage:
        storage.command(USAGE_DDL)
        storage.insert("usage", USAGE_COLUMNS, [usage_row(1)], dedup_token="a")

        clickhouse_http_server.stop()
        assert storage.ping() is False
        with pytest.raises(StorageUnavailableError):
            storage.insert("usage", USAGE_COLUMNS, [usage_row(2)], dedup_token="b")

        clickhouse_http_server.start()
        storage.insert("usage", USAGE_COLUMNS, [usage_row(2)], dedup_token="b")
        assert count(storage, "usage") == 2


def test_one_chdb_folder_per_process(tmp_path: Path) -> None:
    first = open_storage(f"chdb://{tmp_path / 'first'}")
    with first, pytest.raises(StorageQueryError, match="different path"):
        ChdbStorage(tmp_path / "second")
    with ChdbStorage(tmp_path / "second") as second:
        assert second.ping() is True


def test_same_chdb_folder_shares_data(tmp_path: Path) -> None:
    with ChdbStorage(tmp_path) as writer, open_storage(str(tmp_path)) as reader:
        writer.command("CREATE TABLE t (id UInt8) ENGINE = MergeTree ORDER BY id")
        writer.insert("t", ["id"], [(7,)])
        assert reader.query("SELECT id FROM t").rows == [(7,)]


def test_server_url_is_parsed_without_leaking_the_password() -> None:
    storage = open_storage("https://meter:s%40cret@clickhouse.example:9443/billing")
    assert isinstance(storage, ServerStorage)
    assert storage.target == "https://clickhouse.example:9443/billing"
    assert open_storage("http://clickhouse.example").target == (
        "http://clickhouse.example:8123"
    )


@pytest.mark.parametrize(
    "target",
    [
        "clickhouse://host:9000",
        "http://",
        "http://host:8123/db?secure=1",
        "http://host:notaport",
        "chdb://",
        "",
    ],
)
def test_unusable_targets_fail_at_start(target: str) -> None:
    with pytest.raises(ConfigError):
        open_storage(target)
