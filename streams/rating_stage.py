"""The rating stage of the Faust worker: usage topic in, rated usage topic out.

``install(app, config)`` loads the catalog (a broken one stops the worker at
start, every problem listed), adds one agent that rates each Usage message and
a timer that reloads the catalog file when its content changes. A new file
that does not load leaves the running catalog in place and is logged at ERROR
with every problem, once per distinct content.

Delivery is at least once: the agent waits for Kafka to acknowledge every
record of a usage message before it takes the next one (retrying with
back-off while Kafka refuses, which holds the stream), so an offset is never
committed past an unsent charge. Rated records are upserts keyed by
``charge_id``, so a message rated twice after a restart changes nothing.
A message that is not a Usage record goes to the dead-letter topic with the
reason; the agent never stops on one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
from aiokafka.errors import KafkaError
from faust.exceptions import ProducerSendError
from prometheus_client import Counter, Info

from stackmeter.codec import SchemaRegistry, default_registry
from stackmeter.config import Config
from stackmeter.errors import CodecError
from stackmeter.streams.catalog import (
    Catalog,
    CatalogError,
    load_catalog,
    parse_catalog,
)
from stackmeter.streams.rating import RATED_SCHEMA, USAGE_SCHEMA, rate
from stackmeter.topics import TopicNames

logger = logging.getLogger(__name__)

STAGE = "rating"
AGENT_NAME = "stackmeter.rating"
DEAD_LETTER_SCHEMA = "stackmeter.DeadLetter"
_RETRY_FIRST_S = 0.5
_RETRY_MAX_S = 30.0

USAGE_RATED = Counter(
    "stackmeter_rating_usage_records",
    "Usage records rated.",
)
CHARGES = Counter(
    "stackmeter_rating_charges",
    "Rated usage records produced, rated or unrated.",
    ["outcome"],
)
DEAD_LETTERS = Counter(
    "stackmeter_rating_dead_letters",
    "Messages of the usage topic sent to the dead-letter topic.",
)
RELOADS = Counter(
    "stackmeter_rating_catalog_reloads",
    "Attempts to load a changed catalog file.",
    ["result"],
)
CATALOG_INFO = Info("stackmeter_rating_catalog", "The catalog in use.")


@dataclass(frozen=True, slots=True)
class Source:
    """Where a usage message was read from."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to produce: to the rated topic, or to the dead-letter topic."""

    dead_letter: bool
    key: bytes | None
    value: bytes


class LiveCatalog:
    """The catalog in use and the file it came from, reloaded when it changes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.current: Catalog = load_catalog(self.path)
        self._failed_digest: str | None = None
        _publish(self.current)
        logger.info(
            "catalog %s version %s loaded: %d rules",
            self.path,
            self.current.version,
            len(self.current.rules),
        )

    def reload_if_changed(self) -> bool:
        """Load the file if its content changed; True when a new catalog is in use.

        Reads the whole file each time: it is small, and comparing contents
        does not miss an edit within the file system's timestamp resolution.
        """
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            return self._failed(
                f"unreadable:{exc.strerror}",
                [f"{self.path}: cannot read: {exc.strerror}"],
            )
        digest = hashlib.sha256(data).hexdigest()
        if digest in (self.current.digest, self._failed_digest):
            return False
        try:
            catalog = parse_catalog(data, str(self.path))
        except CatalogError as exc:
            return self._failed(digest, [str(problem) for problem in exc.problems])
        previous = self.current
        self.current = catalog
        self._failed_digest = None
        RELOADS.labels(result="ok").inc()
        _publish(catalog)
        logger.info(
            "catalog %s reloaded: version %s -> %s, %d rules",
            self.path,
            previous.version,
            catalog.version,
            len(catalog.rules),
        )
        return True

    def _failed(self, digest: str, problems: list[str]) -> bool:
        if digest != self._failed_digest:
            self._failed_digest = digest
            RELOADS.labels(result="failed").inc()
            logger.error(
                "catalog %s changed but cannot be used; still rating with "
                "version %s. %d problems:\n%s",
                self.path,
                self.current.version,
                len(problems),
                "\n".join(problems),
            )
        return False


def _publish(catalog: Catalog) -> None:
    CATALOG_INFO.info({"version": catalog.version, "digest": catalog.digest[:12]})


class Rater:
    """Turns one usage message into the messages to produce; no Kafka here."""

    def __init__(self, catalog: LiveCatalog, registry: SchemaRegistry) -> None:
        self.catalog = catalog
        self.registry = registry

    def handle(
        self, key: bytes | None, value: bytes | None, source: Source
    ) -> list[Outgoing]:
        """Rated records for a Usage message, or one dead letter with the reason."""
        try:
            decoded = self.registry.decode(value or b"")
            if decoded.schema_name != USAGE_SCHEMA:
                raise CodecError(
                    f"expected a {USAGE_SCHEMA} message, got {decoded.schema_name}"
                )
            records = rate(decoded.record, self.catalog.current)
            outgoing = [
                Outgoing(
                    False,
                    record["charge_id"].encode(),
                    self.registry.encode(RATED_SCHEMA, record),
                )
                for record in records
            ]
        except CodecError as exc:
            return [self._dead_letter(key, value, source, str(exc))]
        except Exception as exc:  # a bug must not stop the stream
            logger.exception(
                "rating failed at %s[%d]@%d",
                source.topic,
                source.partition,
                source.offset,
            )
            reason = f"rating failed: {type(exc).__name__}: {exc}"
            return [self._dead_letter(key, value, source, reason)]
        USAGE_RATED.inc()
        for record in records:
            CHARGES.labels(outcome="rated" if record["rated"] else "unrated").inc()
        return outgoing

    def _dead_letter(
        self, key: bytes | None, value: bytes | None, source: Source, reason: str
    ) -> Outgoing:
        DEAD_LETTERS.inc()
        logger.warning(
            "dead letter from %s[%d]@%d: %s",
            source.topic,
            source.partition,
            source.offset,
            reason,
        )
        record = {
            "stage": STAGE,
            "reason": reason,
            "source_topic": source.topic,
            "source_partition": source.partition,
            "source_offset": source.offset,
            "key": key,
            "value": value,
            "failed_at": datetime.now(UTC),
        }
        return Outgoing(True, key, self.registry.encode(DEAD_LETTER_SCHEMA, record))


async def deliver(app: faust.App, names: TopicNames, outgoing: list[Outgoing]) -> None:
    """Send every message and wait for Kafka's acknowledgements, retrying.

    A failed attempt sends them all again; the copies are identical upserts.
    """
    delay_s = _RETRY_FIRST_S
    while True:
        try:
            pending = [
                await app.producer.send(
                    names.dead_letter if out.dead_letter else names.rated_usage,
                    out.key,
                    out.value,
                    partition=None,
                    timestamp=None,
                    headers=None,
                )
                for out in outgoing
            ]
            await asyncio.gather(*pending)
            return
        except (KafkaError, ProducerSendError) as exc:
            logger.warning(
                "cannot publish rated usage, retrying records=%d delay_s=%.1f error=%r",
                len(outgoing),
                delay_s,
                exc,
            )
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, _RETRY_MAX_S)


def install(app: faust.App, config: Config) -> None:
    """Add the rating agent and the catalog reload timer to the worker's app.

    Raises CatalogError (a ConfigError) listing every problem when the
    configured catalog does not load, so the worker does not start.
    """
    names = TopicNames(config.kafka.topic_prefix)
    live = LiveCatalog(config.rating.catalog)
    rater = Rater(live, default_registry())
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    usage_topic = app.topic(names.usage, **raw)

    async def rate_usage(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            source = Source(message.topic, message.partition, message.offset)
            outgoing = rater.handle(event.key, event.value, source)
            await deliver(app, names, outgoing)

    async def reload_catalog() -> None:
        await asyncio.to_thread(live.reload_if_changed)

    agent: Callable[..., Any] = app.agent(usage_topic, name=AGENT_NAME, concurrency=1)
    agent(rate_usage)
    timer: Callable[..., Any] = app.timer(
        interval=config.rating.reload_s, name=f"{AGENT_NAME}.reload"
    )
    timer(reload_catalog)
    logger.info(
        "rating installed: %s -> %s, catalog %s reloaded every %ss",
        names.usage,
        names.rated_usage,
        live.path,
        config.rating.reload_s,
    )
