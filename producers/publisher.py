"""Publishing to Kafka for the sampler: one idempotent producer (acks=all, lz4)
shared by every run of a platform, and per-run tracking of acknowledgements so
a run marker is sent only after all of that run's snapshots are acknowledged.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from stackmeter.errors import StackmeterError

logger = logging.getLogger(__name__)

# Larger batches than aiokafka's 16 KiB default, and a short linger to fill
# them: a run sends tens of thousands of small records at once.
MAX_BATCH_BYTES = 512 * 1024
LINGER_MS = 20


class PublishError(StackmeterError):
    """Kafka did not acknowledge a record of the run; the run gets no marker."""

    retriable = True


def create_producer(bootstrap_servers: str, client_id: str) -> AIOKafkaProducer:
    """The sampler's producer: idempotent, so retries inside the client never
    duplicate or reorder records within a partition."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        compression_type="lz4",
        max_batch_size=MAX_BATCH_BYTES,
        linger_ms=LINGER_MS,
    )


class Delivery:
    """The records one run has handed to the producer, and their outcomes.

    :meth:`send` returns once the producer has taken the record (it waits when
    the producer's buffer is full, which holds back the listing); the
    acknowledgement arrives later and is counted here. A failed record stops
    the run at its next :meth:`send` or at :meth:`wait`.
    """

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._pending: set[asyncio.Future[object]] = set()
        self._failure: BaseException | None = None
        self.acked = 0

    async def send(
        self, topic: str, key: bytes, value: bytes, partition: int | None = None
    ) -> None:
        """Hand one record to the producer."""
        self._raise_failure()
        try:
            future = await self._producer.send(
                topic, value=value, key=key, partition=partition
            )
        except KafkaError as exc:
            raise PublishError(f"cannot send to {topic}: {exc!r}") from exc
        self._pending.add(future)
        future.add_done_callback(self._on_done)

    async def wait(self) -> int:
        """Wait for every record sent so far; returns how many were acknowledged.

        Raises :class:`PublishError` when any of them failed.
        """
        if self._pending:
            await asyncio.wait(list(self._pending))
        self._raise_failure()
        return self.acked

    async def partitions(self, topic: str) -> list[int]:
        """Every partition of ``topic``, as the broker's metadata lists them."""
        try:
            found = await self._producer.partitions_for(topic)
        except KafkaError as exc:
            raise PublishError(f"no metadata for {topic}: {exc!r}") from exc
        return sorted(found)

    def _on_done(self, future: asyncio.Future[object]) -> None:
        self._pending.discard(future)
        if future.cancelled():
            self._failure = self._failure or PublishError("send was cancelled")
            return
        error = future.exception()
        if error is None:
            self.acked += 1
        elif self._failure is None:
            self._failure = error

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise PublishError(
                f"Kafka did not acknowledge a record: {self._failure!r}"
            ) from self._failure
