"""The rater: hand-computed costs, scope precedence, validity and unrated usage."""

from __future__ import annotations

import hashlib
import textwrap
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from stackmeter.codec import default_registry
from stackmeter.streams.catalog import Catalog, load_catalog, parse_catalog
from stackmeter.streams.rating import RATED_SCHEMA, charge_id, rate

EXAMPLE = Path(__file__).resolve().parents[2] / "catalog" / "example.yaml"
HOUR = datetime(2026, 3, 2, 10, tzinfo=UTC)


def usage(type_id: str, traits: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A Usage record as the worker emits it."""
    record: dict[str, Any] = {
        "usage_id": f"u-{type_id}",
        "revision": 1,
        "platform_id": "openstack.eu-west",
        "resource_type": type_id,
        "project_id": "p-1",
        "resource_id": "r-1",
        "resource_name": "name",
        "hour_start": HOUR,
        "samples_observed": 12,
        "samples_expected": 12,
        "estimated": False,
        "traits": traits,
        "last_sampled_at": HOUR + timedelta(minutes=55),
    }
    record.update(fields)
    return record


def amounts(records: list[dict[str, Any]]) -> dict[str, Decimal]:
    return {r["product_id"]: r["amount"] for r in records if r["rated"]}


@pytest.fixture(scope="module")
def example() -> Catalog:
    return load_catalog(EXAMPLE)


SERVER = {
    "disk": 80,
    "diskEphemeral": 0,
    "diskRoot": 80,
    "flavor": "v4.large",
    "ramMb": 16384,
    "state": "ACTIVE",
    "vcpu": 4,
}

# (usage, {product: amount}) with every amount worked out by hand from the
# example's prices.
EXAMPLE_CASES = [
    pytest.param(
        usage("nova.server", SERVER),
        {
            "server.vcpu": "0.084",  # 4 vCPU x 1 h x 0.0210
            "server.ram": "0.0448",  # 16384 MiB = 16 GiB x 1 h x 0.0028
            "server.root-disk": "0.0112",  # 80 GiB x 1 h x 0.00014
        },
        id="server-running",
    ),
    pytest.param(
        usage("nova.server", SERVER | {"ramMb": 1000}),
        # 1000 MiB = 0.9765625 GiB x 0.0028 = 0.00273437500 exactly
        {
            "server.vcpu": "0.084",
            "server.ram": "0.002734375",
            "server.root-disk": "0.0112",
        },
        id="server-ram-in-mib",
    ),
    pytest.param(
        usage("nova.server", SERVER | {"state": "SHUTOFF"}),
        {"server.root-disk": "0.0112"},
        id="server-stopped-pays-disk-only",
    ),
    pytest.param(
        usage("nova.server", SERVER | {"flavor": "v8.xlarge", "vcpu": 8}),
        {
            "server.vcpu": "0.168",  # 8 x 0.0210
            "server.ram": "0.0448",
            "server.root-disk": "0.0112",
            "server.flavor.v8": "0.04",  # surcharge, 1 h x 0.0400
        },
        id="server-flavor-surcharge",
    ),
    pytest.param(
        usage("nova.server", SERVER | {"flavor": "g2.large"}),
        {
            "server.vcpu": "0.084",
            "server.ram": "0.0448",
            "server.root-disk": "0.0112",
            "server.flavor.gpu": "0.95",
        },
        id="server-gpu-surcharge",
    ),
    pytest.param(
        usage("nova.server", SERVER, project_id="acme-prod"),
        # negotiated vCPU price for acme-prod: 4 x 0.0180
        {"server.vcpu": "0.072", "server.ram": "0.0448", "server.root-disk": "0.0112"},
        id="server-negotiated-project-price",
    ),
    pytest.param(
        usage("cinder.volume", {"size": 100, "status": "in-use", "type": "hdd"}),
        {"volume.hdd": "0.007"},  # 100 GiB x 0.00007
        id="volume-hdd",
    ),
    pytest.param(
        usage("cinder.volume", {"size": 100, "status": "available", "type": "ssd"}),
        {"volume.ssd": "0.016"},
        id="volume-ssd",
    ),
    pytest.param(
        usage("cinder.volume", {"size": 250, "status": "in-use", "type": "nvme"}),
        {"volume.nvme": "0.0625"},
        id="volume-nvme",
    ),
    pytest.param(
        usage("cinder.volume_snapshot", {"status": "available", "volumeSize": 40}),
        {"volume-snapshot.storage": "0.002"},
        id="volume-snapshot",
    ),
    pytest.param(
        usage("glance.image", {"service": "file", "size": 3, "status": "active"}),
        {"image.storage": "0.00015"},
        id="image",
    ),
    pytest.param(
        usage("neutron.floating_ip", {}),
        {"floating-ip.hour": "0.0045"},
        id="floating-ip",
    ),
    pytest.param(
        usage("neutron.router", {}),
        {"router.hour": "0.012"},
        id="router-first-half-price",
    ),
    pytest.param(
        usage("neutron.router", {}, hour_start=datetime(2026, 7, 1, tzinfo=UTC)),
        {"router.hour": "0.01"},
        id="router-second-half-price",
    ),
    pytest.param(
        usage(
            "neutron.load_balancer",
            {"listeners": 3, "operatingStatus": "ONLINE", "pools": 2, "provider": "x"},
        ),
        # base 0.0250 + 3 listeners x 0.0060
        {"load-balancer.hour": "0.025", "load-balancer.listener": "0.018"},
        id="load-balancer",
    ),
]


@pytest.mark.parametrize(("record", "expected"), EXAMPLE_CASES)
def test_example_products_cost_what_was_worked_out_by_hand(
    example: Catalog, record: dict[str, Any], expected: dict[str, str]
) -> None:
    rated = rate(record, example)

    assert amounts(rated) == {k: Decimal(v) for k, v in expected.items()}
    assert all(r["rated"] for r in rated)


def test_rated_records_follow_the_schema(example: Catalog) -> None:
    registry = default_registry()
    record = usage("nova.server", SERVER | {"ramMb": 1000}, estimated=True, revision=3)

    rated = rate(record, example)

    for charge in rated:
        assert registry.decode(registry.encode(RATED_SCHEMA, charge)).record == charge
        assert charge["charge_id"] == charge_id(
            record["usage_id"], charge["product_id"]
        )
        assert charge["usage_revision"] == 3
        assert charge["estimated"] is True
        assert charge["catalog_version"] == "2026.1"
        assert charge["currency"] == "EUR"
        for money in ("quantity", "unit_price", "amount"):
            assert charge[money].as_tuple().exponent == -9
    ram = next(c for c in rated if c["product_id"] == "server.ram")
    assert ram["quantity"] == Decimal("0.9765625")
    assert ram["unit"] == "GiBy.h"
    assert ram["product_name"] == "Server RAM"


def test_charge_ids_are_deterministic_and_distinct() -> None:
    # As the RatedUsage schema documents it.
    assert charge_id("u-1", "p") == hashlib.sha256(b"u-1\np").hexdigest()[:32]
    assert charge_id("u-1", "server.vcpu") == charge_id("u-1", "server.vcpu")
    assert len(charge_id("u-1", "server.vcpu")) == 32
    assert (
        len({charge_id("u-1", "a"), charge_id("u-1", "b"), charge_id("u-2", "a")}) == 3
    )
    assert charge_id("u-1", "") != charge_id("u-1", "a")


def test_estimated_hours_are_rated_like_observed_ones(example: Catalog) -> None:
    observed = rate(usage("neutron.floating_ip", {}), example)
    estimated = rate(
        usage(
            "neutron.floating_ip",
            {},
            estimated=True,
            samples_expected=0,
            samples_observed=0,
        ),
        example,
    )

    assert amounts(observed) == amounts(estimated)
    assert estimated[0]["estimated"] is True


def test_unmatched_usage_is_kept_as_unrated_with_the_reason(example: Catalog) -> None:
    record = usage("nova.server", SERVER | {"state": "SHELVED_OFFLOADED"})

    (unrated,) = rate(record, example)

    assert unrated["rated"] is False
    assert unrated["charge_id"] == charge_id(record["usage_id"], "")
    assert unrated["product_id"] is None
    assert unrated["currency"] is None
    assert unrated["amount"] == unrated["quantity"] == unrated["unit_price"] == 0
    assert unrated["unit"] == ""
    assert unrated["catalog_version"] == "2026.1"
    assert unrated["unrated_reason"].startswith(
        "no rule matched: server.vcpu: state='SHELVED_OFFLOADED' is not in "
    )
    assert (
        "server.root-disk: state='SHELVED_OFFLOADED' is excluded by not_in"
        in (unrated["unrated_reason"])
    )
    registry = default_registry()
    assert registry.decode(registry.encode(RATED_SCHEMA, unrated)).record == unrated


def test_usage_of_a_type_without_products_is_unrated() -> None:
    catalog = parse_catalog(CATALOG_HEADER)

    (unrated,) = rate(usage("neutron.router", {}), catalog)

    assert unrated["unrated_reason"] == "no product prices neutron.router"


def test_a_product_that_cannot_be_computed_is_reported_beside_the_others(
    example: Catalog,
) -> None:
    rated = rate(usage("nova.server", SERVER | {"ramMb": None}), example)

    assert sorted(str(r["product_id"]) for r in rated) == [
        "None",
        "server.root-disk",
        "server.vcpu",
    ]
    unrated = next(r for r in rated if not r["rated"])
    assert unrated["unrated_reason"] == (
        "product server.ram (rule server.ram): 'ramMb': trait ramMb has no value"
    )


CATALOG_HEADER = """\
format_version: 1
version: "t1"
currency: EUR
rules: []
"""


def scoped_catalog(rules: str) -> Catalog:
    header = CATALOG_HEADER.replace("rules: []\n", "rules:\n")
    return parse_catalog(header + textwrap.indent(textwrap.dedent(rules), "  "))


FIP = """\
resource_type: neutron.floating_ip
usage_type: time
unit: h
"""


def fip_rule(rule_id: str, price: str, extra: str = "") -> str:
    body = f'id: {rule_id}\nproduct: fip\nunit_price: "{price}"\n{FIP}{extra}'
    return "- " + textwrap.indent(body, "  ")[2:]


PRECEDENCE = scoped_catalog(
    fip_rule("list", "0.0040")
    + fip_rule("eu", "0.0035", "scope: {platform: eu}\n")
    + fip_rule("acme", "0.0030", "scope: {project: acme}\n")
    + fip_rule("acme.eu", "0.0020", "scope: {platform: eu, project: acme}\n")
)


@pytest.mark.parametrize(
    ("platform_id", "project_id", "winner", "price"),
    [
        ("us", "other", "list", "0.004"),  # only the list price covers it
        ("eu", "other", "eu", "0.0035"),  # platform beats every-platform
        ("us", "acme", "acme", "0.003"),  # project beats every-platform
        ("eu", "acme", "acme.eu", "0.002"),  # platform and project beat all
    ],
)
def test_the_narrowest_matching_scope_wins(
    platform_id: str, project_id: str, winner: str, price: str
) -> None:
    record = usage(
        "neutron.floating_ip", {}, platform_id=platform_id, project_id=project_id
    )

    (charge,) = rate(record, PRECEDENCE)

    assert charge["product_id"] == "fip"
    assert charge["amount"] == Decimal(price)
    assert charge["charge_id"] == charge_id(record["usage_id"], "fip")


def test_a_project_rule_whose_conditions_fail_falls_back_to_the_list_price() -> None:
    catalog = scoped_catalog(
        """\
        - id: list
          product: vcpu
          resource_type: nova.server
          usage_type: time_quantity
          quantity: vcpu
          unit: "{vCPU}.h"
          unit_price: "0.02"
        - id: acme.v8
          product: vcpu
          scope: {project: acme}
          resource_type: nova.server
          match: {flavor: {regex: 'v8\\..*'}}
          usage_type: time_quantity
          quantity: vcpu
          unit: "{vCPU}.h"
          unit_price: "0.01"
        """
    )
    small = usage("nova.server", SERVER | {"flavor": "v1.small"}, project_id="acme")
    large = usage("nova.server", SERVER | {"flavor": "v8.xlarge"}, project_id="acme")

    assert amounts(rate(small, catalog)) == {"vcpu": Decimal("0.08")}
    assert amounts(rate(large, catalog)) == {"vcpu": Decimal("0.04")}


def test_an_expired_project_price_falls_back_to_the_list_price() -> None:
    catalog = scoped_catalog(
        fip_rule("list", "0.0040")
        + fip_rule(
            "acme", "0.0030", "scope: {project: acme}\nvalid_to: 2026-03-02T10:00:00Z\n"
        )
    )
    before = usage(
        "neutron.floating_ip",
        {},
        project_id="acme",
        hour_start=HOUR - timedelta(hours=1),
    )
    at_end = usage("neutron.floating_ip", {}, project_id="acme")

    assert amounts(rate(before, catalog)) == {"fip": Decimal("0.003")}
    assert amounts(rate(at_end, catalog)) == {"fip": Decimal("0.004")}


@pytest.mark.parametrize(
    ("hour_start", "expected"),
    [
        (datetime(2025, 12, 31, 23, tzinfo=UTC), None),
        (datetime(2026, 1, 1, 0, tzinfo=UTC), "0.004"),  # valid_from is inclusive
        (datetime(2026, 1, 31, 23, tzinfo=UTC), "0.004"),
        (datetime(2026, 2, 1, 0, tzinfo=UTC), None),  # valid_to is exclusive
    ],
)
def test_validity_is_half_open_on_the_hour_start(
    hour_start: datetime, expected: str | None
) -> None:
    catalog = scoped_catalog(
        fip_rule("jan", "0.0040", "valid_from: 2026-01-01\nvalid_to: 2026-02-01\n")
    )

    (record,) = rate(usage("neutron.floating_ip", {}, hour_start=hour_start), catalog)

    if expected is None:
        assert record["rated"] is False
        assert record["unrated_reason"] == (
            f"no rule matched: fip: no version valid at {hour_start.isoformat()}"
        )
    else:
        assert record["amount"] == Decimal(expected)


def test_no_rule_in_scope_is_the_reason() -> None:
    catalog = scoped_catalog(fip_rule("acme", "0.0030", "scope: {project: acme}\n"))

    (record,) = rate(usage("neutron.floating_ip", {}), catalog)

    assert record["unrated_reason"] == (
        "no rule matched: fip: no rule's scope covers this platform and project"
    )


def test_quantity_usage_is_counted_once_an_hour() -> None:
    catalog = scoped_catalog(
        """\
        - id: volume
          resource_type: cinder.volume
          usage_type: quantity
          quantity: size
          quantity_unit: GiBy
          unit: TiBy
          unit_price: "10.24"
        """
    )

    (charge,) = rate(usage("cinder.volume", {"size": 512, "status": "in-use"}), catalog)

    # 512 GiB = 0.5 TiBy x 10.24
    assert charge["quantity"] == Decimal("0.5")
    assert charge["unit"] == "TiBy"
    assert charge["amount"] == Decimal("5.12")


def test_amounts_are_rounded_half_even_to_nine_places() -> None:
    catalog = scoped_catalog(
        """\
        - id: ram
          resource_type: nova.server
          usage_type: time_quantity
          quantity: ramMb / 3
          unit: "1.h"
          unit_price: "0.000000001"
        - id: half
          resource_type: nova.server
          usage_type: time_quantity
          quantity: ramMb / 2000000000
          unit: "1.h"
          unit_price: "1"
        """
    )

    rated = rate(usage("nova.server", {"ramMb": 5, "state": "ACTIVE"}), catalog)

    by_product = {r["product_id"]: r for r in rated}
    # 5 / 3 = 1.666666666|67 -> 1.666666667; times 1e-9 -> 0.000000001666... -> 2e-9
    assert by_product["ram"]["quantity"] == Decimal("1.666666667")
    assert by_product["ram"]["amount"] == Decimal("0.000000002")
    # 5 / 2e9 = 0.0000000025 -> half-even to 0.000000002
    assert by_product["half"]["quantity"] == Decimal("0.000000002")


def test_negative_quantity_is_unrated() -> None:
    catalog = scoped_catalog(
        """\
        - id: extra
          resource_type: cinder.volume
          usage_type: time_quantity
          quantity: size - 100
          unit: GiBy.h
          unit_price: "1"
        """
    )

    (record,) = rate(usage("cinder.volume", {"size": 10, "status": "x"}), catalog)

    assert record["rated"] is False
    assert record["unrated_reason"] == (
        "product extra (rule extra): quantity -90.000000000 is negative"
    )
