"""The JSON Schema of a catalog file, published as ``catalog/catalog.schema.json``.

It checks the shape of a catalog (keys, types, patterns) so editors can flag
mistakes while typing; what needs the resource types or cross-rule knowledge
(trait names, expressions, units, overlapping validity) is checked by
``stackmeter.streams.catalog``. Run ``stackmeter catalog schema`` to print it.
"""

from __future__ import annotations

import json
from typing import Any

from stackmeter.resources import RESOURCE_TYPE_IDS

FORMAT_VERSION = 1
SCHEMA_ID = "https://stackmeter.invalid/catalog/v1/catalog.schema.json"

# Prices and bounds are decimal texts; a YAML number is accepted too because
# the catalog loader reads the number's literal text, never a float.
_DECIMAL_TEXT = r"^[0-9]+(\.[0-9]+)?$"
_DATE_OR_TIME = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?$"
)
_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"

_SCALAR: dict[str, Any] = {"type": ["string", "integer"]}

_CONDITIONS: dict[str, Any] = {
    "type": "object",
    "description": "Every condition given must hold; a trait without a value "
    "matches none.",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "equals": {**_SCALAR, "description": "The trait has exactly this value."},
        "in": {
            "type": "array",
            "items": _SCALAR,
            "minItems": 1,
            "description": "The trait has one of these values.",
        },
        "not_in": {
            "type": "array",
            "items": _SCALAR,
            "minItems": 1,
            "description": "The trait has a value, and none of these.",
        },
        "range": {
            "type": "object",
            "description": "Bounds on an integer trait; gte/gt below, lt/lte above.",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {
                name: {"type": "integer"} for name in ("gt", "gte", "lt", "lte")
            },
        },
        "regex": {
            "type": "string",
            "description": "Python regular expression the whole text trait matches.",
        },
    },
}

_RULE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "resource_type", "usage_type", "unit", "unit_price"],
    "properties": {
        "id": {
            "type": "string",
            "pattern": _ID,
            "description": "Rule id, unique in the file.",
        },
        "product": {
            "type": "string",
            "pattern": _ID,
            "description": "Product this rule prices (default: the rule id). Rules "
            "of one product are its versions and scoped prices.",
        },
        "name": {"type": "string", "description": "Display name of the product."},
        "description": {"type": "string"},
        "resource_type": {"enum": list(RESOURCE_TYPE_IDS)},
        "scope": {
            "type": "object",
            "description": "Absent: every platform. A project scope overrides a "
            "platform scope, which overrides the list price.",
            "additionalProperties": False,
            "properties": {
                "platform": {"type": "string", "minLength": 1},
                "project": {"type": "string", "minLength": 1},
            },
        },
        "match": {
            "type": "object",
            "description": "Trait name to condition; a bare value means equals.",
            "additionalProperties": {
                "if": {"type": "object"},
                "then": _CONDITIONS,
                "else": _SCALAR,
            },
        },
        "usage_type": {
            "enum": ["time", "quantity", "time_quantity"],
            "description": "time: 1 h per usage hour; quantity: the expression's "
            "value once an hour; time_quantity: the value times 1 h.",
        },
        "quantity": {
            "type": ["string", "integer"],
            "description": "Expression over integer traits, e.g. 'ramMb / 1024'.",
        },
        "quantity_unit": {
            "type": "string",
            "description": "UCUM unit of the expression's value (default: the "
            "trait's own unit when the expression is one trait).",
        },
        "unit": {
            "type": "string",
            "description": "UCUM unit the price is per: h, GiBy, GiBy.h, {vCPU}.h.",
        },
        "unit_price": {
            "type": ["string", "number"],
            "pattern": _DECIMAL_TEXT,
            "minimum": 0,
            "description": "Price of one unit, at most 9 decimal places; write "
            "it as text or a plain number (read as its literal text).",
        },
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "valid_from": {
            "type": "string",
            "pattern": _DATE_OR_TIME,
            "description": "Start of validity, inclusive, compared with the usage "
            "hour's start; a date means 00:00 UTC, a date-time needs its UTC "
            "offset. Absent: always.",
        },
        "valid_to": {
            "type": ["string", "null"],
            "pattern": _DATE_OR_TIME,
            "description": "End of validity, exclusive; absent or null: open.",
        },
    },
}

CATALOG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "stackmeter product catalog",
    "description": "Product rules that price hourly OpenStack usage.",
    "type": "object",
    "additionalProperties": False,
    "required": ["format_version", "version", "rules"],
    "properties": {
        "format_version": {
            "const": FORMAT_VERSION,
            "description": "Version of this file format.",
        },
        "version": {
            "type": ["string", "integer"],
            "minLength": 1,
            "description": "Catalog version, written on every rated record.",
        },
        "description": {"type": "string"},
        "currency": {
            "type": "string",
            "pattern": "^[A-Z]{3}$",
            "description": "ISO 4217 currency of rules that name none.",
        },
        "rules": {"type": "array", "items": _RULE},
    },
}


def schema_text() -> str:
    """The schema as the published file holds it."""
    return json.dumps(CATALOG_SCHEMA, indent=2) + "\n"
