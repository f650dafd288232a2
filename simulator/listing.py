"""The listing endpoints: which scenario kind each serves, how each service
scopes, filters and paginates it (Nova-style ``*_links``, Glance's ``next``,
Keystone's ``links``), and microversion negotiation."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from stackmeter.simulator import views
from stackmeter.simulator.identity import COMPUTE_VERSIONS, VOLUME_VERSIONS
from stackmeter.simulator.scenario import Image, Timed
from stackmeter.simulator.state import Timeline

ViewFn = Callable[[views.ViewContext, Timeline, Any], dict[str, Any]]
Version = tuple[int, int]
PaginationStyle = Literal["links", "glance", "keystone"]

_FALSE_TEXT = frozenset({"0", "false", "f", "no", "n", "off"})


@dataclass(frozen=True)
class MicroversionRange:
    """The microversions a service serves, and its name in the version header."""

    header_name: str
    low: Version
    high: Version


@dataclass(frozen=True)
class ListingRoute:
    """One listing endpoint of one service."""

    service: str
    #: API collection name: the body key, and what faults and stats name.
    resource: str
    kind: str
    #: Path of the service endpoint (as in the catalog) and of the listing.
    endpoint_path: str
    path: str
    view: ViewFn
    pagination: PaginationStyle = "links"
    #: Without ``all_tenants``, only the token's project is listed (Nova, Cinder).
    scoped: bool = False
    #: Query parameters that filter by an attribute: parameter -> attribute.
    filters: Mapping[str, str] = field(default_factory=dict)
    #: Microversions served, if the service has them.
    microversions: MicroversionRange | None = None
    #: Summary listings (``/servers`` without ``/detail``) keep only these keys.
    summary_keys: tuple[str, ...] | None = None
    #: Further paths that serve the same listing.
    alias_paths: tuple[str, ...] = ()


_NOVA = MicroversionRange("compute", *COMPUTE_VERSIONS)
_CINDER = MicroversionRange("volume", *VOLUME_VERSIONS)
_OWNER = {"project_id": "project_id", "tenant_id": "project_id"}

ROUTES: tuple[ListingRoute, ...] = (
    ListingRoute(
        "identity",
        "projects",
        "projects",
        "/identity/v3",
        "/identity/v3/projects",
        views.project_view,
        pagination="keystone",
        filters={"domain_id": "domain_id", "name": "name"},
    ),
    ListingRoute(
        "compute",
        "servers",
        "servers",
        "/compute/v2.1",
        "/compute/v2.1/servers/detail",
        views.server_view,
        scoped=True,
        filters=_OWNER,
        microversions=_NOVA,
    ),
    ListingRoute(
        "compute",
        "servers",
        "servers",
        "/compute/v2.1",
        "/compute/v2.1/servers",
        views.server_view,
        scoped=True,
        filters=_OWNER,
        summary_keys=("id", "name", "links"),
        microversions=_NOVA,
    ),
    ListingRoute(
        "block-storage",
        "volumes",
        "volumes",
        "/volume/v3",
        "/volume/v3/volumes/detail",
        views.volume_view,
        scoped=True,
        filters={"project_id": "project_id"},
        microversions=_CINDER,
    ),
    ListingRoute(
        "block-storage",
        "volumes",
        "volumes",
        "/volume/v3",
        "/volume/v3/volumes",
        views.volume_view,
        scoped=True,
        filters={"project_id": "project_id"},
        summary_keys=("id", "name", "links"),
        microversions=_CINDER,
    ),
    ListingRoute(
        "block-storage",
        "snapshots",
        "snapshots",
        "/volume/v3",
        "/volume/v3/snapshots/detail",
        views.snapshot_view,
        scoped=True,
        filters={"project_id": "project_id", "volume_id": "volume_id"},
        microversions=_CINDER,
    ),
    ListingRoute(
        "block-storage",
        "snapshots",
        "snapshots",
        "/volume/v3",
        "/volume/v3/snapshots",
        views.snapshot_view,
        scoped=True,
        filters={"project_id": "project_id", "volume_id": "volume_id"},
        summary_keys=("id", "name", "status", "size", "volume_id", "created_at"),
        microversions=_CINDER,
    ),
    ListingRoute(
        "image",
        "images",
        "images",
        "/image/v2",
        "/image/v2/images",
        views.image_view,
        pagination="glance",
        filters={"owner": "project_id", "status": "status"},
    ),
    ListingRoute(
        "network",
        "floatingips",
        "floating_ips",
        "/networking/v2.0",
        "/networking/v2.0/floatingips",
        views.floating_ip_view,
        filters={**_OWNER, "router_id": "router_id", "status": "status"},
    ),
    ListingRoute(
        "network",
        "routers",
        "routers",
        "/networking/v2.0",
        "/networking/v2.0/routers",
        views.router_view,
        filters={**_OWNER, "status": "status"},
    ),
    ListingRoute(
        "load-balancer",
        "loadbalancers",
        "load_balancers",
        "/load-balancer/v2.0",
        "/load-balancer/v2.0/lbaas/loadbalancers",
        views.load_balancer_view,
        filters={"project_id": "project_id"},
        alias_paths=("/load-balancer/v2/lbaas/loadbalancers",),
    ),
    ListingRoute(
        "load-balancer",
        "listeners",
        "listeners",
        "/load-balancer/v2.0",
        "/load-balancer/v2.0/lbaas/listeners",
        views.listener_view,
        filters={"project_id": "project_id", "loadbalancer_id": "load_balancer_id"},
        alias_paths=("/load-balancer/v2/lbaas/listeners",),
    ),
    ListingRoute(
        "load-balancer",
        "pools",
        "pools",
        "/load-balancer/v2.0",
        "/load-balancer/v2.0/lbaas/pools",
        views.pool_view,
        filters={"project_id": "project_id", "loadbalancer_id": "load_balancer_id"},
        alias_paths=("/load-balancer/v2/lbaas/pools",),
    ),
)


class ListingRequestError(ValueError):
    """A listing request the real service would refuse; carries the status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def is_true(value: str | None) -> bool:
    """How Nova and Cinder read a flag such as ``all_tenants``."""
    return value is not None and value.strip().lower() not in _FALSE_TEXT


def parse_limit(query: Mapping[str, str]) -> int | None:
    """The ``limit`` query parameter, if any."""
    text = query.get("limit")
    if text is None:
        return None
    try:
        limit = int(text)
    except ValueError:
        raise ListingRequestError(
            400, f"limit must be an integer, got {text!r}"
        ) from None
    if limit < 0:
        raise ListingRequestError(400, f"limit must be >= 0, got {limit}")
    return limit


def negotiate_microversion(
    route: ListingRoute, headers: Mapping[str, str]
) -> Version | None:
    """The microversion a request asks for: the minimum when it names none,
    the maximum for ``latest``; 406 outside the served range."""
    if route.microversions is None:
        return None
    low, high = route.microversions.low, route.microversions.high
    wanted = _requested_version(route.microversions.header_name, headers)
    if wanted is None:
        return low
    if wanted == "latest":
        return high
    try:
        major_text, minor_text = wanted.split(".")
        version = (int(major_text), int(minor_text))
    except ValueError:
        raise ListingRequestError(
            400, f"invalid microversion {wanted!r}, expected MAJOR.MINOR"
        ) from None
    if not low <= version <= high:
        raise ListingRequestError(
            406,
            f"Version {wanted} is not supported by the API. Minimum is "
            f"{low[0]}.{low[1]} and maximum is {high[0]}.{high[1]}.",
        )
    return version


def microversion_headers(
    route: ListingRoute, version: Version | None
) -> dict[str, str]:
    """Response headers that state the microversion used."""
    if version is None or route.microversions is None:
        return {}
    name = route.microversions.header_name
    text = f"{version[0]}.{version[1]}"
    headers = {
        "OpenStack-API-Version": f"{name} {text}",
        "Vary": "OpenStack-API-Version",
    }
    if name == "compute":
        headers["X-OpenStack-Nova-API-Version"] = text
        headers["Vary"] = "OpenStack-API-Version, X-OpenStack-Nova-API-Version"
    return headers


def project_filter(
    route: ListingRoute,
    query: Mapping[str, str],
    token_project_id: str,
) -> Callable[[Timed], bool] | None:
    """The predicate that the request's scope and filters impose, if any."""
    wanted: dict[str, str] = {
        attribute: query[param]
        for param, attribute in route.filters.items()
        if param in query
    }
    if route.scoped and not is_true(query.get("all_tenants")):
        # Nova and Cinder ignore other projects' filters without all_tenants.
        wanted["project_id"] = token_project_id
    if route.resource == "images":
        return _glance_visibility(query.get("visibility"), wanted)
    if not wanted:
        return None
    items = tuple(wanted.items())
    return lambda obj: all(getattr(obj, name) == value for name, value in items)


def listing_body(
    route: ListingRoute,
    items: list[dict[str, Any]],
    next_marker: str | None,
    self_url: str,
    query: Mapping[str, str],
) -> dict[str, Any]:
    """The response document with the pagination links of ``route``'s service;
    ``self_url`` is the requested URL without its query, ``next_marker`` None
    on the last page."""
    next_query = None
    if next_marker is not None:
        params = {k: v for k, v in query.items() if k != "marker"}
        params["marker"] = next_marker
        next_query = urllib.parse.urlencode(params)
    if route.pagination == "glance":
        body: dict[str, Any] = {
            "images": items,
            "schema": "/v2/schemas/images",
            "first": "/v2/images",
        }
        if next_query is not None:
            body["next"] = f"/v2/images?{next_query}"
        return body
    if route.pagination == "keystone":
        return {
            route.resource: items,
            "links": {
                "self": self_url,
                "previous": None,
                "next": f"{self_url}?{next_query}" if next_query else None,
            },
        }
    body = {route.resource: items}
    if next_query is not None:
        body[f"{route.resource}_links"] = [
            {"rel": "next", "href": f"{self_url}?{next_query}"}
        ]
    return body


def _requested_version(service: str, headers: Mapping[str, str]) -> str | None:
    for entry in headers.get("OpenStack-API-Version", "").split(","):
        parts = entry.strip().split()
        if len(parts) == 2 and parts[0].lower() == service:
            return parts[1].lower()
    if service == "compute":
        legacy = headers.get("X-OpenStack-Nova-API-Version")
        if legacy:
            return legacy.strip().lower()
    return None


def _glance_visibility(
    visibility: str | None, wanted: dict[str, str]
) -> Callable[[Timed], bool]:
    # Glance leaves community images out unless asked for them.
    if visibility in (None, ""):
        shown: frozenset[str] | None = frozenset({"public", "private", "shared"})
    elif visibility == "all":
        shown = None
    else:
        shown = frozenset({visibility})
    items = tuple(wanted.items())

    def accept(obj: Timed) -> bool:
        if shown is not None and cast(Image, obj).visibility not in shown:
            return False
        return all(getattr(obj, name) == value for name, value in items)

    return accept
