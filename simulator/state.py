"""The scenario compiled for fast queries: per kind, resources sorted by id with
their versions over time, so a listing at time T pages through them by marker
with a binary search instead of a scan."""

from __future__ import annotations

import bisect
import dataclasses
import logging
import math
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import cast

from stackmeter.simulator.clock import to_ts
from stackmeter.simulator.scenario import (
    FIXED_FIELDS,
    KINDS,
    Flavor,
    Listener,
    Pool,
    Project,
    Scenario,
    ScenarioError,
    Server,
    Timed,
    stable_id,
)

logger = logging.getLogger(__name__)


class Timeline:
    """One resource's life: when it exists and its versions over time."""

    __slots__ = ("change_ts", "created_ts", "deleted_ts", "versions")

    def __init__(
        self,
        created_ts: float,
        deleted_ts: float,
        change_ts: list[float],
        versions: list[Timed],
    ) -> None:
        self.created_ts = created_ts
        self.deleted_ts = deleted_ts
        #: Start time of ``versions[1:]``; the first version starts at creation.
        self.change_ts = change_ts
        self.versions = versions

    def alive(self, ts: float) -> bool:
        """Whether the resource exists at ``ts`` (created <= ts < deleted)."""
        return self.created_ts <= ts < self.deleted_ts

    def at(self, ts: float) -> Timed:
        """The resource's version in force at ``ts``."""
        if not self.change_ts:
            return self.versions[0]
        return self.versions[bisect.bisect_right(self.change_ts, ts)]

    def updated_ts(self, ts: float) -> float:
        """When the version in force at ``ts`` began."""
        index = bisect.bisect_right(self.change_ts, ts)
        return self.change_ts[index - 1] if index else self.created_ts


class KindIndex:
    """All resources of one kind, sorted by id."""

    def __init__(self, kind: str, timelines: dict[str, Timeline]) -> None:
        self.kind = kind
        self.ids = sorted(timelines)
        self.timelines = [timelines[resource_id] for resource_id in self.ids]
        self.by_id = timelines

    def __len__(self) -> int:
        return len(self.ids)

    def alive_at(self, ts: float) -> Iterator[tuple[Timeline, Timed]]:
        """Every resource that exists at ``ts`` with its version, by id."""
        for timeline in self.timelines:
            if timeline.created_ts <= ts < timeline.deleted_ts:
                yield timeline, timeline.at(ts)

    def page(
        self,
        ts: float,
        marker: str | None,
        limit: int,
        accept: Callable[[Timed], bool] | None = None,
    ) -> tuple[list[tuple[Timeline, Timed]], bool]:
        """Up to ``limit`` resources that exist at ``ts`` with ids after
        ``marker``, and whether more follow.

        A marker that names no resource (one deleted in the meantime, say)
        still works: the page starts at the next id in sort order.
        """
        start = bisect.bisect_right(self.ids, marker) if marker else 0
        found: list[tuple[Timeline, Timed]] = []
        timelines = self.timelines
        for index in range(start, len(timelines)):
            timeline = timelines[index]
            if not timeline.created_ts <= ts < timeline.deleted_ts:
                continue
            version = timeline.at(ts)
            if accept is not None and not accept(version):
                continue
            if len(found) == limit:
                return found, True
            found.append((timeline, version))
        return found, False


class CloudState:
    """The compiled scenario that the API handlers query."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.start_ts = to_ts(scenario.start)
        self.flavors: dict[str, Flavor] = {f.name: f for f in scenario.flavors}
        self.admin_project = _admin_project(scenario)
        self.kinds: dict[str, KindIndex] = {}
        for kind in KINDS:
            objects = list(scenario.objects(kind))
            if kind == "projects" and self.admin_project not in objects:
                objects.append(self.admin_project)
            self.kinds[kind] = KindIndex(kind, self._timelines(kind, objects))
        self._check_references()
        self.lb_children = self._children_of_load_balancers()
        logger.info(
            "scenario compiled start=%s counts=%s",
            scenario.start.isoformat(),
            {kind: len(index) for kind, index in self.kinds.items()},
        )

    def resources_at(self, kind: str, when: datetime) -> list[Timed]:
        """The resources of ``kind`` that exist at ``when``, in their state at
        that time, sorted by id: what a complete listing at ``when`` shows."""
        ts = to_ts(when)
        return [version for _, version in self.kinds[kind].alive_at(ts)]

    def _timelines(self, kind: str, objects: list[Timed]) -> dict[str, Timeline]:
        timelines: dict[str, Timeline] = {}
        for obj in objects:
            where = f"{kind} {obj.id}"
            if obj.id in timelines:
                raise ScenarioError(f"{where}: id is used twice")
            created_ts = to_ts(obj.created) if obj.created else self.start_ts
            deleted_ts = to_ts(obj.deleted) if obj.deleted else math.inf
            if deleted_ts <= created_ts:
                raise ScenarioError(f"{where}: deleted is not after created")
            change_ts: list[float] = []
            versions = [obj]
            for change in sorted(obj.changes, key=lambda c: c.at):
                at_ts = to_ts(change.at)
                if at_ts < created_ts:
                    raise ScenarioError(f"{where}: a change is dated before created")
                fixed = sorted(FIXED_FIELDS & set(change.attrs))
                if fixed:
                    raise ScenarioError(f"{where}: a change may not set {fixed}")
                try:
                    versions.append(dataclasses.replace(versions[-1], **change.attrs))
                except TypeError as exc:
                    raise ScenarioError(f"{where}: bad change: {exc}") from exc
                change_ts.append(at_ts)
            timelines[obj.id] = Timeline(created_ts, deleted_ts, change_ts, versions)
        return timelines

    def _check_references(self) -> None:
        for kind, cls in KINDS.items():
            refs = dict(cls.REFS)
            for timeline in self.kinds[kind].timelines:
                for version in timeline.versions:
                    self._check_one(kind, version, refs)

    def _check_one(self, kind: str, version: Timed, refs: dict[str, str]) -> None:
        for field_name, target in refs.items():
            value = getattr(version, field_name)
            if value is not None and value not in self.kinds[target].by_id:
                raise ScenarioError(
                    f"{kind} {version.id}: {field_name}: no {target} has the id "
                    f"{value!r}"
                )
        if isinstance(version, Server) and version.flavor not in self.flavors:
            raise ScenarioError(
                f"servers {version.id}: flavor: expected one of "
                f"{sorted(self.flavors)}, got {version.flavor!r}"
            )

    def _children_of_load_balancers(self) -> dict[str, dict[str, list[Timeline]]]:
        children: dict[str, dict[str, list[Timeline]]] = {
            lb_id: {"listeners": [], "pools": []}
            for lb_id in self.kinds["load_balancers"].ids
        }
        for kind in ("listeners", "pools"):
            for timeline in self.kinds[kind].timelines:
                lb_id = cast(Listener | Pool, timeline.versions[0]).load_balancer_id
                children[lb_id][kind].append(timeline)
        return children


def _admin_project(scenario: Scenario) -> Project:
    """The project the admin token is scoped to; added when the scenario does
    not list a project of that name."""
    name = scenario.credentials.project_name
    for project in scenario.projects:
        if project.name == name:
            return project
    return Project(id=stable_id("projects", name), name=name)
