"""The rating stage: message handling, catalog hot reload, and the Faust agent
end to end through the real Kafka broker."""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import REGISTRY

from stackmeter.codec import default_registry
from stackmeter.config import Config
from stackmeter.streams import rating_stage
from stackmeter.streams.catalog import CatalogError
from stackmeter.streams.rating import RATED_SCHEMA, USAGE_SCHEMA, charge_id
from stackmeter.streams.rating_stage import LiveCatalog, Rater, Source, install
from stackmeter.streams.runner import run_worker
from stackmeter.topics import TopicNames, ensure_topics, pipeline_topics

EXAMPLE = Path(__file__).resolve().parents[2] / "catalog" / "example.yaml"
HOUR = datetime(2026, 3, 2, 10, tzinfo=UTC)
SOURCE = Source("stackmeter.usage", 3, 42)
REGISTRY_ = default_registry()


def usage(
    usage_id: str, type_id: str, traits: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "usage_id": usage_id,
        "revision": 1,
        "platform_id": "openstack.eu-west",
        "resource_type": type_id,
        "project_id": "p-1",
        "resource_id": f"r-{usage_id}",
        "resource_name": "name",
        "hour_start": HOUR,
        "samples_observed": 12,
        "samples_expected": 12,
        "estimated": False,
        "traits": traits,
        "last_sampled_at": HOUR + timedelta(minutes=55),
    }
    record.update(fields)
    return record


def encode(record: dict[str, Any]) -> bytes:
    return REGISTRY_.encode(USAGE_SCHEMA, record)


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.yaml"
    shutil.copy(EXAMPLE, path)
    return path


def test_a_usage_message_becomes_rated_messages_keyed_by_charge_id(
    catalog_file: Path,
) -> None:
    rater = Rater(LiveCatalog(catalog_file), REGISTRY_)
    record = usage("u-1", "neutron.load_balancer", {"listeners": 2})

    outgoing = rater.handle(b"u-1", encode(record), SOURCE)

    assert [out.dead_letter for out in outgoing] == [False, False]
    decoded = [REGISTRY_.decode(out.value) for out in outgoing]
    assert {d.schema_name for d in decoded} == {RATED_SCHEMA}
    assert [out.key for out in outgoing] == [
        d.record["charge_id"].encode() for d in decoded
    ]
    assert {d.record["product_id"]: d.record["amount"] for d in decoded} == {
        "load-balancer.hour": Decimal("0.025"),
        "load-balancer.listener": Decimal("0.012"),
    }


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"garbage", "not Avro single-object encoding: expected marker c301"),
        (None, "not Avro single-object encoding"),
        (b"\xc3\x01" + bytes(8) + b"x", "unknown writer schema fingerprint"),
        (
            REGISTRY_.encode(
                "stackmeter.Project",
                {
                    "platform_id": "p",
                    "project_id": "x",
                    "name": "n",
                    "domain_id": "d",
                    "tags": [],
                    "enabled": True,
                    "sampled_at": HOUR,
                },
            ),
            "expected a stackmeter.Usage message, got stackmeter.Project",
        ),
    ],
    ids=["garbage", "empty", "unknown-schema", "wrong-schema"],
)
def test_a_bad_message_becomes_one_dead_letter_with_the_reason(
    catalog_file: Path, value: bytes | None, reason: str
) -> None:
    rater = Rater(LiveCatalog(catalog_file), REGISTRY_)

    (out,) = rater.handle(b"k", value, SOURCE)

    assert out.dead_letter is True
    assert out.key == b"k"
    letter = REGISTRY_.decode(out.value).record
    assert letter["stage"] == "rating"
    assert reason in letter["reason"]
    assert (letter["source_topic"], letter["source_partition"]) == (
        "stackmeter.usage",
        3,
    )
    assert letter["source_offset"] == 42
    assert letter["value"] == value


def test_an_unexpected_failure_is_a_dead_letter_not_a_stop(
    catalog_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_rate(*_args: object) -> list[dict[str, Any]]:
        raise RuntimeError("boom")

    monkeypatch.setattr(rating_stage, "rate", broken_rate)
    rater = Rater(LiveCatalog(catalog_file), REGISTRY_)

    (out,) = rater.handle(b"u", encode(usage("u", "neutron.router", {})), SOURCE)

    assert out.dead_letter is True
    assert REGISTRY_.decode(out.value).record["reason"] == (
        "rating failed: RuntimeError: boom"
    )


NEW_ROUTER = """\
format_version: 1
version: "2026.2"
currency: EUR
rules:
  - id: router
    resource_type: neutron.router
    usage_type: time
    unit: h
    unit_price: "0.5"
"""

BROKEN = """\
format_version: 1
version: "2026.3"
rules:
  - id: router
    resource_type: neutron.router
    match: {sate: up}
    usage_type: time
    unit: h
    unit_price: "0.5"
"""


def test_the_catalog_reloads_when_the_file_changes(catalog_file: Path) -> None:
    live = LiveCatalog(catalog_file)

    assert live.reload_if_changed() is False
    catalog_file.write_text(NEW_ROUTER)
    assert live.reload_if_changed() is True

    assert live.current.version == "2026.2"
    assert live.reload_if_changed() is False


def test_a_broken_new_catalog_keeps_the_old_one_and_logs_every_problem(
    catalog_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    live = LiveCatalog(catalog_file)
    catalog_file.write_text(BROKEN)

    with caplog.at_level(logging.ERROR, logger=rating_stage.__name__):
        assert live.reload_if_changed() is False
        assert live.reload_if_changed() is False  # logged once per content

    assert live.current.version == "2026.1"
    (logged,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert logged.levelno == logging.ERROR
    message = logged.getMessage()
    assert "still rating with version 2026.1. 2 problems:" in message
    assert f"{catalog_file}: rule router: match.sate: unknown trait 'sate'" in message
    assert f"{catalog_file}: rule router: no currency" in message

    catalog_file.write_text(NEW_ROUTER)
    assert live.reload_if_changed() is True
    assert live.current.version == "2026.2"


def test_a_deleted_catalog_file_keeps_the_old_catalog(
    catalog_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    live = LiveCatalog(catalog_file)
    catalog_file.unlink()

    with caplog.at_level(logging.ERROR, logger=rating_stage.__name__):
        assert live.reload_if_changed() is False

    assert live.current.version == "2026.1"
    assert "cannot read: No such file or directory" in caplog.text


def test_install_refuses_a_broken_catalog(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    config = Config()
    config.rating.catalog = str(path)
    app = faust.App("rating-broken", broker="kafka://127.0.0.1:9", web_enabled=False)

    with pytest.raises(CatalogError) as caught:
        install(app, config)

    assert len(caught.value.problems) == 2


# End to end: usage in through Kafka, the worker as `stackmeter worker` runs it,
# rated records out, each amount worked out by hand from catalog/example.yaml.
SERVER_V8 = {
    "disk": 80,
    "diskEphemeral": 0,
    "diskRoot": 80,
    "flavor": "v8.xlarge",
    "ramMb": 16384,
    "state": "ACTIVE",
    "vcpu": 8,
}
SERVER_GPU = SERVER_V8 | {
    "flavor": "g2.large",
    "vcpu": 4,
    "ramMb": 1000,
    "diskRoot": 20,
}
LATER = datetime(2026, 7, 1, tzinfo=UTC)
E2E_CASES: list[tuple[dict[str, Any], dict[str | None, str]]] = [
    (
        usage("server-v8", "nova.server", SERVER_V8),
        {
            "server.vcpu": "0.168",  # 8 vCPU-h x 0.0210
            "server.ram": "0.0448",  # 16 GiB-h x 0.0028
            "server.root-disk": "0.0112",  # 80 GiB-h x 0.00014
            "server.flavor.v8": "0.04",  # 1 h x 0.0400
        },
    ),
    (
        usage("server-gpu", "nova.server", SERVER_GPU, project_id="acme-prod"),
        {
            "server.vcpu": "0.072",  # negotiated: 4 vCPU-h x 0.0180
            "server.ram": "0.002734375",  # 1000 MiB = 0.9765625 GiB-h x 0.0028
            "server.root-disk": "0.0028",  # 20 GiB-h x 0.00014
            "server.flavor.gpu": "0.95",  # 1 h x 0.9500
        },
    ),
    (
        usage(
            "vol-hdd", "cinder.volume", {"size": 100, "status": "in-use", "type": "hdd"}
        ),
        {"volume.hdd": "0.007"},  # 100 GiB-h x 0.00007
    ),
    (
        usage(
            "vol-ssd",
            "cinder.volume",
            {"size": 100, "status": "available", "type": "ssd"},
        ),
        {"volume.ssd": "0.016"},  # 100 GiB-h x 0.00016
    ),
    (
        usage(
            "vol-nvme",
            "cinder.volume",
            {"size": 250, "status": "in-use", "type": "nvme"},
        ),
        {"volume.nvme": "0.0625"},  # 250 GiB-h x 0.00025
    ),
    (
        usage(
            "snap", "cinder.volume_snapshot", {"status": "available", "volumeSize": 40}
        ),
        {"volume-snapshot.storage": "0.002"},  # 40 GiB-h x 0.00005
    ),
    (
        usage("image", "glance.image", {"size": 3, "status": "active"}),
        {"image.storage": "0.00015"},  # 3 GiB-h x 0.00005
    ),
    (
        usage("fip", "neutron.floating_ip", {}, estimated=True),
        {"floating-ip.hour": "0.0045"},  # 1 h x 0.0045, estimated hours are billed
    ),
    (usage("router-h1", "neutron.router", {}), {"router.hour": "0.012"}),
    (
        usage("router-h2", "neutron.router", {}, hour_start=LATER),
        {"router.hour": "0.01"},  # the second version, valid from 2026-07-01
    ),
    (
        usage(
            "lb", "neutron.load_balancer", {"listeners": 3, "operatingStatus": "ONLINE"}
        ),
        {"load-balancer.hour": "0.025", "load-balancer.listener": "0.018"},
    ),
    (
        usage("shelved", "nova.server", SERVER_V8 | {"state": "SHELVED_OFFLOADED"}),
        {None: "0"},  # unrated, kept with the reason
    ),
]


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def wait_for(predicate: Any, timeout_s: float = 30.0) -> None:
    """Poll a condition another thread makes true (a metric of the worker)."""
    for _attempt in range(int(timeout_s / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"not true after {timeout_s} s")


class Collector:
    """Reads the rated usage and dead-letter topics from the start."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.rated: dict[tuple[str, str | None], dict[str, Any]] = {}
        self.keys: dict[str, bytes] = {}
        self.dead_letters: list[dict[str, Any]] = []

    async def until(self, count: int, timeout_s: float = 60.0) -> None:
        async with asyncio.timeout(timeout_s):
            while len(self.rated) + len(self.dead_letters) < count:
                batches = await self.consumer.getmany(timeout_ms=500)
                for messages in batches.values():
                    for message in messages:
                        self._keep(message)

    def _keep(self, message: Any) -> None:
        decoded = REGISTRY_.decode(message.value)
        if decoded.schema_name == RATED_SCHEMA:
            record = decoded.record
            self.rated[(record["usage_id"], record["product_id"])] = record
            self.keys[record["charge_id"]] = message.key
        else:
            self.dead_letters.append(decoded.record)


@pytest.fixture
async def worker(
    kafka_bootstrap: str, topic_name: str, catalog_file: Path, tmp_path: Path
) -> AsyncIterator[Config]:
    """`stackmeter worker` (the usage worker with rating) in a thread."""
    config = Config()
    config.kafka.bootstrap_servers = kafka_bootstrap
    config.kafka.topic_prefix = topic_name
    config.kafka.partitions = 2
    config.worker.app_id = f"{topic_name}-worker"
    config.worker.store = "memory://"
    config.worker.data_dir = str(tmp_path / "worker")
    config.rating.catalog = str(catalog_file)
    config.rating.reload_s = 0.2
    await ensure_topics(kafka_bootstrap, pipeline_topics(TopicNames(topic_name), 2))
    stop = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            run_worker(config, stop)
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=run, name="rating-e2e-worker")
    thread.start()
    try:
        yield config
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 60)
    assert not thread.is_alive()
    assert failures == []


@pytest.mark.kafka
async def test_rating_end_to_end_through_kafka(
    worker: Config, catalog_file: Path
) -> None:
    names = TopicNames(worker.kafka.topic_prefix)
    bootstrap = worker.kafka.bootstrap_servers
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(
        names.rated_usage,
        names.dead_letter,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
    )
    await producer.start()
    await consumer.start()
    try:
        collected = Collector(consumer)
        for record, _expected in E2E_CASES:
            key = record["usage_id"].encode()
            await producer.send_and_wait(names.usage, encode(record), key=key)
        await producer.send_and_wait(names.usage, b"not avro", key=b"bad")
        charges = sum(len(expected) for _record, expected in E2E_CASES)

        await collected.until(charges + 1)

        for record, expected in E2E_CASES:
            got = {
                product: rated["amount"]
                for (usage_id, product), rated in collected.rated.items()
                if usage_id == record["usage_id"]
            }
            assert got == {k: Decimal(v) for k, v in expected.items()}, record
        for rated in collected.rated.values():
            assert rated["catalog_version"] == "2026.1"
            assert collected.keys[rated["charge_id"]] == rated["charge_id"].encode()
            assert rated["charge_id"] == charge_id(
                rated["usage_id"], rated["product_id"] or ""
            )
        unrated = collected.rated[("shelved", None)]
        assert unrated["rated"] is False
        assert "SHELVED_OFFLOADED" in unrated["unrated_reason"]
        assert collected.rated[("fip", "floating-ip.hour")]["estimated"] is True
        (letter,) = collected.dead_letters
        assert letter["stage"] == "rating"
        assert letter["source_topic"] == names.usage
        assert (letter["key"], letter["value"]) == (b"bad", b"not avro")

        # A new catalog file is picked up without a restart.
        reloads = sample("stackmeter_rating_catalog_reloads_total", {"result": "ok"})
        await asyncio.to_thread(catalog_file.write_text, NEW_ROUTER)
        await wait_for(
            lambda: (
                sample("stackmeter_rating_catalog_reloads_total", {"result": "ok"})
                > reloads
            )
        )
        second = usage("router-next", "neutron.router", {})
        await producer.send_and_wait(names.usage, encode(second), key=b"router-next")
        await collected.until(charges + 2)
        repriced = collected.rated[("router-next", "router")]
        assert (repriced["catalog_version"], repriced["amount"]) == (
            "2026.2",
            Decimal("0.5"),
        )

        # A broken file keeps the running catalog.
        failed = sample("stackmeter_rating_catalog_reloads_total", {"result": "failed"})
        await asyncio.to_thread(catalog_file.write_text, BROKEN)
        await wait_for(
            lambda: (
                sample("stackmeter_rating_catalog_reloads_total", {"result": "failed"})
                > failed
            )
        )
        third = usage("router-third", "neutron.router", {})
        await producer.send_and_wait(names.usage, encode(third), key=b"router-third")
        await collected.until(charges + 3)
        assert (
            collected.rated[("router-third", "router")]["catalog_version"] == "2026.2"
        )
    finally:
        await consumer.stop()
        await producer.stop()
