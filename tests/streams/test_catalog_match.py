"""Table-driven tests of trait conditions: equals, in, not_in, range and regex."""

from __future__ import annotations

from typing import Any

import pytest

from stackmeter.resources import resource_type
from stackmeter.streams.catalog_match import build_conditions

SERVER = resource_type("nova.server")
VOLUME = resource_type("cinder.volume")
LOAD_BALANCER = resource_type("neutron.load_balancer")


def passes(match: dict[str, Any], traits: dict[str, object], type_id: str) -> bool:
    problems: list[str] = []
    conditions = build_conditions(match, resource_type(type_id), problems)
    assert problems == []
    return all(condition.mismatch(traits) is None for condition in conditions)


@pytest.mark.parametrize(
    ("type_id", "match", "traits", "expected"),
    [
        # equals, written out or as a bare value; case-sensitive
        ("nova.server", {"state": "ACTIVE"}, {"state": "ACTIVE"}, True),
        ("nova.server", {"state": {"equals": "ACTIVE"}}, {"state": "ACTIVE"}, True),
        ("nova.server", {"state": "ACTIVE"}, {"state": "active"}, False),
        ("nova.server", {"state": "ACTIVE"}, {"state": "SHUTOFF"}, False),
        ("nova.server", {"vcpu": 4}, {"vcpu": 4}, True),
        ("nova.server", {"vcpu": 4}, {"vcpu": 8}, False),
        # in / not_in
        (
            "cinder.volume",
            {"status": {"in": ["in-use", "available"]}},
            {"status": "in-use"},
            True,
        ),
        (
            "cinder.volume",
            {"status": {"in": ["in-use", "available"]}},
            {"status": "error"},
            False,
        ),
        (
            "cinder.volume",
            {"status": {"not_in": ["error", "deleting"]}},
            {"status": "available"},
            True,
        ),
        (
            "cinder.volume",
            {"status": {"not_in": ["error", "deleting"]}},
            {"status": "error"},
            False,
        ),
        ("cinder.volume", {"type": {"not_in": ["ssd"]}}, {"type": None}, False),
        # integer ranges, each bound inclusive or exclusive as named
        (
            "cinder.volume",
            {"size": {"range": {"gte": 10, "lt": 100}}},
            {"size": 10},
            True,
        ),
        (
            "cinder.volume",
            {"size": {"range": {"gte": 10, "lt": 100}}},
            {"size": 100},
            False,
        ),
        (
            "cinder.volume",
            {"size": {"range": {"gt": 10, "lte": 100}}},
            {"size": 10},
            False,
        ),
        (
            "cinder.volume",
            {"size": {"range": {"gt": 10, "lte": 100}}},
            {"size": 100},
            True,
        ),
        ("cinder.volume", {"size": {"range": {"gte": 1000}}}, {"size": 999}, False),
        (
            "neutron.load_balancer",
            {"listeners": {"range": {"gte": 1}}},
            {"listeners": 0},
            False,
        ),
        # regex matches the whole text
        (
            "nova.server",
            {"flavor": {"regex": r"v8\..*"}},
            {"flavor": "v8.xlarge"},
            True,
        ),
        ("nova.server", {"flavor": {"regex": r"v8"}}, {"flavor": "v8.xlarge"}, False),
        ("nova.server", {"flavor": {"regex": r"v8\..*"}}, {"flavor": "xv8.x"}, False),
        # several conditions on one trait, and on several traits, all must hold
        (
            "nova.server",
            {"flavor": {"regex": "v.*", "not_in": ["v1.small"]}},
            {"flavor": "v1.small"},
            False,
        ),
        (
            "nova.server",
            {"flavor": {"regex": "v.*", "not_in": ["v1.small"]}},
            {"flavor": "v2.medium"},
            True,
        ),
        (
            "nova.server",
            {"state": "ACTIVE", "vcpu": {"range": {"gte": 8}}},
            {"state": "ACTIVE", "vcpu": 4},
            False,
        ),
        # a trait without a value matches no condition
        ("nova.server", {"flavor": {"regex": ".*"}}, {"flavor": None}, False),
        ("nova.server", {"vcpu": {"range": {"gte": 0}}}, {}, False),
        # no conditions: everything matches
        ("neutron.router", {}, {}, True),
    ],
)
def test_conditions(
    type_id: str, match: dict[str, Any], traits: dict[str, object], expected: bool
) -> None:
    assert passes(match, traits, type_id) is expected


@pytest.mark.parametrize(
    ("match", "traits", "reason"),
    [
        ({"state": "ACTIVE"}, {"state": "SHUTOFF"}, "state='SHUTOFF' is not 'ACTIVE'"),
        (
            {"state": {"in": ["A", "B"]}},
            {"state": "C"},
            "state='C' is not in ['A', 'B']",
        ),
        (
            {"state": {"not_in": ["C"]}},
            {"state": "C"},
            "state='C' is excluded by not_in",
        ),
        (
            {"vcpu": {"range": {"gte": 2, "lt": 8}}},
            {"vcpu": 8},
            "vcpu=8 is outside >= 2 and < 8",
        ),
        (
            {"flavor": {"regex": "g.*"}},
            {"flavor": "v1"},
            "flavor='v1' does not match /g.*/",
        ),
        ({"ramMb": 1024}, {"ramMb": None}, "ramMb has no value"),
    ],
)
def test_mismatch_reasons(
    match: dict[str, Any], traits: dict[str, object], reason: str
) -> None:
    problems: list[str] = []
    (condition,) = build_conditions(match, SERVER, problems)

    assert condition.mismatch(traits) == reason


@pytest.mark.parametrize(
    ("resource", "match", "problem"),
    [
        (
            SERVER,
            {"sate": "ACTIVE"},
            "match.sate: unknown trait 'sate' for nova.server; its traits: disk, "
            "diskEphemeral, diskRoot, flavor, ramMb, state, vcpu",
        ),
        (
            resource_type("neutron.router"),
            {"status": "ACTIVE"},
            "match.status: unknown trait 'status' for neutron.router; its traits: none",
        ),
        (
            VOLUME,
            {"size": "10"},
            "match.size.equals: size is an integer trait, got text '10'",
        ),
        (
            VOLUME,
            {"type": {"in": ["ssd", 2]}},
            "match.type.in[1]: type is a text trait, got the number 2; quote it",
        ),
        (
            VOLUME,
            {"status": {"range": {"gte": 1}}},
            "match.status.range: status is a text trait; range needs integers",
        ),
        (
            VOLUME,
            {"size": {"regex": "1.*"}},
            "match.size.regex: size is an integer trait; regex needs text",
        ),
        (
            SERVER,
            {"flavor": {"regex": "v8("}},
            "match.flavor.regex: not a valid regular expression: missing ), ",
        ),
        (
            VOLUME,
            {"size": {"range": {"gte": 10, "lt": 10}}},
            "match.size.range: no integer satisfies",
        ),
        (
            VOLUME,
            {"size": {"range": {"gt": 1, "gte": 2}}},
            "match.size.range: give gt or gte, not both",
        ),
        (
            VOLUME,
            {"size": {"range": {"lt": 1, "lte": 2}}},
            "match.size.range: give lt or lte, not both",
        ),
    ],
)
def test_condition_problems(resource: Any, match: dict[str, Any], problem: str) -> None:
    problems: list[str] = []

    conditions = build_conditions(match, resource, problems)

    assert conditions == ()
    assert len(problems) == 1
    assert problems[0].startswith(problem)
