"""Avro single-object encoding over fastavro, with a registry of writer schemas.

Every Kafka value stackmeter writes is the spec's two-byte marker ``C3 01``, the
writer schema's 8-byte CRC-64-AVRO fingerprint (little-endian) and the Avro
binary body, so any consumer can find the writer schema without a registry
service. Schemas are parsed once, when they are added to the registry.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import (
    fingerprint,
    load_schema,
    to_parsing_canonical_form,
)

from stackmeter.errors import CodecError, UnknownSchemaError

logger = logging.getLogger(__name__)

MARKER = b"\xc3\x01"
HEADER_BYTES = len(MARKER) + 8

Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded message: the full name of its schema and the record."""

    schema_name: str
    record: Record


@dataclass(frozen=True, slots=True)
class _Writer:
    name: str
    fingerprint: bytes
    parsed: Any


def schema_fingerprint(schema: Mapping[str, Any]) -> bytes:
    """The 8-byte CRC-64-AVRO fingerprint of a fully expanded schema."""
    canonical = to_parsing_canonical_form(dict(schema))
    return bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))


def full_name(schema: Mapping[str, Any]) -> str:
    """The namespaced name of a named schema, e.g. ``stackmeter.Usage``."""
    name = str(schema["name"])
    namespace = schema.get("namespace")
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


class SchemaRegistry:
    """Known writer schemas by fingerprint, and the current reader per name.

    The current schema of a name is the one new records are written with and
    old ones are read into (Avro schema resolution); older versions are added
    with ``current=False`` so data they wrote can still be decoded.
    """

    def __init__(self) -> None:
        self._by_fingerprint: dict[bytes, _Writer] = {}
        self._current: dict[str, _Writer] = {}

    def add(self, schema: Mapping[str, Any], *, current: bool = True) -> str:
        """Register a fully expanded schema; returns its full name."""
        name = full_name(schema)
        writer = _Writer(
            name=name,
            fingerprint=schema_fingerprint(schema),
            parsed=parse_schema(dict(schema)),
        )
        self._by_fingerprint[writer.fingerprint] = writer
        if current:
            self._current[name] = writer
        return name

    def load_folder(self, folder: Path, *, current: bool = True) -> list[str]:
        """Register every ``*.avsc`` file in a folder whose schema is a message.

        Files are named by full schema name (``stackmeter.Usage.avsc``) so that
        references between them resolve, as fastavro's ``load_schema`` expects.
        Types marked ``"embedded": true`` (the envelope) are parts of other
        records, never messages, and are skipped.
        """
        names = []
        for path in sorted(folder.glob("*.avsc")):
            if json.loads(path.read_text()).get("embedded", False):
                continue
            expanded = load_schema(str(path), _write_hint=False)
            if not isinstance(expanded, dict):
                raise CodecError(f"{path}: expected a named record schema")
            names.append(self.add(expanded, current=current))
        return names

    def names(self) -> list[str]:
        """Full names of the current schemas."""
        return sorted(self._current)

    def schema(self, name: str) -> Any:
        """The current parsed schema of a name."""
        return self._writer(name).parsed

    def fingerprint_of(self, name: str) -> bytes:
        """The fingerprint new records of this name are written with."""
        return self._writer(name).fingerprint

    def encode(self, name: str, record: Mapping[str, Any]) -> bytes:
        """Encode a record with the current schema of ``name``."""
        writer = self._writer(name)
        buffer = io.BytesIO()
        buffer.write(MARKER)
        buffer.write(writer.fingerprint)
        try:
            schemaless_writer(buffer, writer.parsed, record)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise CodecError(f"cannot encode {name}: {exc}") from exc
        return buffer.getvalue()

    def decode(self, data: bytes) -> Decoded:
        """Decode a single-object message into the current schema of its name."""
        writer = self._writer_of(data)
        reader = self._current.get(writer.name, writer)
        body = io.BytesIO(data)
        body.seek(HEADER_BYTES)
        try:
            if reader is writer:
                record = schemaless_reader(body, writer.parsed, None)
            else:
                record = schemaless_reader(body, writer.parsed, reader.parsed)
        except (EOFError, ValueError, TypeError, IndexError, KeyError) as exc:
            raise CodecError(
                f"cannot decode a {writer.name} body "
                f"(fingerprint {writer.fingerprint.hex()}): {exc!r}"
            ) from exc
        if not isinstance(record, dict):
            raise CodecError(f"{writer.name} body decoded to {type(record).__name__}")
        return Decoded(writer.name, record)

    def schema_name_of(self, data: bytes) -> str:
        """The full schema name of a message, read from its header alone."""
        return self._writer_of(data).name

    def _writer(self, name: str) -> _Writer:
        try:
            return self._current[name]
        except KeyError:
            raise UnknownSchemaError(
                f"no schema named {name!r}; known: {', '.join(self.names())}"
            ) from None

    def _writer_of(self, data: bytes) -> _Writer:
        if len(data) < HEADER_BYTES or data[:2] != MARKER:
            head = bytes(data[:HEADER_BYTES]).hex() or "nothing"
            raise CodecError(
                "not Avro single-object encoding: expected marker c301 and an "
                f"8-byte fingerprint, got {head}"
            )
        key = bytes(data[2:HEADER_BYTES])
        writer = self._by_fingerprint.get(key)
        if writer is None:
            raise UnknownSchemaError(
                f"unknown writer schema fingerprint {key.hex()}: no schema in the "
                "registry has it (is the producer newer than this consumer?)"
            )
        return writer


def schema_folder() -> Path:
    """The folder of the packaged ``.avsc`` files."""
    return Path(str(resources.files("stackmeter.schemas")))


@cache
def default_registry() -> SchemaRegistry:
    """The registry of every packaged schema, current and historical.

    Earlier versions of a schema live in ``schemas/history/``; they are
    registered as writers only, so their data decodes into today's schema.
    """
    registry = SchemaRegistry()
    history = schema_folder() / "history"
    if history.is_dir():
        registry.load_folder(history, current=False)
    names = registry.load_folder(schema_folder())
    logger.debug("loaded %d schemas", len(names))
    return registry
