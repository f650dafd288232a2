"""The product catalog: loading a YAML file, checking it whole, and its rules.

A catalog is a versioned list of rules. Each rule prices one product for one
resource type, in a scope (every platform, one platform, one project), for a
validity period ``[valid_from, valid_to)`` compared with the usage hour's
start. Rules that share a product id are that product's versions and scoped
prices; for a usage record the matching rule with the narrowest scope wins:

    project and platform  >  project  >  platform  >  every platform

so a price negotiated for one project overrides the list price. Two rules of
one product with the same scope must not be valid at the same instant.

Loading reports every problem at once (file, rule id, reason), never only the
first. YAML is read without float, bool or timestamp resolution, so a price
written ``0.1`` reaches Decimal as the text ``"0.1"`` and never as a float.
The format is described in ``catalog/README.md`` and by the JSON Schema of
``stackmeter.streams.catalog_schema``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

import jsonschema  # type: ignore[import-untyped]
import yaml

from stackmeter.errors import ConfigError
from stackmeter.resources import RESOURCE_TYPE_IDS, resource_type
from stackmeter.streams.catalog_expr import (
    Expression,
    ExpressionSyntaxError,
    parse_expression,
)
from stackmeter.streams.catalog_match import TraitCondition, build_conditions
from stackmeter.streams.catalog_schema import CATALOG_SCHEMA
from stackmeter.streams.catalog_units import Unit, UnitError, parse_unit

logger = logging.getLogger(__name__)

UsageType = Literal["time", "quantity", "time_quantity"]

AMOUNT_SCALE = 9
# Money columns are decimal(38, 9): 29 digits before the point.
MAX_MAGNITUDE = Decimal(10) ** (38 - AMOUNT_SCALE)

# The unit each integer trait is given in (DESIGN.md section 2). A rule whose
# quantity is one of these traits converts from this unit to its price unit.
TRAIT_UNITS: dict[str, dict[str, str]] = {
    "nova.server": {
        "disk": "GiBy",
        "diskEphemeral": "GiBy",
        "diskRoot": "GiBy",
        "ramMb": "MiBy",
        "vcpu": "{vCPU}",
    },
    "cinder.volume": {"size": "GiBy"},
    "cinder.volume_snapshot": {"volumeSize": "GiBy"},
    "glance.image": {"size": "GiBy"},
    "neutron.load_balancer": {"listeners": "{listener}", "pools": "{pool}"},
}


@dataclass(frozen=True, slots=True)
class CatalogProblem:
    """One reason a catalog cannot be used, with the file and rule it is in."""

    source: str
    rule_id: str | None
    reason: str

    def __str__(self) -> str:
        if self.rule_id is None:
            return f"{self.source}: {self.reason}"
        return f"{self.source}: rule {self.rule_id}: {self.reason}"


class CatalogError(ConfigError):
    """A catalog file that cannot be used; lists every problem, one per line."""

    def __init__(self, problems: list[CatalogProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in problems))


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a rule applies; no platform and no project means everywhere."""

    platform_id: str | None = None
    project_id: str | None = None

    @property
    def rank(self) -> int:
        """Specificity: 0 everywhere, 1 platform, 2 project, 3 both."""
        return (1 if self.platform_id else 0) + (2 if self.project_id else 0)

    def covers(self, platform_id: str, project_id: str) -> bool:
        return (self.platform_id is None or self.platform_id == platform_id) and (
            self.project_id is None or self.project_id == project_id
        )

    def __str__(self) -> str:
        parts = []
        if self.platform_id:
            parts.append(f"platform {self.platform_id}")
        if self.project_id:
            parts.append(f"project {self.project_id}")
        return " and ".join(parts) or "every platform"


@dataclass(frozen=True, slots=True)
class ProductRule:
    """One price of one product; see the module docstring for precedence."""

    rule_id: str
    product_id: str
    name: str
    resource_type: str
    scope: Scope
    conditions: tuple[TraitCondition, ...]
    usage_type: UsageType
    quantity: Expression | None
    quantity_unit: Unit | None
    unit: Unit
    unit_factor: Decimal
    unit_price: Decimal
    currency: str
    valid_from: datetime | None
    valid_to: datetime | None

    def valid_at(self, instant: datetime) -> bool:
        """Whether ``instant`` is in ``[valid_from, valid_to)``."""
        return (self.valid_from is None or self.valid_from <= instant) and (
            self.valid_to is None or instant < self.valid_to
        )

    def mismatch(self, traits: Mapping[str, object]) -> str | None:
        """The first condition the traits fail, or None when all pass."""
        for condition in self.conditions:
            reason = condition.mismatch(traits)
            if reason is not None:
                return reason
        return None

    def overlaps(self, other: ProductRule) -> bool:
        """Whether both rules are valid at some common instant."""
        starts_before_other_ends = (
            self.valid_from is None
            or other.valid_to is None
            or self.valid_from < other.valid_to
        )
        ends_after_other_starts = (
            self.valid_to is None
            or other.valid_from is None
            or other.valid_from < self.valid_to
        )
        return starts_before_other_ends and ends_after_other_starts

    def describe_validity(self) -> str:
        start = self.valid_from.isoformat() if self.valid_from else "always"
        end = self.valid_to.isoformat() if self.valid_to else "open end"
        return f"[{start}, {end})"


@dataclass(frozen=True)
class Catalog:
    """A loaded, checked catalog; rules grouped by resource type and product."""

    version: str
    source: str
    digest: str
    rules: tuple[ProductRule, ...]
    _products: dict[str, dict[str, tuple[ProductRule, ...]]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        products: dict[str, dict[str, list[ProductRule]]] = {}
        for rule in self.rules:
            by_product = products.setdefault(rule.resource_type, {})
            by_product.setdefault(rule.product_id, []).append(rule)
        frozen = {
            type_id: {pid: tuple(rules) for pid, rules in by_product.items()}
            for type_id, by_product in products.items()
        }
        object.__setattr__(self, "_products", frozen)

    def products_for(self, type_id: str) -> Mapping[str, tuple[ProductRule, ...]]:
        """Rules of each product that prices ``type_id``, in file order."""
        return self._products.get(type_id, {})


def load_catalog(path: str | Path) -> Catalog:
    """Read and check a catalog file; raises CatalogError listing every problem."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        problem = CatalogProblem(source, None, f"cannot read: {exc.strerror}")
        raise CatalogError([problem]) from exc
    return parse_catalog(data, source)


def check_catalog(path: str | Path) -> list[CatalogProblem]:
    """Every problem of a catalog file; empty when it loads."""
    try:
        load_catalog(path)
    except CatalogError as exc:
        return list(exc.problems)
    return []


def parse_catalog(data: bytes | str, source: str = "<catalog>") -> Catalog:
    """Check catalog text and build it; raises CatalogError listing every problem."""
    raw_bytes = data.encode() if isinstance(data, str) else data
    digest = hashlib.sha256(raw_bytes).hexdigest()
    try:
        raw = yaml.load(raw_bytes, Loader=_CatalogLoader)
    except yaml.YAMLError as exc:
        problem = CatalogProblem(source, None, f"not valid YAML: {exc}")
        raise CatalogError([problem]) from exc
    builder = _Builder(source)
    catalog = builder.build(raw, digest)
    if catalog is None or builder.problems:
        raise CatalogError(builder.problems)
    return catalog


class _CatalogLoader(yaml.SafeLoader):
    """A SafeLoader that keeps anything but plain integers as text.

    Floats, booleans and timestamps are not resolved, so ``0.1``, ``ON`` and
    ``2025-01-01`` reach the builder as the text written; integers only in
    plain decimal form (no ``0x10``, ``1_000`` or ``1:30``). A key given twice
    in one mapping is an error instead of the last one silently winning.
    """

    def construct_mapping(
        self, node: yaml.MappingNode, deep: bool = False
    ) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int) and key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found the key {key!r} twice",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


_TEXT_TAGS = {
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:int",
}
_CatalogLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _TEXT_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_CatalogLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^-?(?:0|[1-9][0-9]*)$"), list("-0123456789")
)

_PLAIN_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_PLAIN_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class _Builder:
    """Turns the loaded YAML into a Catalog, collecting every problem."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[CatalogProblem] = []
        self._broken_rules: set[int] = set()

    def _add(self, rule_id: str | None, reason: str) -> None:
        self.problems.append(CatalogProblem(self.source, rule_id, reason))

    def build(self, raw: object, digest: str) -> Catalog | None:
        if not isinstance(raw, dict):
            self._add(None, "expected a mapping with format_version, version and rules")
            return None
        self._check_schema(raw)
        version = raw.get("version")
        rules_raw = raw.get("rules")
        rules_raw = rules_raw if isinstance(rules_raw, list) else []
        currency = raw.get("currency")
        default_currency = currency if isinstance(currency, str) else None
        names = _product_names(rules_raw)
        first_index: dict[str, int] = {}
        rules = []
        for index, item in enumerate(rules_raw):
            rule_id = _rule_label(item, index)
            if rule_id in first_index:
                self._add(
                    rule_id, f"duplicate rule id; rules[{first_index[rule_id]}] has it"
                )
            first_index.setdefault(rule_id, index)
            rule = self._rule(index, rule_id, item, default_currency, names)
            if rule is not None:
                rules.append(rule)
        self._check_products(rules)
        if isinstance(version, bool) or not isinstance(version, str | int):
            return None
        return Catalog(str(version), self.source, digest, tuple(rules))

    def _check_schema(self, raw: dict[str, Any]) -> None:
        validator = jsonschema.Draft202012Validator(CATALOG_SCHEMA)
        rules = raw.get("rules")
        found = sorted(validator.iter_errors(raw), key=lambda e: e.json_path)
        for outer in found:
            # anyOf/oneOf say only "not valid under any"; the closest branch's
            # own error says what is wrong.
            error = outer
            if outer.context:
                error = jsonschema.exceptions.best_match(outer.context)
            path = list(error.absolute_path)
            rule_id = None
            if len(path) >= 2 and path[0] == "rules" and isinstance(rules, list):
                index = int(path[1])
                rule_id = _rule_label(rules[index], index)
                self._broken_rules.add(index)
                path = path[2:]
            where = ".".join(str(part) for part in path)
            self._add(rule_id, f"{where}: {error.message}" if where else error.message)

    def _rule(
        self,
        index: int,
        rule_id: str,
        raw: object,
        default_currency: str | None,
        names: dict[str, str],
    ) -> ProductRule | None:
        if not isinstance(raw, dict) or raw.get("resource_type") not in (
            RESOURCE_TYPE_IDS
        ):
            return None
        problems: list[str] = []
        resource = resource_type(raw["resource_type"])
        conditions = build_conditions(raw.get("match"), resource, problems)
        unit = _unit(raw.get("unit"), "unit", problems)
        quantity = _Quantity.of(raw, resource.type_id, unit, problems)
        unit_price = _price(raw.get("unit_price"), problems)
        currency = raw.get("currency") or default_currency
        if not currency:
            problems.append(
                "no currency: set currency on the rule or at the top of the catalog"
            )
        valid_from = _instant(raw.get("valid_from"), "valid_from", problems)
        valid_to = _instant(raw.get("valid_to"), "valid_to", problems)
        if valid_from and valid_to and valid_to <= valid_from:
            problems.append(
                f"valid_to {valid_to.isoformat()} is not after valid_from "
                f"{valid_from.isoformat()}"
            )
        for reason in problems:
            self._add(rule_id, reason)
        if problems or index in self._broken_rules or unit is None:
            return None
        if unit_price is None or quantity is None:
            return None
        scope = raw.get("scope") or {}
        product_id = str(raw.get("product") or rule_id)
        return ProductRule(
            rule_id=rule_id,
            product_id=product_id,
            name=str(raw.get("name") or names.get(product_id) or product_id),
            resource_type=resource.type_id,
            scope=Scope(scope.get("platform"), scope.get("project")),
            conditions=conditions,
            usage_type=raw["usage_type"],
            quantity=quantity.expression,
            quantity_unit=quantity.unit,
            unit=unit,
            unit_factor=quantity.factor,
            unit_price=unit_price,
            currency=str(currency),
            valid_from=valid_from,
            valid_to=valid_to,
        )

    def _check_products(self, rules: list[ProductRule]) -> None:
        by_product: dict[str, list[ProductRule]] = {}
        for rule in rules:
            by_product.setdefault(rule.product_id, []).append(rule)
        for product_id, versions in by_product.items():
            first = versions[0]
            for later_index, rule in enumerate(versions):
                for key in ("resource_type", "usage_type"):
                    if getattr(rule, key) != getattr(first, key):
                        self._add(
                            rule.rule_id,
                            f"{key} {getattr(rule, key)} differs from "
                            f"{getattr(first, key)} of rule {first.rule_id}; all "
                            f"rules of product {product_id} must agree",
                        )
                if rule.unit.text != first.unit.text:
                    self._add(
                        rule.rule_id,
                        f"unit {rule.unit.text} differs from {first.unit.text} of "
                        f"rule {first.rule_id}; all rules of product {product_id} "
                        "must agree",
                    )
                for earlier in versions[:later_index]:
                    if earlier.scope == rule.scope and earlier.overlaps(rule):
                        self._add(
                            rule.rule_id,
                            f"valid {rule.describe_validity()} overlaps rule "
                            f"{earlier.rule_id} {earlier.describe_validity()} of "
                            f"product {product_id} in scope {rule.scope}: two "
                            "versions of one product would apply at once",
                        )


@dataclass(frozen=True, slots=True)
class _Quantity:
    """A rule's quantity expression, its unit and the factor to the price unit."""

    expression: Expression | None
    unit: Unit | None
    factor: Decimal

    @classmethod
    def of(
        cls,
        raw: dict[str, Any],
        type_id: str,
        price_unit: Unit | None,
        problems: list[str],
    ) -> _Quantity | None:
        usage_type = raw.get("usage_type")
        text = raw.get("quantity")
        if usage_type == "time":
            _check_time_rule(raw, price_unit, problems)
            return cls(None, None, Decimal(1))
        if usage_type not in ("quantity", "time_quantity"):
            return None
        if price_unit is not None:
            _check_unit_fits(str(usage_type), price_unit, problems)
        if text is None:
            problems.append(f"quantity: usage_type {usage_type} needs an expression")
            return None
        try:
            expression = parse_expression(text)
        except ExpressionSyntaxError as exc:
            problems.append(f"quantity: bad expression: {exc}")
            return None
        if not _check_expression_traits(expression, type_id, problems):
            return None
        unit = _quantity_unit(raw, type_id, expression, price_unit, problems)
        if unit is None or price_unit is None:
            return None
        try:
            factor = price_unit.factor_from(unit)
        except UnitError as exc:
            problems.append(f"quantity_unit: {exc}")
            return None
        return cls(expression, unit, factor)


def _check_time_rule(
    raw: dict[str, Any], price_unit: Unit | None, problems: list[str]
) -> None:
    if price_unit is not None and price_unit.text != "h":
        problems.append(
            f"unit: usage_type time is priced per hour of existence; unit must be "
            f"'h', got {price_unit.text!r}"
        )
    for key in ("quantity", "quantity_unit"):
        if raw.get(key) is not None:
            problems.append(
                f"{key}: usage_type time charges 1 h per usage hour and takes no {key}"
            )


def _check_unit_fits(usage_type: str, unit: Unit, problems: list[str]) -> None:
    if usage_type == "quantity" and (unit.per_hour or not unit.dimension):
        problems.append(
            f"unit: usage_type quantity prices an amount counted once an hour, "
            f"e.g. 'GiBy'; got {unit.text!r} (per hour is usage_type time_quantity)"
        )
    if usage_type == "time_quantity" and (not unit.per_hour or not unit.dimension):
        problems.append(
            f"unit: usage_type time_quantity prices an amount times hours, e.g. "
            f"'GiBy.h' or '{{vCPU}}.h'; got {unit.text!r}"
        )


def _check_expression_traits(
    expression: Expression, type_id: str, problems: list[str]
) -> bool:
    resource = resource_type(type_id)
    fine = True
    for name in sorted(expression.names()):
        trait = resource.trait(name)
        if trait is None:
            known = ", ".join(resource.trait_names) or "none"
            problems.append(
                f"quantity: unknown trait {name!r} for {type_id}; its traits: {known}"
            )
            fine = False
        elif trait.kind != "int":
            problems.append(
                f"quantity: trait {name} is text; a quantity needs integer traits"
            )
            fine = False
    return fine


def _quantity_unit(
    raw: dict[str, Any],
    type_id: str,
    expression: Expression,
    price_unit: Unit | None,
    problems: list[str],
) -> Unit | None:
    bare = expression.bare_trait
    trait_unit = TRAIT_UNITS.get(type_id, {}).get(bare) if bare else None
    given = raw.get("quantity_unit")
    if given is None:
        if trait_unit is not None:
            return parse_unit(trait_unit)
        # The expression's value is taken to be in the price's own unit.
        return parse_unit(price_unit.quantity_text) if price_unit else None
    unit = _unit(given, "quantity_unit", problems)
    if unit is None:
        return None
    if unit.per_hour or not unit.dimension:
        problems.append(
            f"quantity_unit: {unit.text!r} must be an amount without 'h', e.g. 'MiBy'"
        )
        return None
    if trait_unit is not None and unit.text != trait_unit:
        problems.append(
            f"quantity_unit: {unit.text!r} disagrees with trait {bare}, which is "
            f"given in {trait_unit}; leave quantity_unit out and the rater converts"
        )
        return None
    return unit


def _unit(value: object, where: str, problems: list[str]) -> Unit | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_unit(value)
    except UnitError as exc:
        problems.append(f"{where}: {exc}")
        return None


def _price(value: object, problems: list[str]) -> Decimal | None:
    # Shapes the schema rejects (negative, not a plain decimal) are left to it.
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    if not _PLAIN_DECIMAL.fullmatch(text):
        return None
    try:
        price = Decimal(text)
    except InvalidOperation:
        return None
    exponent = price.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -AMOUNT_SCALE:
        problems.append(
            f"unit_price: {text} has more than {AMOUNT_SCALE} decimal places; "
            f"rated amounts keep {AMOUNT_SCALE}"
        )
        return None
    if price >= MAX_MAGNITUDE:
        problems.append(f"unit_price: {text} does not fit decimal(38, 9)")
        return None
    return price


def _instant(value: object, where: str, problems: list[str]) -> datetime | None:
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        if _PLAIN_DATE.fullmatch(text):
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        instant = datetime.fromisoformat(text)
    except ValueError as exc:
        problems.append(f"{where}: {text!r} is not a date or date-time: {exc}")
        return None
    if instant.tzinfo is None:
        problems.append(
            f"{where}: {text!r} needs a UTC offset, e.g. 2025-01-01T00:00:00Z"
        )
        return None
    return instant.astimezone(UTC)


def _rule_label(raw: object, index: int) -> str:
    if isinstance(raw, dict) and isinstance(raw.get("id"), str) and raw["id"]:
        return str(raw["id"])
    return f"rules[{index}]"


def _product_names(rules: list[Any]) -> dict[str, str]:
    """The first display name given for each product, for rules that give none."""
    names: dict[str, str] = {}
    for index, raw in enumerate(rules):
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            product_id = str(raw.get("product") or _rule_label(raw, index))
            names.setdefault(product_id, raw["name"])
    return names
