"""The rater: prices one usage record with the catalog, one rated record per charge.

For every product that prices the record's resource type, the rule that
applies is the one whose scope covers the record's platform and project, whose
validity holds at ``hour_start`` and whose trait conditions pass; among those
the narrowest scope wins (see ``stackmeter.streams.catalog``). A usage record
is one hour of existence, so the quantity is 1 h for ``time`` rules, the
expression's value for ``quantity`` rules and the value times 1 h for
``time_quantity`` rules, converted to the price's unit. Estimated hours are
billable and are rated like observed ones; the flag is kept on the record.

Money is Decimal throughout: arithmetic runs in ``DECIMAL_CONTEXT`` (50
digits, half-even, any float mixed in raises), the quantity is rounded once to
9 decimal places with ROUND_HALF_EVEN, and the amount is that quantity times
the unit price rounded the same way, so ``amount == round(quantity *
unit_price, 9)`` holds for every stored record.

A record no product matches, or whose matched product cannot be computed (a
null trait, division by zero), yields one unrated record with the reason, so
nothing is dropped. Rated records are upserts keyed by ``charge_id``: a later
usage revision replaces the charges it produces again. A charge that an
earlier revision produced and the later one no longer does (the server was
stopped late in the hour) is not withdrawn here; readers count only the
charges of a usage record's newest revision (the sink's ``charges_current``
view does), which leaves it out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

from stackmeter.streams.catalog import MAX_MAGNITUDE, Catalog, ProductRule
from stackmeter.streams.catalog_expr import DECIMAL_CONTEXT, EvaluationError

USAGE_SCHEMA = "stackmeter.Usage"
RATED_SCHEMA = "stackmeter.RatedUsage"

QUANTUM = Decimal("0.000000001")
ZERO = Decimal(0).quantize(QUANTUM)

_MAX_REASONS = 5


def charge_id(usage_id: str, product_id: str) -> str:
    """Hex SHA-256 (first 32 digits) of usage id and product id, newline-joined.

    The unrated record of a usage record uses the product id ``""``.
    """
    digest = hashlib.sha256(f"{usage_id}\n{product_id}".encode())
    return digest.hexdigest()[:32]


def to_scale(value: Decimal) -> Decimal:
    """``value`` rounded half-even to the 9 decimal places money is kept in."""
    with localcontext(DECIMAL_CONTEXT):
        return value.quantize(QUANTUM, rounding=ROUND_HALF_EVEN)


def rate(usage: Mapping[str, Any], catalog: Catalog) -> list[dict[str, Any]]:
    """The RatedUsage records of one Usage record (at least one)."""
    traits: Mapping[str, object] = usage.get("traits") or {}
    products = catalog.products_for(usage["resource_type"])
    records = []
    failures = []
    misses = []
    for product_id, rules in products.items():
        rule, miss = select_rule(rules, usage)
        if rule is None:
            misses.append(f"{product_id}: {miss}")
            continue
        try:
            quantity, amount = price(rule, traits)
        except EvaluationError as exc:
            failures.append(f"product {product_id} (rule {rule.rule_id}): {exc}")
            continue
        records.append(_rated(usage, rule, quantity, amount, catalog.version))
    if failures:
        records.append(_unrated(usage, catalog.version, _join(failures)))
    elif not records:
        reason = (
            f"no rule matched: {_join(misses)}"
            if misses
            else f"no product prices {usage['resource_type']}"
        )
        records.append(_unrated(usage, catalog.version, reason))
    return records


def select_rule(
    rules: tuple[ProductRule, ...], usage: Mapping[str, Any]
) -> tuple[ProductRule | None, str]:
    """The applicable rule of one product with the narrowest scope, or why none.

    Rules of one product with the same scope never overlap in time (the
    catalog refuses them), so the winner is unique; file order breaks a tie
    that cannot happen.
    """
    hour_start: datetime = usage["hour_start"]
    traits: Mapping[str, object] = usage.get("traits") or {}
    best: ProductRule | None = None
    reason = "no rule's scope covers this platform and project"
    for rule in rules:
        if not rule.scope.covers(usage["platform_id"], usage["project_id"]):
            continue
        if not rule.valid_at(hour_start):
            reason = f"no version valid at {hour_start.isoformat()}"
            continue
        mismatch = rule.mismatch(traits)
        if mismatch is not None:
            reason = mismatch
            continue
        if best is None or rule.scope.rank > best.scope.rank:
            best = rule
    return best, reason


def price(rule: ProductRule, traits: Mapping[str, object]) -> tuple[Decimal, Decimal]:
    """Quantity in the rule's unit and the amount, both at 9 decimal places."""
    # A time rule charges the hour itself: 1 h.
    raw = Decimal(1) if rule.quantity is None else rule.quantity.evaluate(traits)
    with localcontext(DECIMAL_CONTEXT):
        quantity = to_scale(raw * rule.unit_factor)
        if quantity < 0:
            raise EvaluationError(f"quantity {quantity} is negative")
        amount = to_scale(quantity * rule.unit_price)
        if amount >= MAX_MAGNITUDE or quantity >= MAX_MAGNITUDE:
            raise EvaluationError(f"amount {amount} does not fit decimal(38, 9)")
    return quantity, amount


def _rated(
    usage: Mapping[str, Any],
    rule: ProductRule,
    quantity: Decimal,
    amount: Decimal,
    catalog_version: str,
) -> dict[str, Any]:
    record = _common(usage, rule.product_id, catalog_version)
    record.update(
        rated=True,
        unrated_reason=None,
        product_id=rule.product_id,
        product_name=rule.name,
        quantity=quantity,
        unit=rule.unit.text,
        unit_price=to_scale(rule.unit_price),
        amount=amount,
        currency=rule.currency,
    )
    return record


def _unrated(
    usage: Mapping[str, Any], catalog_version: str, reason: str
) -> dict[str, Any]:
    record = _common(usage, "", catalog_version)
    record.update(
        rated=False,
        unrated_reason=reason,
        product_id=None,
        product_name=None,
        quantity=ZERO,
        unit="",
        unit_price=ZERO,
        amount=ZERO,
        currency=None,
    )
    return record


def _common(
    usage: Mapping[str, Any], product_id: str, catalog_version: str
) -> dict[str, Any]:
    return {
        "charge_id": charge_id(usage["usage_id"], product_id),
        "usage_id": usage["usage_id"],
        "usage_revision": usage["revision"],
        "platform_id": usage["platform_id"],
        "resource_type": usage["resource_type"],
        "project_id": usage["project_id"],
        "resource_id": usage["resource_id"],
        "resource_name": usage.get("resource_name", ""),
        "hour_start": usage["hour_start"],
        "estimated": usage["estimated"],
        "catalog_version": catalog_version,
    }


def _join(reasons: list[str]) -> str:
    shown = "; ".join(reasons[:_MAX_REASONS])
    if len(reasons) > _MAX_REASONS:
        shown += f"; and {len(reasons) - _MAX_REASONS} more"
    return shown
