"""Paginated API listings through openstacksdk: one connection per cloud and
region, and a generator of pages that follows each service's next links.

openstacksdk does authentication, the service catalog, version discovery,
microversion headers and retries with exponential backoff (keystoneauth's
``connect_retries`` and ``status_code_retries``). Every request here is a GET,
so server errors (500, 502, 503, 504) and 429 are retried as well.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any, TypeVar, cast

import openstack.connection
import openstack.exceptions
import orjson
from keystoneauth1 import exceptions as ks_exceptions

from stackmeter.config import PlatformConfig, SamplerConfig
from stackmeter.errors import ConfigError, StackmeterError
from stackmeter.producers.clouds import cloud_region
from stackmeter.producers.collectors import Listing

logger = logging.getLogger(__name__)

RETRIABLE_STATUS_CODES = [429, 500, 502, 503, 504]

T = TypeVar("T")
_DONE = object()


class ListingError(StackmeterError):
    """A listing failed after openstacksdk's retries; the run is abandoned."""

    retriable = True

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def open_connection(
    platform: PlatformConfig, sampler: SamplerConfig
) -> openstack.connection.Connection:
    """A connection to one clouds.yaml cloud and region, with the sampler's
    timeout and retry settings. Call it from the event loop thread (see
    :func:`~stackmeter.producers.clouds.cloud_region`); it makes no request."""
    try:
        region = cloud_region(
            sampler,
            platform,
            api_timeout=sampler.api_timeout_s,
            connect_retries=sampler.api_retries,
            status_code_retries=sampler.api_retries,
            retriable_status_codes=RETRIABLE_STATUS_CODES,
            connect_retry_delay=sampler.api_retry_delay_s,
            status_code_retry_delay=sampler.api_retry_delay_s,
        )
    except openstack.exceptions.ConfigException as exc:
        raise ConfigError(f"cloud {platform.cloud!r}: {exc}") from exc
    return openstack.connection.Connection(config=region)


def iter_pages(
    connection: openstack.connection.Connection, listing: Listing, page_size: int
) -> Iterator[list[dict[str, Any]]]:
    """Every page of a listing, in order, as lists of API items.

    Raises :class:`ListingError` when a request fails after retries or a
    response is not the listing it should be. Pages already yielded stay
    valid: the caller decides what a partial listing means.
    """
    proxy = getattr(connection, listing.service)
    url: str | None = listing.path
    params: dict[str, Any] | None = {**listing.params, "limit": page_size}
    seen_urls: set[str] = set()
    while url is not None:
        body = _get_json(proxy, url, params, listing)
        items = body.get(listing.resources_key)
        if not isinstance(items, list):
            raise ListingError(
                f"{listing.service} {listing.path}: response has no list "
                f"{listing.resources_key!r}"
            )
        yield items
        next_url = next_page_url(body, listing.resources_key)
        if next_url is None and items and len(items) >= page_size:
            # A full page without a next link: ask once more from the last id,
            # as openstacksdk does, rather than take a short listing as whole.
            next_url = listing.path
            params = {**listing.params, "limit": page_size, "marker": items[-1]["id"]}
        else:
            params = None
        if next_url is not None:
            key = f"{next_url}?{sorted((params or {}).items())}"
            if key in seen_urls:
                raise ListingError(
                    f"{listing.service} {listing.path}: the next link repeats "
                    f"{next_url}; aborting an endless listing"
                )
            seen_urls.add(key)
        url = next_url


def read_ahead(pages: Iterator[T], depth: int = 1) -> Iterator[T]:
    """``pages``, with the next ``depth`` of them fetched by a helper thread
    while the caller works on the current one, so that the API prepares a page
    while the previous one is mapped and published.

    Errors reach the caller in order, after the pages before them. When the
    caller stops early, the helper stops after the request it is making.
    """
    ahead: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(depth)
    stopped = threading.Event()

    def hand_over(item: object, error: BaseException | None = None) -> None:
        while not stopped.is_set():
            try:
                ahead.put((item, error), timeout=0.2)
                return
            except queue.Full:
                continue

    def fetch() -> None:
        try:
            for page in pages:
                hand_over(page)
                if stopped.is_set():
                    return
        except BaseException as exc:  # re-raised in the caller's thread
            hand_over(None, exc)
        else:
            hand_over(_DONE)

    helper = threading.Thread(target=fetch, name="stackmeter-read-ahead", daemon=True)
    helper.start()
    try:
        while True:
            item, error = ahead.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield cast(T, item)
    finally:
        stopped.set()


def _get_json(
    proxy: Any, url: str, params: dict[str, Any] | None, listing: Listing
) -> dict[str, Any]:
    where = f"{listing.service} {listing.path}"
    try:
        response = proxy.get(url, params=params, microversion=listing.microversion)
    except (ks_exceptions.ClientException, openstack.exceptions.SDKException) as exc:
        raise ListingError(f"{where}: {type(exc).__name__}: {exc}") from exc
    if response.status_code >= 400:
        detail = response.text[:200].replace("\n", " ")
        raise ListingError(
            f"{where}: HTTP {response.status_code} after retries: {detail}",
            status=response.status_code,
        )
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise ListingError(f"{where}: response is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ListingError(
            f"{where}: expected a JSON object, got {type(body).__name__}"
        )
    return body


def next_page_url(body: dict[str, Any], resources_key: str) -> str | None:
    """The next page's URL in any of the forms OpenStack services use."""
    # Nova, Cinder, Neutron, Octavia: "<key>_links": [{"rel": "next", ...}]
    for link in body.get(f"{resources_key}_links") or ():
        if isinstance(link, dict) and link.get("rel") == "next" and link.get("href"):
            return str(link["href"])
    links = body.get("links")
    # Keystone: "links": {"next": url-or-null}
    if isinstance(links, dict):
        next_link = links.get("next")
        return str(next_link) if next_link else None
    # API working group guideline: "links": [{"rel": "next", ...}]
    if isinstance(links, list):
        for link in links:
            if (
                isinstance(link, dict)
                and link.get("rel") == "next"
                and link.get("href")
            ):
                return str(link["href"])
    # Glance: "next": "/v2/images?marker=..." relative to Glance's root; the
    # proxy's endpoint already ends in /v2, so the version part is dropped.
    glance_next = body.get("next")
    if isinstance(glance_next, str) and glance_next:
        if glance_next.startswith("/v"):
            return glance_next[glance_next.find("/", 1) :]
        return glance_next
    return None
