"""Loading and checking catalogs: the example, the format, and every problem message."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest
import yaml

from stackmeter.errors import ConfigError
from stackmeter.resources import RESOURCE_TYPE_IDS
from stackmeter.streams.catalog import (
    CatalogError,
    check_catalog,
    load_catalog,
    parse_catalog,
)
from stackmeter.streams.catalog_schema import CATALOG_SCHEMA, schema_text

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "catalog" / "example.yaml"

HEADER = """\
format_version: 1
version: "t1"
currency: EUR
rules:
"""

SERVER_VCPU = """\
  - id: vcpu
    resource_type: nova.server
    usage_type: time_quantity
    quantity: vcpu
    unit: "{vCPU}.h"
    unit_price: "0.02"
"""


def catalog(rules: str, header: str = HEADER) -> str:
    return header + textwrap.indent(textwrap.dedent(rules), "  ")


def problems(text: str) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(text, "cat.yaml")
    return [str(problem) for problem in caught.value.problems]


def test_example_catalog_prices_every_resource_type() -> None:
    loaded = load_catalog(EXAMPLE)

    assert loaded.version == "2026.1"
    assert loaded.source == str(EXAMPLE)
    assert len(loaded.digest) == 64
    priced = {rule.resource_type for rule in loaded.rules}
    assert priced == set(RESOURCE_TYPE_IDS)
    assert {rule.currency for rule in loaded.rules} == {"EUR"}


def test_example_catalog_passes_the_published_schema_as_editors_read_it() -> None:
    # Editors parse YAML with the standard resolvers (numbers become floats);
    # the schema accepts that shape too.
    standard = yaml.safe_load(EXAMPLE.read_text())

    jsonschema.Draft202012Validator(CATALOG_SCHEMA).validate(standard)


def test_published_schema_file_is_current() -> None:
    published = (REPO / "catalog" / "catalog.schema.json").read_text()

    jsonschema.Draft202012Validator.check_schema(CATALOG_SCHEMA)
    assert published == schema_text(), "regenerate: stackmeter catalog schema"


def test_rule_fields_are_read_exactly() -> None:
    text = catalog(
        """\
        - id: ram.acme
          product: ram
          name: Server RAM
          scope: {platform: openstack.eu-west, project: acme}
          resource_type: nova.server
          match:
            state: {in: [ACTIVE]}
          usage_type: time_quantity
          quantity: ramMb
          unit: GiBy.h
          unit_price: 0.1
          currency: USD
          valid_from: 2026-01-01
          valid_to: "2026-02-01T12:30:00+01:00"
        """
    )

    (rule,) = parse_catalog(text).rules

    assert rule.rule_id == "ram.acme"
    assert rule.product_id == "ram"
    assert rule.name == "Server RAM"
    assert (rule.scope.platform_id, rule.scope.project_id) == (
        "openstack.eu-west",
        "acme",
    )
    assert rule.scope.rank == 3
    assert rule.unit_price == Decimal("0.1")
    assert str(rule.unit_price) == "0.1"
    assert rule.unit_factor == Decimal(1) / Decimal(1024)
    assert rule.quantity_unit is not None
    assert rule.quantity_unit.text == "MiBy"
    assert rule.currency == "USD"
    assert rule.valid_from == datetime(2026, 1, 1, tzinfo=UTC)
    assert rule.valid_to == datetime(2026, 2, 1, 11, 30, tzinfo=UTC)


def test_prices_written_as_yaml_numbers_keep_their_literal_text() -> None:
    text = catalog(SERVER_VCPU.replace('"0.02"', "0.1000000000000000055"))

    with pytest.raises(CatalogError) as caught:
        parse_catalog(text)
    # not silently turned into a float and back
    assert "has more than 9 decimal places" in str(caught.value)

    (rule,) = parse_catalog(catalog(SERVER_VCPU.replace('"0.02"', "0.1"))).rules
    assert rule.unit_price == Decimal("0.1")
    assert rule.unit_price.as_tuple() == Decimal("0.1").as_tuple()


def test_names_default_to_the_products_first_named_rule() -> None:
    text = catalog(
        """\
        - id: fip
          name: Floating IP
          resource_type: neutron.floating_ip
          usage_type: time
          unit: h
          unit_price: "0.004"
        - id: fip.acme
          product: fip
          scope: {project: acme}
          resource_type: neutron.floating_ip
          usage_type: time
          unit: h
          unit_price: "0.003"
        - id: router
          resource_type: neutron.router
          usage_type: time
          unit: h
          unit_price: "0.01"
        """
    )

    names = {rule.rule_id: rule.name for rule in parse_catalog(text).rules}

    assert names == {
        "fip": "Floating IP",
        "fip.acme": "Floating IP",
        "router": "router",
    }


# Every problem message a rule can get, one case each: the rule's text and the
# line `stackmeter catalog check` prints for it.
RULE_PROBLEMS = [
    pytest.param(
        """\
        - id: r
          resource_type: nova.server
          match: {sate: ACTIVE}
          usage_type: time
          unit: h
          unit_price: "1"
        """,
        "cat.yaml: rule r: match.sate: unknown trait 'sate' for nova.server; its "
        "traits: disk, diskEphemeral, diskRoot, flavor, ramMb, state, vcpu",
        id="unknown-trait-in-match",
    ),
    pytest.param(
        """\
        - id: r
          resource_type: cinder.volume
          usage_type: time_quantity
          quantity: sizeGb
          unit: GiBy.h
          unit_price: "1"
        """,
        "cat.yaml: rule r: quantity: unknown trait 'sizeGb' for cinder.volume; its "
        "traits: availabilityZone, replicationStatus, size, status, type",
        id="unknown-trait-in-quantity",
    ),
    pytest.param(
        """\
        - id: r
          resource_type: cinder.volume
          usage_type: time_quantity
          quantity: type
          unit: GiBy.h
          unit_price: "1"
        """,
        "cat.yaml: rule r: quantity: trait type is text; a quantity needs integer "
        "traits",
        id="text-trait-in-quantity",
    ),
    pytest.param(
        """\
        - id: r
          resource_type: cinder.volume
          usage_type: time_quantity
          quantity: size *
          unit: GiBy.h
          unit_price: "1"
        """,
        "cat.yaml: rule r: quantity: bad expression: unexpected end of 'size *': an "
        "operand is missing",
        id="bad-expression",
    ),
    pytest.param(
        """\
        - id: r
          resource_type: cinder.volume
          usage_type: time_quantity
          quantity: __import__(1)
          unit: GiBy.h
          unit_price: "1"
        """,
        "cat.yaml: rule r: quantity: bad expression: unknown function '__import__' "
        "at position 0 in '__import__(1)'; known: min, max, ceil, floor",
        id="unknown-function",
    ),
    pytest.param(
        """\
        - id: r
          resource_type: cinder.volume
          usage_type: time_quantity
          unit: GiBy.h
          unit_price: "1"
        """,
        "cat.yaml: rule r: quantity: usage_type time_quantity needs an expression",
        id="missing-quantity",
    ),
    pytest.param(
        """\
        - id: r
          resource_type: neutron.router
          usage_type: time
          quantity: "1"
          unit: h
          unit_price: "1"
        """,
        "cat.yaml: rule r: quantity: usage_type time charges 1 h per usage hour and "
        "takes no quantity",
        id="time-with-quantity",
    ),
    pytest.param(
        """\
        - id: r
          resource_type: neutron.router
          usage_type: time
          unit: GiBy.h
          unit_price: "1"
        """,
        "cat.yaml: rule r: unit: usage_type time is priced per hour of existence; "
        "unit must be 'h', got 'GiBy.h'",
        id="time-not-per-hour",
    ),
    pytest.param(
        """\
        - id: r
          resource_type: cinder.volume
          usage_type: quantity
          quantity: size
          unit: GiBy.h
          unit_price: "1"
        """,
        "cat.yaml: rule r: unit: usage_type quantity prices an amount counted once "
        "an hour, e.g. 'GiBy'; got 'GiBy.h' (per hour is usage_type time_quantity)",
        id="quantity-per-hour",
    ),
    pytest.param(
        """\
        - id: r
          resource_type: cinder.volume
          usage_type: time_quantity
          quantity: size
          unit: GiBy
          unit_price: "1"
        """,
        "cat.yaml: rule r: unit: usage_type time_quantity prices an amount times "
        "hours, e.g. 'GiBy.h' or '{vCPU}.h'; got 'GiBy'",
        id="time-quantity-not-per-hour",
    ),
    pytest.param(
        """\
        - id: r
          resource_type: cinder.volume
          usage_type: time_quantity
          quantity: size
          unit: GiB.h
          unit_price: "1"
        """,
        "cat.yaml: rule r: unit: unit 'GiB.h': 'GiB' is not a known unit; use By "
        "with a prefix (KiBy, MiBy, GiBy, GBy ...), a count such as {vCPU}, or 1",
        id="unknown-unit",
    ),
    pytest.param(
        """\
        - id: r
          resource_type: nova.server
          usage_type: time_quantity
          quantity: ramMb
          quantity_unit: GiBy
          unit: GiBy.h
          unit_price: "1"
        """,
        "cat.yaml: rule r: quantity_unit: 'GiBy' disagrees with trait ramMb, which "
        "is given in MiBy; leave quantity_unit out and the rater converts",
        id="quantity-unit-disagrees-with-trait",
    ),
    pytest.param(
        """\
        - id: r
          resource_type: nova.server
          usage_type: time_quantity
          quantity: vcpu
          unit: GiBy.h
          unit_price: "1"
        """,
        "cat.yaml: rule r: quantity_unit: cannot convert '{vCPU}' to 'GiBy': a count "
        "of {vCPU} is not a byte size",
        id="units-do-not-convert",
    ),
    pytest.param(
        """\
        - id: r
          resource_type: nova.server
          usage_type: time_quantity
          quantity: ramMb / 1024
          quantity_unit: GiBy.h
          unit: GiBy.h
          unit_price: "1"
        """,
        "cat.yaml: rule r: quantity_unit: 'GiBy.h' must be an amount without 'h', "
        "e.g. 'MiBy'",
        id="quantity-unit-per-hour",
    ),
    pytest.param(
        """\
        - id: r
          resource_type: neutron.router
          usage_type: time
          unit: h
          unit_price: "0.0000000001"
        """,
        "cat.yaml: rule r: unit_price: 0.0000000001 has more than 9 decimal places; "
        "rated amounts keep 9",
        id="price-too-precise",
    ),
    pytest.param(
        """\
        - id: r
          resource_type: neutron.router
          usage_type: time
          unit: h
          unit_price: "100000000000000000000000000000"
        """,
        "cat.yaml: rule r: unit_price: 100000000000000000000000000000 does not fit "
        "decimal(38, 9)",
        id="price-too-large",
    ),
    pytest.param(
        """\
        - id: r
          resource_type: neutron.router
          usage_type: time
          unit: h
          unit_price: "-1"
        """,
        "cat.yaml: rule r: unit_price: '-1' does not match '^[0-9]+(\\\\.[0-9]+)?$'",
        id="negative-price",
    ),
    pytest.param(
        """\
        - id: r
          resource_type: neutron.router
          usage_type: time
          unit: h
          unit_price: 1e-3
        """,
        "cat.yaml: rule r: unit_price: '1e-3' does not match '^[0-9]+(\\\\.[0-9]+)?$'",
        id="price-in-exponent-form",
    ),
    pytest.param(
        """\
        - id: r
          resource_type: neutron.router
          usage_type: time
          unit: h
          unit_price: "1"
          valid_from: 2026-02-01
          valid_to: 2026-01-01
        """,
        "cat.yaml: rule r: valid_to 2026-01-01T00:00:00+00:00 is not after "
        "valid_from 2026-02-01T00:00:00+00:00",
        id="empty-validity",
    ),
    pytest.param(
        """\
        - id: r
          resource_type: neutron.router
          usage_type: time
          unit: h
          unit_price: "1"
          valid_from: 2026-01-01T00:00:00
        """,
        "cat.yaml: rule r: valid_from: '2026-01-01T00:00:00' needs a UTC offset, "
        "e.g. 2025-01-01T00:00:00Z",
        id="naive-datetime",
    ),
    pytest.param(
        """\
        - id: r
          resource_type: neutron.router
          usage_type: time
          unit: h
          unit_price: "1"
          valid_from: 2026-02-30
        """,
        "cat.yaml: rule r: valid_from: '2026-02-30' is not a date or date-time: day "
        "is out of range for month",
        id="impossible-date",
    ),
    pytest.param(
        """\
        - id: r
          resource_type: nova.compute
          usage_type: time
          unit: h
          unit_price: "1"
        """,
        "cat.yaml: rule r: resource_type: 'nova.compute' is not one of "
        "['neutron.floating_ip', 'neutron.router', 'neutron.load_balancer', "
        "'cinder.volume_snapshot', 'cinder.volume', 'glance.image', 'nova.server']",
        id="unknown-resource-type",
    ),
    pytest.param(
        """\
        - id: r
          resource_type: neutron.router
          usage_type: time
          unit: h
          unit_price: "1"
          colour: blue
        """,
        "cat.yaml: rule r: Additional properties are not allowed ('colour' was "
        "unexpected)",
        id="unknown-key",
    ),
    pytest.param(
        """\
        - resource_type: neutron.router
          usage_type: time
          unit: h
          unit_price: "1"
        """,
        "cat.yaml: rule rules[0]: 'id' is a required property",
        id="missing-id",
    ),
    pytest.param(
        """\
        - id: r
          resource_type: neutron.router
          usage_type: hourly
          unit: h
          unit_price: "1"
        """,
        "cat.yaml: rule r: usage_type: 'hourly' is not one of ['time', 'quantity', "
        "'time_quantity']",
        id="unknown-usage-type",
    ),
    pytest.param(
        """\
        - id: r
          resource_type: nova.server
          match:
            state: {between: [A, B]}
          usage_type: time
          unit: h
          unit_price: "1"
        """,
        "cat.yaml: rule r: match.state: Additional properties are not allowed "
        "('between' was unexpected)",
        id="unknown-condition",
    ),
]


@pytest.mark.parametrize(("rules", "expected"), RULE_PROBLEMS)
def test_each_rule_problem_names_file_rule_and_reason(
    rules: str, expected: str
) -> None:
    assert problems(catalog(rules)) == [expected]


def test_missing_currency() -> None:
    header = HEADER.replace("currency: EUR\n", "")

    found = problems(catalog(SERVER_VCPU, header))

    assert found == [
        "cat.yaml: rule vcpu: no currency: set currency on the rule or at the top "
        "of the catalog"
    ]


def test_rule_currency_overrides_the_default() -> None:
    header = HEADER.replace("currency: EUR\n", "")
    rules = SERVER_VCPU + "    currency: CHF\n"

    (rule,) = parse_catalog(catalog(rules, header)).rules

    assert rule.currency == "CHF"


def test_overlapping_versions_of_one_product() -> None:
    text = catalog(
        """\
        - id: router.v1
          product: router
          resource_type: neutron.router
          usage_type: time
          unit: h
          unit_price: "0.012"
          valid_to: 2026-07-01
        - id: router.v2
          product: router
          resource_type: neutron.router
          usage_type: time
          unit: h
          unit_price: "0.010"
          valid_from: 2026-06-01
        """
    )

    assert problems(text) == [
        "cat.yaml: rule router.v2: valid [2026-06-01T00:00:00+00:00, open end) "
        "overlaps rule router.v1 [always, 2026-07-01T00:00:00+00:00) of product "
        "router in scope every platform: two versions of one product would apply "
        "at once"
    ]


def test_adjacent_versions_and_other_scopes_do_not_overlap() -> None:
    text = catalog(
        """\
        - id: router.v1
          product: router
          resource_type: neutron.router
          usage_type: time
          unit: h
          unit_price: "0.012"
          valid_to: 2026-07-01
        - id: router.v2
          product: router
          resource_type: neutron.router
          usage_type: time
          unit: h
          unit_price: "0.010"
          valid_from: 2026-07-01
        - id: router.acme
          product: router
          scope: {project: acme}
          resource_type: neutron.router
          usage_type: time
          unit: h
          unit_price: "0.008"
        """
    )

    assert len(parse_catalog(text).rules) == 3


def test_rules_of_one_product_must_agree() -> None:
    text = catalog(
        """\
        - id: a
          product: storage
          resource_type: cinder.volume
          usage_type: time_quantity
          quantity: size
          unit: GiBy.h
          unit_price: "0.1"
        - id: b
          product: storage
          scope: {project: acme}
          resource_type: cinder.volume_snapshot
          usage_type: quantity
          quantity: volumeSize
          unit: GiBy
          unit_price: "0.1"
        """
    )

    assert problems(text) == [
        "cat.yaml: rule b: resource_type cinder.volume_snapshot differs from "
        "cinder.volume of rule a; all rules of product storage must agree",
        "cat.yaml: rule b: usage_type quantity differs from time_quantity of rule "
        "a; all rules of product storage must agree",
        "cat.yaml: rule b: unit GiBy differs from GiBy.h of rule a; all rules of "
        "product storage must agree",
    ]


def test_duplicate_rule_id() -> None:
    text = catalog(SERVER_VCPU + SERVER_VCPU.replace("- id: vcpu", "- id: vcpu"))

    found = problems(text)

    assert "cat.yaml: rule vcpu: duplicate rule id; rules[0] has it" in found


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            "format_version: 2\nversion: x\ncurrency: EUR\nrules: []\n",
            "cat.yaml: format_version: 1 was expected",
        ),
        (
            "format_version: 1\ncurrency: EUR\nrules: []\n",
            "cat.yaml: 'version' is a required property",
        ),
        (
            "format_version: 1\nversion: x\ncurrency: euro\nrules: []\n",
            "cat.yaml: currency: 'euro' does not match '^[A-Z]{3}$'",
        ),
        (
            "- 1\n- 2\n",
            "cat.yaml: expected a mapping with format_version, version and rules",
        ),
        ("rules: [\n", "cat.yaml: not valid YAML: while parsing a flow node"),
        (
            "format_version: 1\nversion: x\nversion: y\nrules: []\n",
            "cat.yaml: not valid YAML: while reading a mapping",
        ),
    ],
)
def test_catalog_level_problems(header: str, expected: str) -> None:
    (found,) = problems(header)

    assert found.startswith(expected)


def test_duplicate_key_is_named_with_its_line() -> None:
    text = catalog(SERVER_VCPU + '    unit_price: "0.03"\n')

    (found,) = problems(text)

    assert "found the key 'unit_price' twice" in found
    assert "line 11" in found


def test_every_problem_is_reported_not_only_the_first() -> None:
    header = HEADER.replace("currency: EUR\n", "")
    text = catalog(
        """\
        - id: a
          resource_type: nova.server
          match: {sate: ACTIVE}
          usage_type: time
          unit: h
          unit_price: "1"
          currency: EUR
        - id: b
          resource_type: cinder.volume
          usage_type: time_quantity
          quantity: size +
          unit: GiBy.h
          unit_price: "1"
          currency: EUR
        - id: c
          resource_type: neutron.router
          usage_type: time
          unit: h
          unit_price: "1"
        - id: d
          resource_type: neutron.router
          usage_type: time
          unit: h
          unit_price: "1"
          colour: blue
          currency: EUR
        """,
        header,
    )

    found = problems(text)

    assert [line.split(":")[1] for line in found] == [
        " rule d",
        " rule a",
        " rule b",
        " rule c",
    ]
    assert "unknown trait 'sate'" in found[1]
    assert "bad expression" in found[2]
    assert "no currency" in found[3]


def test_load_catalog_reports_an_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"

    with pytest.raises(CatalogError) as caught:
        load_catalog(missing)

    assert str(caught.value) == f"{missing}: cannot read: No such file or directory"
    assert isinstance(caught.value, ConfigError)
    assert check_catalog(missing)[0].reason.startswith("cannot read")


def test_check_catalog_of_the_example_is_clean() -> None:
    assert check_catalog(EXAMPLE) == []
