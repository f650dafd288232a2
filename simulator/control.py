"""The simulator's control endpoints under ``/_sim``: read and move the
simulated clock, add and remove faults, read request counts and the expected
resources, so that tests and demos in other processes can steer it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from stackmeter.simulator.faults import FaultSpec, FaultSpecError
from stackmeter.simulator.scenario import KINDS, ScenarioError, parse_time

if TYPE_CHECKING:
    from stackmeter.simulator.server import Simulator

logger = logging.getLogger(__name__)


def add_routes(app: web.Application, simulator: Simulator) -> None:
    """Register the ``/_sim`` routes of ``simulator`` on ``app``."""
    routes = _ControlRoutes(simulator)
    app.router.add_get("/_sim/clock", routes.get_clock)
    app.router.add_post("/_sim/clock", routes.move_clock)
    app.router.add_get("/_sim/faults", routes.list_faults)
    app.router.add_post("/_sim/faults", routes.add_fault)
    app.router.add_delete("/_sim/faults", routes.clear_faults)
    app.router.add_delete("/_sim/faults/{fault_id}", routes.remove_fault)
    app.router.add_get("/_sim/stats", routes.stats)
    app.router.add_get("/_sim/resources/{kind}", routes.resources)


class _ControlRoutes:
    def __init__(self, simulator: Simulator) -> None:
        self._sim = simulator

    async def get_clock(self, request: web.Request) -> web.Response:
        return self._clock_state()

    async def move_clock(self, request: web.Request) -> web.Response:
        """Body: any of ``{"now": ISO, "advance_s": N, "speed": X}``, applied
        in that order."""
        body = await _json_body(request)
        unknown = sorted(set(body) - {"now", "advance_s", "speed"})
        if unknown:
            raise _bad_request(f"unknown field(s) {unknown}")
        clock = self._sim.clock
        try:
            if "now" in body:
                clock.set(parse_time(body["now"], clock.now(), "now"))
            if "advance_s" in body:
                clock.advance(_number(body["advance_s"], "advance_s"))
            if "speed" in body:
                clock.set_speed(_number(body["speed"], "speed"))
        except (ScenarioError, ValueError) as exc:
            raise _bad_request(str(exc)) from exc
        logger.info("clock moved now=%s speed=%s", clock.now().isoformat(), clock.speed)
        return self._clock_state()

    async def list_faults(self, request: web.Request) -> web.Response:
        faults = [
            {"id": fault_id, **spec.to_dict()}
            for fault_id, spec in self._sim.faults.active().items()
        ]
        return _respond({"faults": faults})

    async def add_fault(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            spec = FaultSpec.from_dict(body)
        except FaultSpecError as exc:
            raise _bad_request(str(exc)) from exc
        fault_id = self._sim.faults.add(spec)
        return _respond({"id": fault_id, **spec.to_dict()}, 201)

    async def clear_faults(self, request: web.Request) -> web.Response:
        self._sim.faults.clear()
        return web.Response(status=204)

    async def remove_fault(self, request: web.Request) -> web.Response:
        try:
            fault_id = int(request.match_info["fault_id"])
        except ValueError as exc:
            raise _bad_request("fault id must be an integer") from exc
        if not self._sim.faults.remove(fault_id):
            raise web.HTTPNotFound(text=f"no active fault {fault_id}")
        return web.Response(status=204)

    async def stats(self, request: web.Request) -> web.Response:
        return _respond({"requests": self._sim.request_counts()})

    async def resources(self, request: web.Request) -> web.Response:
        """Ids of the resources of a kind that exist at ``?at=`` (default:
        now), as a complete listing at that time must show them."""
        kind = request.match_info["kind"]
        if kind not in KINDS:
            raise web.HTTPNotFound(
                text=f"unknown kind {kind!r}, expected {list(KINDS)}"
            )
        clock = self._sim.clock
        try:
            at = parse_time(request.query["at"], clock.now(), "at")
        except KeyError:
            at = clock.now()
        except ScenarioError as exc:
            raise _bad_request(str(exc)) from exc
        ids = [obj.id for obj in self._sim.resources_at(kind, at)]
        return _respond(
            {"kind": kind, "at": at.isoformat(), "count": len(ids), "ids": ids}
        )

    def _clock_state(self) -> web.Response:
        clock = self._sim.clock
        now = clock.now().isoformat().replace("+00:00", "Z")
        return _respond({"now": now, "speed": clock.speed})


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json(loads=orjson.loads)
    except ValueError as exc:
        raise _bad_request("body must be a JSON object") from exc
    if not isinstance(body, dict):
        raise _bad_request("body must be a JSON object")
    return body


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad_request(f"{name} must be a number, got {value!r}")
    return float(value)


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(
        text=orjson.dumps({"error": message}).decode(),
        content_type="application/json",
    )


def _respond(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json"
    )
