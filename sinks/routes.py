"""Which topic feeds which table, and how one message becomes a row or is refused.

Run markers share the snapshot topics with the snapshots themselves; a
snapshot is recognised from the 10-byte single-object header alone and skipped
without decoding its body, since the sink stores only the markers.
"""

from __future__ import annotations

from dataclasses import dataclass

from stackmeter.codec import SchemaRegistry
from stackmeter.errors import CodecError
from stackmeter.resources import resource_types
from stackmeter.sinks.rows import (
    PROJECTS,
    RATED_USAGE,
    RUN_MARKERS,
    USAGE,
    Row,
    TableSpec,
    to_row,
)
from stackmeter.topics import TopicNames


@dataclass(frozen=True, slots=True)
class Route:
    """A consumed topic, its table, and the schemas on it that are not stored."""

    topic: str
    table: TableSpec
    skipped_schemas: frozenset[str] = frozenset()


def sink_routes(names: TopicNames) -> dict[str, Route]:
    """Every topic the sink consumes, by name."""
    snapshot_schemas = frozenset(t.schema_name for t in resource_types().values())
    routes = [
        Route(names.usage, USAGE),
        Route(names.rated_usage, RATED_USAGE),
        Route(names.projects, PROJECTS),
    ]
    routes.extend(
        Route(topic, RUN_MARKERS, snapshot_schemas) for topic in names.all_snapshots()
    )
    return {route.topic: route for route in routes}


class MessageReader:
    """Reads a message of a routed topic into its table's row.

    ``read`` returns the row, None for a message that is skipped on purpose (a
    snapshot), or raises ``CodecError`` with the reason the message cannot be
    stored, which becomes the dead letter's reason.
    """

    def __init__(self, routes: dict[str, Route], registry: SchemaRegistry) -> None:
        self._routes = routes
        self._registry = registry

    def route(self, topic: str) -> Route:
        return self._routes[topic]

    def read(
        self, topic: str, value: bytes | None, partition: int, offset: int
    ) -> Row | None:
        route = self._routes[topic]
        if value is None:
            raise CodecError("message has no value (a tombstone); nothing to store")
        schema_name = self._registry.schema_name_of(value)
        if schema_name in route.skipped_schemas:
            return None
        if schema_name != route.table.schema_name:
            raise CodecError(
                f"topic {topic} carries {route.table.schema_name} records, "
                f"got a {schema_name}"
            )
        record = self._registry.decode(value).record
        return to_row(route.table, record, partition, offset)
