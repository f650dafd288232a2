"""Trait conditions of catalog rules: equals, in, not_in, integer range and regex.

Conditions are built against a resource type's traits, so a condition on a
trait the type does not have, or of the wrong kind (a range on a text trait),
is a problem at load time rather than a silent non-match at rating time. A
trait without a value (an optional trait that is null) matches no condition.
Text comparisons are case-sensitive: Nova says ``ACTIVE``, Cinder ``in-use``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stackmeter.resources import ResourceType

Scalar = int | str

_BOUNDS = ("gt", "gte", "lt", "lte")


@dataclass(frozen=True, slots=True)
class TraitCondition:
    """Every condition on one trait; all that are set must hold."""

    trait: str
    equals: Scalar | None = None
    one_of: tuple[Scalar, ...] | None = None
    none_of: tuple[Scalar, ...] | None = None
    gt: int | None = None
    gte: int | None = None
    lt: int | None = None
    lte: int | None = None
    pattern: re.Pattern[str] | None = None

    def mismatch(self, traits: Mapping[str, object]) -> str | None:
        """Why the traits fail this condition, or None when they pass."""
        value = traits.get(self.trait)
        if value is None:
            return f"{self.trait} has no value"
        shown = f"{self.trait}={value!r}"
        if self.equals is not None and value != self.equals:
            return f"{shown} is not {self.equals!r}"
        if self.one_of is not None and value not in self.one_of:
            return f"{shown} is not in {list(self.one_of)!r}"
        if self.none_of is not None and value in self.none_of:
            return f"{shown} is excluded by not_in"
        if self.pattern is not None and not (
            isinstance(value, str) and self.pattern.fullmatch(value)
        ):
            return f"{shown} does not match /{self.pattern.pattern}/"
        if isinstance(value, int) and not self._in_range(value):
            return f"{shown} is outside {self._describe_range()}"
        return None

    def _in_range(self, value: int) -> bool:
        return (
            (self.gt is None or value > self.gt)
            and (self.gte is None or value >= self.gte)
            and (self.lt is None or value < self.lt)
            and (self.lte is None or value <= self.lte)
        )

    def _describe_range(self) -> str:
        parts = [
            f"{symbol} {bound}"
            for symbol, bound in (
                (">", self.gt),
                (">=", self.gte),
                ("<", self.lt),
                ("<=", self.lte),
            )
            if bound is not None
        ]
        return " and ".join(parts)


def build_conditions(
    raw: object, resource: ResourceType, problems: list[str]
) -> tuple[TraitCondition, ...]:
    """Conditions from a rule's ``match`` mapping; problems go to ``problems``.

    Shapes the JSON Schema already rejects are skipped without a second
    message.
    """
    if not isinstance(raw, dict):
        return ()
    conditions = []
    for name, spec in raw.items():
        where = f"match.{name}"
        trait = resource.trait(str(name))
        if trait is None:
            known = ", ".join(resource.trait_names) or "none"
            problems.append(
                f"{where}: unknown trait {name!r} for {resource.type_id}; "
                f"its traits: {known}"
            )
            continue
        conditions_raw = spec if isinstance(spec, dict) else {"equals": spec}
        condition = _build_one(trait.name, trait.kind, conditions_raw, where, problems)
        if condition is not None:
            conditions.append(condition)
    return tuple(conditions)


def _build_one(
    name: str, kind: str, spec: dict[str, Any], where: str, problems: list[str]
) -> TraitCondition | None:
    before = len(problems)
    equals = spec.get("equals")
    if equals is not None:
        _check_kind(equals, kind, name, f"{where}.equals", problems)
    one_of = spec.get("in")
    none_of = spec.get("not_in")
    for key, values in (("in", one_of), ("not_in", none_of)):
        if isinstance(values, list):
            for index, item in enumerate(values):
                _check_kind(item, kind, name, f"{where}.{key}[{index}]", problems)
    bounds = spec.get("range")
    if bounds is not None and kind != "int":
        problems.append(f"{where}.range: {name} is a text trait; range needs integers")
    if isinstance(bounds, dict):
        _check_bounds(bounds, where, problems)
    else:
        bounds = {}
    pattern = None
    regex = spec.get("regex")
    if regex is not None and kind != "text":
        problems.append(f"{where}.regex: {name} is an integer trait; regex needs text")
    elif isinstance(regex, str):
        try:
            pattern = re.compile(regex)
        except re.error as exc:
            problems.append(f"{where}.regex: not a valid regular expression: {exc}")
    if len(problems) > before:
        return None
    return TraitCondition(
        trait=name,
        equals=equals,
        one_of=tuple(one_of) if isinstance(one_of, list) else None,
        none_of=tuple(none_of) if isinstance(none_of, list) else None,
        pattern=pattern,
        **{bound: bounds.get(bound) for bound in _BOUNDS},
    )


def _check_kind(
    value: object, kind: str, name: str, where: str, problems: list[str]
) -> None:
    if isinstance(value, bool):
        return
    if kind == "int" and not isinstance(value, int):
        problems.append(f"{where}: {name} is an integer trait, got text {value!r}")
    elif kind == "text" and not isinstance(value, str):
        problems.append(
            f"{where}: {name} is a text trait, got the number {value!r}; "
            "quote it to compare as text"
        )


def _check_bounds(bounds: dict[str, Any], where: str, problems: list[str]) -> None:
    values = {k: v for k, v in bounds.items() if isinstance(v, int)}
    lows = [v for k, v in values.items() if k in ("gt", "gte")]
    highs = [v for k, v in values.items() if k in ("lt", "lte")]
    if "gt" in values and "gte" in values:
        problems.append(f"{where}.range: give gt or gte, not both")
    if "lt" in values and "lte" in values:
        problems.append(f"{where}.range: give lt or lte, not both")
    if not lows or not highs:
        return
    low, high = max(lows), min(highs)
    open_end = "gt" in values or "lt" in values
    if low > high or (low == high and open_end):
        problems.append(f"{where}.range: no integer satisfies {bounds}")
