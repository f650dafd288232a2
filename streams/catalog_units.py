"""The few UCUM units a catalog may price in, and exact conversion between them.

A unit is an optional quantity part (bytes with a decimal or binary prefix, a
count annotation such as ``{vCPU}``, or ``1``) and an optional hour part, joined
by UCUM's ``.``: ``h``, ``GiBy``, ``GiBy.h``, ``{vCPU}.h``. Byte prefixes are
powers of 2 or 10, so every conversion factor is a terminating decimal and is
computed exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

HOUR = "h"

# UCUM prefixes allowed on By: decimal (lower-case k as UCUM spells it) and
# binary (IEC).
_BYTE_PREFIXES: dict[str, int] = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
}

_ANNOTATION = re.compile(r"\{[A-Za-z][A-Za-z0-9_-]*\}")


class UnitError(ValueError):
    """A unit the catalog cannot use, or two units that do not convert."""


@dataclass(frozen=True, slots=True)
class Unit:
    """A parsed unit: what it counts, how many base units one is, and per hour.

    ``dimension`` is ``"By"`` for bytes, the annotation text (``"{vCPU}"``)
    for counts, ``"1"`` for a plain number and ``""`` for a pure time unit.
    """

    text: str
    dimension: str
    scale: int
    per_hour: bool

    @property
    def quantity_text(self) -> str:
        """The unit without its hour part (``GiBy`` for ``GiBy.h``)."""
        if not self.per_hour:
            return self.text
        return self.text.removesuffix(HOUR).removesuffix(".")

    def factor_from(self, source: Unit) -> Decimal:
        """How many of this unit's quantity part one ``source`` quantity is.

        Only the quantity parts are compared; the hour part is the rater's
        business. Raises UnitError when the two count different things.
        """
        if source.dimension != self.dimension:
            raise UnitError(
                f"cannot convert {source.text!r} to {self.quantity_text!r}: "
                f"{_describe(source.dimension)} is not {_describe(self.dimension)}"
            )
        return Decimal(source.scale) / Decimal(self.scale)


def parse_unit(text: str) -> Unit:
    """Parse a unit in the catalog's UCUM subset; raises UnitError naming it."""
    if not isinstance(text, str) or not text:
        raise UnitError(f"unit must be a non-empty text, got {text!r}")
    parts = text.split(".")
    if len(parts) > 2:
        raise UnitError(f"unit {text!r}: at most a quantity and 'h', joined by '.'")
    per_hour = parts[-1] == HOUR
    quantity = parts[0] if len(parts) == 2 or not per_hour else ""
    if len(parts) == 2 and not per_hour:
        raise UnitError(
            f"unit {text!r}: the second part must be 'h' (price per hour), "
            f"got {parts[1]!r}"
        )
    if quantity == HOUR:
        raise UnitError(f"unit {text!r}: 'h' may appear once")
    if not quantity:
        return Unit(text, "", 1, per_hour)
    dimension, scale = _parse_quantity(text, quantity)
    return Unit(text, dimension, scale, per_hour)


def _parse_quantity(text: str, quantity: str) -> tuple[str, int]:
    if quantity == "1":
        return "1", 1
    if _ANNOTATION.fullmatch(quantity):
        return quantity, 1
    if quantity.endswith("By"):
        prefix = quantity.removesuffix("By")
        if prefix in _BYTE_PREFIXES:
            return "By", _BYTE_PREFIXES[prefix]
        known = ", ".join(p + "By" for p in _BYTE_PREFIXES)
        raise UnitError(
            f"unit {text!r}: unknown byte prefix {prefix!r}; known: {known}"
        )
    raise UnitError(
        f"unit {text!r}: {quantity!r} is not a known unit; use By with a prefix "
        "(KiBy, MiBy, GiBy, GBy ...), a count such as {vCPU}, or 1"
    )


def _describe(dimension: str) -> str:
    if dimension == "By":
        return "a byte size"
    if dimension == "":
        return "time alone"
    if dimension == "1":
        return "a plain number"
    return f"a count of {dimension}"
