"""One sampling run: list a collection in a worker thread, stream its pages into
Kafka as they arrive, and publish the run marker to every partition once all
of the run's snapshots are acknowledged.

openstacksdk is synchronous, so the listing runs in a thread and hands encoded
pages to the event loop through a :class:`PageChannel`, which holds the thread
back when Kafka is slower than the API. A run that fails part-way keeps what it
already published and sends no marker: its sightings count, its absences do not.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from stackmeter.codec import SchemaRegistry
from stackmeter.errors import StackmeterError
from stackmeter.producers.clock import to_millis
from stackmeter.producers.collectors import Item, Listing, Lookup
from stackmeter.producers.publisher import Delivery, PublishError

logger = logging.getLogger(__name__)

Message = tuple[bytes, bytes]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PageSource = Callable[[Listing], Iterator[list[dict[str, Any]]]]


@dataclass(frozen=True, slots=True)
class RunContext:
    """The platform, id and single sampling instant of one run."""

    platform_id: str
    run_id: str
    sampled_at: datetime
    # The same instant as Avro's timestamp-millis holds it: records are encoded
    # with the number, which spares a datetime conversion per record.
    sampled_at_ms: int

    @classmethod
    def begin(cls, platform_id: str, moment: datetime) -> RunContext:
        """A new run at ``moment`` (cut to milliseconds) with a fresh run id."""
        sampled_at = to_millis(moment)
        return cls(
            platform_id=platform_id,
            run_id=str(uuid.uuid4()),
            sampled_at=sampled_at,
            sampled_at_ms=(sampled_at - EPOCH) // timedelta(milliseconds=1),
        )


Encode = Callable[[Item, Lookup, RunContext], Message]


@dataclass(frozen=True, slots=True)
class RunPlan:
    """What a run lists, how each item becomes a Kafka message and where it goes.

    ``name`` is the resource type id (or ``keystone.project``); ``marker_schema``
    is None for listings that publish no run marker (projects).
    """

    name: str
    topic: str
    listing: Listing
    encode: Encode
    lookup: Listing | None = None
    marker_schema: str | None = "stackmeter.RunMarker"


@dataclass(frozen=True, slots=True)
class RunResult:
    """The outcome of one run; ``completed`` means its marker was published.

    ``resources`` counts the items listed (and handed to Kafka), ``published``
    those Kafka acknowledged, ``pages`` every API page read, a lookup listing's
    included. ``error_kind`` is ``api`` or ``publish`` for a failed run.
    """

    type_id: str
    platform_id: str
    run_id: str
    sampled_at: datetime
    resources: int
    pages: int
    seconds: float
    published: int
    completed: bool
    error: str | None = None
    error_kind: str | None = None


class _AbandonedError(Exception):
    """The event loop side stopped reading; the listing thread gives up."""


_END = object()


class PageChannel:
    """Pages from one listing thread to the event loop, at most ``depth`` ahead."""

    def __init__(self, loop: asyncio.AbstractEventLoop, depth: int = 4) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._slots = threading.Semaphore(depth)
        self._closed = threading.Event()

    # Listing thread side.
    def put(self, page: list[Message]) -> None:
        """Hand over a page; blocks while ``depth`` pages wait to be published."""
        while not self._slots.acquire(timeout=0.2):
            if self._closed.is_set():
                raise _AbandonedError
        self._deliver(page)

    def finish(self) -> None:
        self._deliver(_END)

    def _deliver(self, item: object) -> None:
        if self._closed.is_set():
            raise _AbandonedError
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError as exc:  # the event loop is closed
            raise _AbandonedError from exc

    # Event loop side.
    async def get(self) -> list[Message] | None:
        """The next page, or None when the listing thread has finished."""
        item = await self._queue.get()
        if item is _END:
            return None
        self._slots.release()
        return cast(list[Message], item)

    def close(self) -> None:
        self._closed.set()


@dataclass
class _Progress:
    """Counters the listing thread updates and the event loop reads."""

    pages: int = 0
    resources: int = 0
    lookup: dict[str, Item] = field(default_factory=dict)


def _list_into(
    plan: RunPlan,
    context: RunContext,
    source: PageSource,
    channel: PageChannel,
    progress: _Progress,
) -> None:
    """The thread's part: list, encode and hand over every page."""
    try:
        if plan.lookup is not None:
            for page in source(plan.lookup):
                progress.pages += 1
                progress.lookup.update((str(item.get("id")), item) for item in page)
        for page in source(plan.listing):
            progress.pages += 1
            messages = [plan.encode(item, progress.lookup, context) for item in page]
            channel.put(messages)
    finally:
        with contextlib.suppress(_AbandonedError):
            channel.finish()


async def execute_run(
    plan: RunPlan,
    context: RunContext,
    *,
    source: PageSource,
    delivery: Delivery,
    registry: SchemaRegistry,
    executor: concurrent.futures.Executor,
) -> RunResult:
    """Run ``plan`` once. API, mapping and Kafka failures do not raise: they
    end up in the result (``completed`` false, ``error`` set)."""
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    channel = PageChannel(loop)
    progress = _Progress()
    listing = loop.run_in_executor(
        executor, _list_into, plan, context, source, channel, progress
    )
    error: StackmeterError | None = None
    published = 0
    try:
        await _publish_pages(channel, delivery, progress)
        await listing
        published = await delivery.wait()
        if plan.marker_schema is not None:
            await _publish_markers(
                plan, plan.marker_schema, context, delivery, registry
            )
    except StackmeterError as exc:
        error = exc
        channel.close()
        await _settle(listing, delivery)
        # Snapshots only: a failure while sending markers may follow some acks.
        published = min(delivery.acked, progress.resources)
    finally:
        # When stopped (cancelled) or on a bug, the listing thread must not
        # wait for a reader that is gone; it gives up after its current page.
        channel.close()
        listing.add_done_callback(_retrieve)
    return RunResult(
        type_id=plan.name,
        platform_id=context.platform_id,
        run_id=context.run_id,
        sampled_at=context.sampled_at,
        resources=progress.resources,
        pages=progress.pages,
        seconds=time.perf_counter() - started,
        published=published,
        completed=error is None,
        error=None if error is None else str(error),
        error_kind=None if error is None else _error_kind(error),
    )


async def _publish_pages(
    channel: PageChannel, delivery: Delivery, progress: _Progress
) -> None:
    while (page := await channel.get()) is not None:
        progress.resources += len(page)
        await delivery.send_page(page)


async def _publish_markers(
    plan: RunPlan,
    marker_schema: str,
    context: RunContext,
    delivery: Delivery,
    registry: SchemaRegistry,
) -> None:
    """The marker to every partition, after the run's snapshots were acked."""
    marker = registry.encode(
        marker_schema,
        {
            "run_id": context.run_id,
            "platform_id": context.platform_id,
            "resource_type": plan.name,
            "sampled_at": context.sampled_at_ms,
            "resource_count": delivery.acked,
        },
    )
    await delivery.send_to_every_partition(context.run_id.encode(), marker)
    await delivery.wait()


async def _settle(listing: asyncio.Future[None], delivery: Delivery) -> None:
    """After a failure: let the thread see the closed channel and stop, and let
    sends already handed to the producer finish (they stay published)."""
    for waitable in (listing, delivery.wait()):
        try:
            await waitable
        except (StackmeterError, _AbandonedError) as exc:
            logger.debug("after the run failed: %r", exc)


def _retrieve(listing: asyncio.Future[None]) -> None:
    """Mark a listing's outcome as seen: after a stop or a failure nobody
    awaits it, and asyncio would log its error as never retrieved."""
    if not listing.cancelled():
        listing.exception()


def _error_kind(error: BaseException) -> str:
    if isinstance(error, PublishError):
        return "publish"
    return "api"
