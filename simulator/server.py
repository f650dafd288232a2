"""The simulator's HTTP server: one aiohttp application on one port that plays
Keystone, Nova, Cinder, Glance, Neutron and Octavia for the scenario's cloud at
the simulated time of each request."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import yaml
from aiohttp import web

from stackmeter.simulator import control, identity
from stackmeter.simulator.clock import SimClock
from stackmeter.simulator.faults import FaultBook
from stackmeter.simulator.listing import (
    ROUTES,
    ListingRequestError,
    ListingRoute,
    listing_body,
    microversion_headers,
    negotiate_microversion,
    parse_limit,
    project_filter,
)
from stackmeter.simulator.scenario import Scenario, Timed, stable_id
from stackmeter.simulator.state import CloudState
from stackmeter.simulator.views import ViewContext

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Name of the cloud in the clouds.yaml the simulator writes.
DEFAULT_CLOUD = "stackmeter-sim"


class PageTracker:
    """Remembers which page of a listing each marker opens, so that a fault can
    target "page 3" however the client pages. Bounded: it forgets everything
    once it holds ``capacity`` markers, and a forgotten marker counts as an
    unknown page (no page fault matches it)."""

    def __init__(self, capacity: int = 500_000) -> None:
        self._capacity = capacity
        self._next_page: dict[tuple[str, str], int] = {}

    def page_of(self, resource: str, marker: str | None) -> int | None:
        if marker is None:
            return 1
        return self._next_page.get((resource, marker))

    def record(self, resource: str, marker: str, page: int) -> None:
        if len(self._next_page) >= self._capacity:
            self._next_page.clear()
        self._next_page[(resource, marker)] = page


class Simulator:
    """The simulated cloud: scenario state, clock, faults and the HTTP server.

    Run it with :meth:`start`/:meth:`stop` inside an asyncio loop, or in a
    background thread with :func:`stackmeter.simulator.run_simulator`.
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        max_page_size: int = 1000,
        clock_speed: float = 0.0,
    ) -> None:
        if max_page_size < 1:
            raise ValueError(f"max_page_size must be >= 1, got {max_page_size}")
        self.scenario = scenario
        self.state = CloudState(scenario)
        self.clock = SimClock(scenario.start, clock_speed)
        self.faults = FaultBook()
        for spec in scenario.faults:
            self.faults.add(spec)
        self.max_page_size = max_page_size
        self.user_id = stable_id("users", scenario.credentials.username)
        self._tokens = identity.TokenStore()
        self._pages = PageTracker()
        self._request_counts: Counter[str] = Counter()
        # Counted on the server's loop, read from any thread.
        self._counts_lock = threading.Lock()
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        if self._base_url is None:
            raise RuntimeError("the simulator is not running; call start() first")
        return self._base_url

    @property
    def auth_url(self) -> str:
        """Keystone v3 URL for clouds.yaml's ``auth_url``."""
        return f"{self.base_url}/identity/v3"

    def request_counts(self) -> dict[str, int]:
        """Requests served so far per ``service/resource`` (listing pages count
        one each, faulted ones included)."""
        with self._counts_lock:
            return dict(self._request_counts)

    def resources_at(self, kind: str, when: datetime | None = None) -> list[Timed]:
        """What a complete listing of ``kind`` shows at ``when`` (default: the
        simulated now), sorted by id."""
        return self.state.resources_at(kind, when or self.clock.now())

    def cloud_config(self, cloud: str = DEFAULT_CLOUD) -> dict[str, Any]:
        """A clouds.yaml document with one cloud entry for this simulator."""
        credentials = self.scenario.credentials
        return {
            "clouds": {
                cloud: {
                    "auth_type": "password",
                    "auth": {
                        "auth_url": self.auth_url,
                        "username": credentials.username,
                        "password": credentials.password,
                        "project_name": credentials.project_name,
                        "user_domain_name": credentials.user_domain_name,
                        "project_domain_name": credentials.project_domain_name,
                    },
                    "region_name": self.scenario.region,
                    "interface": "public",
                    "identity_api_version": 3,
                }
            }
        }

    def write_clouds_yaml(self, path: str | Path, cloud: str = DEFAULT_CLOUD) -> Path:
        """Write :meth:`cloud_config` to ``path`` and return it."""
        target = Path(path)
        # Written aside and renamed, so a process that polls for the file never
        # reads half of it.
        partial = target.with_name(f".{target.name}.partial")
        partial.write_text(
            yaml.safe_dump(self.cloud_config(cloud), sort_keys=False), encoding="utf-8"
        )
        partial.replace(target)
        return target

    def build_app(self) -> web.Application:
        """The aiohttp application with every route."""
        app = web.Application()
        for path in identity.version_documents(""):
            app.router.add_get(path, self._discovery)
            app.router.add_get(path + "/", self._discovery)
        app.router.add_post("/identity/v3/auth/tokens", self._issue_token)
        for route in ROUTES:
            handler = self._listing_handler(route)
            for path in (route.path, *route.alias_paths):
                app.router.add_get(path, handler)
        control.add_routes(app, self)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 picks a free port); returns the base URL."""
        runner = web.AppRunner(self.build_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound_port = runner.addresses[0][1]
        self._base_url = f"http://{host}:{bound_port}"
        logger.info(
            "simulator started url=%s now=%s speed=%s max_page_size=%d",
            self._base_url,
            self.clock.now().isoformat(),
            self.clock.speed,
            self.max_page_size,
        )
        return self._base_url

    async def stop(self) -> None:
        """Stop serving and close every connection."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            logger.info("simulator stopped url=%s", self._base_url)

    async def _discovery(self, request: web.Request) -> web.Response:
        path = request.path.rstrip("/")
        status, body = identity.version_documents(_base_of(request))[path]
        return _json(body, status)

    async def _issue_token(self, request: web.Request) -> web.Response:
        fault = await self._apply_fault("identity", "tokens", 1)
        if fault is not None:
            return fault
        try:
            body = await request.json(loads=orjson.loads)
        except ValueError:
            body = None
        refusal = identity.check_password_auth(
            body, self.scenario.credentials, self.state.admin_project
        )
        if refusal is not None:
            logger.warning("authentication refused reason=%s", refusal)
            return _json(identity.error_body("identity", 401, refusal), 401)
        token, expires_ts = self._tokens.issue()
        document = identity.token_body(
            _base_of(request),
            self.scenario.region,
            self.scenario.credentials,
            self.state.admin_project,
            expires_ts,
        )
        return _json(document, 201, {"X-Subject-Token": token})

    def _listing_handler(self, route: ListingRoute) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            if not self._tokens.valid(request.headers.get("X-Auth-Token")):
                message = "The request you have made requires authentication."
                return _json(identity.error_body(route.service, 401, message), 401)
            try:
                return await self._list(route, request)
            except ListingRequestError as exc:
                body = identity.error_body(route.service, exc.status, str(exc))
                return _json(body, exc.status)

        return handle

    async def _list(self, route: ListingRoute, request: web.Request) -> web.Response:
        query = request.query
        limit = parse_limit(query)
        marker = query.get("marker") or None
        version = negotiate_microversion(route, request.headers)
        page = self._pages.page_of(route.resource, marker)
        fault = await self._apply_fault(route.service, route.resource, page)
        if fault is not None:
            return fault

        ts = self.clock.now_ts()
        if route.pagination == "keystone" and limit is None:
            # Keystone returns every project unless the client asks for pages.
            page_size = len(self.state.kinds[route.kind])
        else:
            page_size = min(limit or self.max_page_size, self.max_page_size)
        accept = project_filter(route, query, self.state.admin_project.id)
        found, more = self.state.kinds[route.kind].page(ts, marker, page_size, accept)

        base_url = _base_of(request)
        ctx = ViewContext(
            self.state,
            base_url + route.endpoint_path,
            ts,
            version or (0, 0),
            self.user_id,
        )
        items = [route.view(ctx, timeline, obj) for timeline, obj in found]
        if route.summary_keys is not None:
            items = [{key: item[key] for key in route.summary_keys} for item in items]
        next_marker = found[-1][1].id if more and found else None
        if next_marker is not None and page is not None:
            self._pages.record(route.resource, next_marker, page + 1)
        body = listing_body(route, items, next_marker, base_url + request.path, query)
        logger.debug(
            "listed resource=%s page=%s count=%d more=%s",
            route.resource,
            page,
            len(items),
            more,
        )
        return _json(body, 200, microversion_headers(route, version))

    async def _apply_fault(
        self, service: str, resource: str, page: int | None
    ) -> web.Response | None:
        with self._counts_lock:
            self._request_counts[f"{service}/{resource}"] += 1
        fired = self.faults.fire(service, resource, page)
        if fired is None:
            return None
        if fired.delay_s:
            await asyncio.sleep(fired.delay_s)
        if fired.status is None:
            return None
        message = f"injected fault {fired.fault_id} on {service}/{resource}"
        return _json(identity.error_body(service, fired.status, message), fired.status)


def _base_of(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _json(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        headers=headers,
        content_type="application/json",
    )
