"""Publishing to Kafka for the sampler: one idempotent producer (acks=all, lz4)
shared by every run of a platform, and per-run tracking of acknowledgements so
a run marker is sent only after all of that run's snapshots are acknowledged.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

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
    """The records one run hands to the producer for one topic, and their
    acknowledgements.

    Snapshots go in batches built here, one per partition per page, which
    costs far less per record than a ``send`` each; a record's partition is
    the one aiokafka's default partitioner picks for its key (murmur2, as in
    the Java client), so a resource id always lands on the same partition.
    ``send_page`` returns once the producer has queued the batches (it waits
    when the producer's buffer is full, which holds back the listing); their
    acknowledgements arrive later and are counted here. A failed batch stops
    the run at its next ``send_page`` or at :meth:`wait`.
    """

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self._partitioner = DefaultPartitioner()
        self._partitions: list[int] = []
        self._pending: set[asyncio.Future[object]] = set()
        self._failure: BaseException | None = None
        self.acked = 0

    async def partitions(self) -> list[int]:
        """Every partition of the topic, as the broker's metadata lists them."""
        if not self._partitions:
            try:
                found = await self._producer.partitions_for(self._topic)
            except KafkaError as exc:
                raise PublishError(f"no metadata for {self._topic}: {exc!r}") from exc
            self._partitions = sorted(found)
        return self._partitions

    async def send_page(self, messages: Sequence[tuple[bytes, bytes]]) -> None:
        """Queue keyed records, each on its key's partition."""
        self._raise_failure()
        partitions = await self.partitions()
        batches: dict[int, BatchBuilder] = {}
        for key, value in messages:
            partition = self._partitioner(key, partitions, partitions)
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = self._producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                await self._send_batch(batch, partition)
                batch = batches[partition] = self._producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        for partition, batch in batches.items():
            await self._send_batch(batch, partition)

    async def send_to_every_partition(self, key: bytes, value: bytes) -> int:
        """Queue one record on each partition; returns how many partitions."""
        partitions = await self.partitions()
        for partition in partitions:
            batch = self._producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)
            await self._send_batch(batch, partition)
        return len(partitions)

    async def wait(self) -> int:
        """Wait for every record queued so far; returns how many were
        acknowledged. Raises :class:`PublishError` when any of them failed."""
        if self._pending:
            await asyncio.wait(list(self._pending))
        self._raise_failure()
        return self.acked

    async def _send_batch(self, batch: BatchBuilder, partition: int) -> None:
        count = batch.record_count()
        try:
            future = await self._producer.send_batch(
                batch, self._topic, partition=partition
            )
        except KafkaError as exc:
            raise PublishError(f"cannot send to {self._topic}: {exc!r}") from exc
        self._pending.add(future)
        future.add_done_callback(functools.partial(self._on_done, count))

    def _on_done(self, count: int, future: asyncio.Future[object]) -> None:
        self._pending.discard(future)
        if future.cancelled():
            self._failure = self._failure or PublishError("send was cancelled")
            return
        error = future.exception()
        if error is None:
            self.acked += count
        elif self._failure is None:
            self._failure = error

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise PublishError(
                f"Kafka did not acknowledge a record: {self._failure!r}"
            ) from self._failure
