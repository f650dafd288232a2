"""Injected faults: HTTP errors and delays that the simulator applies to matching
API requests, set in the scenario or at run time through the control endpoint."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

logger = logging.getLogger(__name__)

#: Service names a fault may target (catalog service types), or ``*``.
SERVICES = frozenset(
    {"identity", "compute", "block-storage", "image", "network", "load-balancer"}
)

#: API collection names a fault may target, or ``*``. ``tokens`` is the
#: password authentication request.
RESOURCES = frozenset(
    {
        "tokens",
        "projects",
        "servers",
        "volumes",
        "snapshots",
        "images",
        "floatingips",
        "routers",
        "loadbalancers",
        "listeners",
        "pools",
    }
)


class FaultSpecError(ValueError):
    """A fault specification with an unknown field or value."""


@dataclass(frozen=True, kw_only=True)
class FaultSpec:
    """One injected fault.

    A request matches when its service and resource match (``*`` matches any)
    and, if ``page`` is set, when it asks for that page of a listing (1 is the
    request without a marker). A match waits ``delay_s`` and then answers with
    ``status``, or serves the request normally when ``status`` is None (a slow
    response). ``times`` limits how often the fault fires; None means always.
    Faults never touch version discovery documents.
    """

    service: str = "*"
    resource: str = "*"
    page: int | None = None
    status: int | None = 500
    delay_s: float = 0.0
    times: int | None = None

    def __post_init__(self) -> None:
        if self.service != "*" and self.service not in SERVICES:
            raise FaultSpecError(
                f"fault service: expected one of {sorted(SERVICES)} or '*', "
                f"got {self.service!r}"
            )
        if self.resource != "*" and self.resource not in RESOURCES:
            raise FaultSpecError(
                f"fault resource: expected one of {sorted(RESOURCES)} or '*', "
                f"got {self.resource!r}"
            )
        if self.page is not None and self.page < 1:
            raise FaultSpecError(f"fault page: expected >= 1, got {self.page}")
        if self.status is not None and not 400 <= self.status <= 599:
            raise FaultSpecError(
                f"fault status: expected an HTTP error 400..599, got {self.status}"
            )
        if self.delay_s < 0:
            raise FaultSpecError(f"fault delay_s: expected >= 0, got {self.delay_s}")
        if self.times is not None and self.times < 1:
            raise FaultSpecError(f"fault times: expected >= 1, got {self.times}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultSpec:
        """Build a fault from its YAML/JSON form (the field names below)."""
        known = {"service", "resource", "page", "status", "delay_s", "times"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FaultSpecError(
                f"fault: unknown field(s) {unknown}, expected some of {sorted(known)}"
            )
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise FaultSpecError(f"fault: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """The YAML/JSON form of this fault."""
        return asdict(self)

    def matches(self, service: str, resource: str, page: int | None) -> bool:
        """Whether a request for ``page`` of ``service``/``resource`` is hit."""
        if self.service not in ("*", service):
            return False
        if self.resource not in ("*", resource):
            return False
        return self.page is None or self.page == page


@dataclass(frozen=True)
class FiredFault:
    """What a matching fault asks the server to do with one request."""

    fault_id: int
    status: int | None
    delay_s: float


class FaultBook:
    """The active faults, in the order they were added; the first match wins.

    Thread-safe: tests add faults from their own thread while the server reads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._faults: dict[int, FaultSpec] = {}

    def add(self, spec: FaultSpec) -> int:
        """Activate ``spec``; returns an id that :meth:`remove` accepts."""
        with self._lock:
            fault_id = next(self._ids)
            self._faults[fault_id] = spec
        logger.info("fault added id=%d spec=%s", fault_id, spec)
        return fault_id

    def remove(self, fault_id: int) -> bool:
        """Deactivate one fault; False when it was not active."""
        with self._lock:
            return self._faults.pop(fault_id, None) is not None

    def clear(self) -> None:
        """Deactivate every fault."""
        with self._lock:
            self._faults.clear()

    def active(self) -> dict[int, FaultSpec]:
        """The active faults by id, with their remaining ``times``."""
        with self._lock:
            return dict(self._faults)

    def fire(self, service: str, resource: str, page: int | None) -> FiredFault | None:
        """Consume one firing of the first fault that matches, if any."""
        with self._lock:
            for fault_id, spec in self._faults.items():
                if not spec.matches(service, resource, page):
                    continue
                if spec.times is not None:
                    if spec.times <= 1:
                        del self._faults[fault_id]
                    else:
                        self._faults[fault_id] = replace(spec, times=spec.times - 1)
                fired = FiredFault(fault_id, spec.status, spec.delay_s)
                break
            else:
                return None
        logger.info(
            "fault fired id=%d service=%s resource=%s page=%s status=%s delay_s=%s",
            fired.fault_id,
            service,
            resource,
            page,
            fired.status,
            fired.delay_s,
        )
        return fired
