"""Property tests of the rater: exact money, no floats, and amounts that add up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Context, Decimal, localcontext
from fractions import Fraction
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stackmeter.codec import default_registry
from stackmeter.streams.catalog import Catalog, parse_catalog
from stackmeter.streams.rating import RATED_SCHEMA, rate

HOUR = datetime(2026, 5, 1, 7, tzinfo=UTC)
NANO = 10**9

# Server traits in their units, and the prefixes a price may use for them.
BYTE_SCALES = {
    "By": 1,
    "kBy": 10**3,
    "MBy": 10**6,
    "GBy": 10**9,
    "KiBy": 2**10,
    "MiBy": 2**20,
    "GiBy": 2**30,
    "TiBy": 2**40,
}
TRAITS = {"ramMb": "MiBy", "disk": "GiBy", "diskRoot": "GiBy", "vcpu": "{vCPU}"}


@dataclass(frozen=True)
class Product:
    product_id: str
    usage_type: str
    trait: str
    unit: str  # quantity part of the price unit
    price: Decimal

    def yaml(self) -> str:
        lines = [
            f"  - id: {self.product_id}",
            "    resource_type: nova.server",
            f"    usage_type: {self.usage_type}",
        ]
        if self.usage_type == "time":
            lines.append("    unit: h")
        else:
            suffix = ".h" if self.usage_type == "time_quantity" else ""
            lines += [f"    quantity: {self.trait}", f'    unit: "{self.unit}{suffix}"']
        # Written as a bare YAML number on purpose: the loader must keep its text.
        lines.append(f"    unit_price: {self.price:f}")
        return "\n".join(lines) + "\n"

    def expected(self, traits: dict[str, int]) -> tuple[Fraction, Fraction]:
        """Quantity and amount, each rounded half-even to 9 places, by Fraction."""
        if self.usage_type == "time":
            quantity = Fraction(1)
        else:
            source = TRAITS[self.trait]
            factor = (
                Fraction(BYTE_SCALES[source], BYTE_SCALES[self.unit])
                if source in BYTE_SCALES
                else Fraction(1)
            )
            quantity = traits[self.trait] * factor
        # round() on a Fraction rounds half to even.
        quantity = Fraction(round(quantity * NANO), NANO)
        amount = Fraction(round(quantity * Fraction(self.price) * NANO), NANO)
        return quantity, amount


prices = st.decimals(
    min_value=0, max_value=10**6, places=9, allow_nan=False, allow_infinity=False
).map(lambda d: d.normalize() if d != 0 else Decimal(0))


@st.composite
def products(draw: st.DrawFn, index: int) -> Product:
    usage_type = draw(st.sampled_from(["time", "quantity", "time_quantity"]))
    trait = draw(st.sampled_from(sorted(TRAITS)))
    source = TRAITS[trait]
    unit = draw(st.sampled_from(sorted(BYTE_SCALES))) if source != "{vCPU}" else source
    price = draw(prices)
    return Product(f"p{index}", usage_type, trait, unit, price)


@st.composite
def catalogs(draw: st.DrawFn) -> tuple[Catalog, list[Product]]:
    count = draw(st.integers(min_value=1, max_value=4))
    chosen = [draw(products(index)) for index in range(count)]
    text = 'format_version: 1\nversion: "prop"\ncurrency: EUR\nrules:\n'
    text += "".join(product.yaml() for product in chosen)
    return parse_catalog(text), chosen


server_traits = st.fixed_dictionaries(
    {name: st.integers(min_value=0, max_value=10**9) for name in TRAITS}
)


def usage(traits: dict[str, Any], estimated: bool = False) -> dict[str, Any]:
    return {
        "usage_id": "u-1",
        "revision": 1,
        "platform_id": "openstack.eu-west",
        "resource_type": "nova.server",
        "project_id": "p-1",
        "resource_id": "r-1",
        "resource_name": "",
        "hour_start": HOUR,
        "samples_observed": 1,
        "samples_expected": 1,
        "estimated": estimated,
        "traits": {"state": "ACTIVE", **traits},
        "last_sampled_at": HOUR,
    }


def no_floats(value: object) -> bool:
    if isinstance(value, float):
        return False
    if isinstance(value, dict):
        return all(no_floats(item) for item in value.values())
    return True


@settings(max_examples=150, deadline=None)
@given(catalogs(), server_traits, st.booleans())
def test_every_charge_is_quantity_times_price_and_the_sum_adds_up(
    generated: tuple[Catalog, list[Product]],
    traits: dict[str, int],
    estimated: bool,
) -> None:
    catalog, chosen = generated

    rated = rate(usage(traits, estimated), catalog)

    assert len(rated) == len(chosen)
    by_product = {record["product_id"]: record for record in rated}
    total = Fraction(0)
    for product in chosen:
        record = by_product[product.product_id]
        quantity, amount = product.expected(traits)
        assert Fraction(record["quantity"]) == quantity
        assert Fraction(record["amount"]) == amount
        assert Fraction(record["unit_price"]) == Fraction(product.price)
        with localcontext(Context(prec=60)):
            product_of_columns = record["quantity"] * record["unit_price"]
            assert record["amount"] == product_of_columns.quantize(Decimal("1e-9"))
        assert record["estimated"] is estimated
        total += amount
    assert Fraction(sum(record["amount"] for record in rated)) == total


@settings(max_examples=150, deadline=None)
@given(catalogs(), server_traits)
def test_rating_never_produces_a_float(
    generated: tuple[Catalog, list[Product]], traits: dict[str, int]
) -> None:
    catalog, _chosen = generated
    registry = default_registry()

    for record in rate(usage(traits), catalog):
        assert no_floats(record)
        for money in ("quantity", "unit_price", "amount"):
            assert type(record[money]) is Decimal
        assert registry.decode(registry.encode(RATED_SCHEMA, record)).record == record


@settings(max_examples=50, deadline=None)
@given(
    catalogs(),
    st.floats(min_value=0, max_value=1e9, allow_nan=False).filter(
        lambda f: not f.is_integer()
    ),
)
def test_a_float_trait_is_refused_not_converted(
    generated: tuple[Catalog, list[Product]], value: float
) -> None:
    catalog, chosen = generated
    traits: dict[str, Any] = dict.fromkeys(TRAITS, value)

    rated = rate(usage(traits), catalog)

    reading = [p for p in chosen if p.usage_type != "time"]
    if reading:
        unrated = next(record for record in rated if not record["rated"])
        assert "is not an integer: float" in unrated["unrated_reason"]
    assert all(no_floats(record) for record in rated)
