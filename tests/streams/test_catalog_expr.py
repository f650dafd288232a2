"""Table-driven tests of the catalog's quantity expressions and units."""

from __future__ import annotations

from decimal import Decimal

import pytest

from stackmeter.streams.catalog_expr import (
    EvaluationError,
    ExpressionSyntaxError,
    parse_expression,
)
from stackmeter.streams.catalog_units import UnitError, parse_unit

TRAITS = {"vcpu": 4, "ramMb": 3000, "size": 10, "zero": 0, "state": "ACTIVE"}


@pytest.mark.parametrize(
    ("text", "expected", "names"),
    [
        ("1", "1", set()),
        (1, "1", set()),
        ("0.5", "0.5", set()),
        ("vcpu", "4", {"vcpu"}),
        ("ramMb / 1024", "2.9296875", {"ramMb"}),
        ("ramMb / 1000", "3", {"ramMb"}),
        ("1 + 2 * 3", "7", set()),
        ("(1 + 2) * 3", "9", set()),
        ("10 - 4 - 3", "3", set()),
        ("24 / 4 / 2", "3", set()),
        ("-vcpu + 10", "6", {"vcpu"}),
        ("- -2", "2", set()),
        ("2 * -3", "-6", set()),
        ("max(size - 20, 0)", "0", {"size"}),
        ("min(vcpu, 2, 3)", "2", {"vcpu"}),
        ("ceil(ramMb / 1024)", "3", {"ramMb"}),
        ("floor(ramMb / 1024)", "2", {"ramMb"}),
        ("ceil(-0.5)", "0", set()),
        ("  vcpu*size  ", "40", {"vcpu", "size"}),
        ("0.1 + 0.2", "0.3", set()),
        ("1 / 3", "0." + "3" * 50, set()),
    ],
)
def test_expression_values(text: str | int, expected: str, names: set[str]) -> None:
    expression = parse_expression(text)

    value = expression.evaluate(TRAITS)

    assert isinstance(value, Decimal)
    assert value == Decimal(expected)
    assert expression.names() == names


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty expression"),
        ("   ", "empty expression"),
        ("1 +", "an operand is missing"),
        ("(1 + 2", "is never closed"),
        ("1 + 2)", "expected an operator or the end at position 5"),
        ("vcpu vcpu", "expected an operator or the end"),
        ("1.", "unexpected character '.' at position 1"),
        (".5", "unexpected character '.' at position 0"),
        ("1e3", "expected an operator or the end"),
        ("vcpu ** 2", "expected a number, a trait name or '('"),
        ("__import__('os')", 'unexpected character "\'" at position 11'),
        ("__import__(1)", "unknown function '__import__'"),
        ("open(1)", "unknown function 'open'"),
        ("vcpu.real", "unexpected character '.'"),
        ("size[0]", "unexpected character '['"),
        ("'text'", "unexpected character"),
        ("max(1)", "max() takes 2 to 16 arguments, got 1"),
        ("ceil(1, 2)", "ceil() takes 1 argument, got 2"),
        ("max", "'(' after function max"),
        ("()", "expected a number, a trait name or '('"),
        ("(" * 40 + "1" + ")" * 40, "nested deeper than 32 levels"),
        ("1+" * 300 + "1", "longer than 500 characters"),
    ],
)
def test_expression_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(ExpressionSyntaxError) as caught:
        parse_expression(text)

    assert message in str(caught.value)


@pytest.mark.parametrize("value", [True, 1.5, None, ["vcpu"]])
def test_expression_must_be_text_or_integer(value: object) -> None:
    with pytest.raises(ExpressionSyntaxError, match="expected a text or an integer"):
        parse_expression(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "traits", "message"),
    [
        ("size / zero", TRAITS, "division by zero"),
        ("ramMb / 1024", {"ramMb": None}, "trait ramMb has no value"),
        ("ramMb", {}, "trait ramMb has no value"),
        ("state", TRAITS, "trait state is not an integer: str"),
        ("vcpu", {"vcpu": 0.5}, "trait vcpu is not an integer: float"),
        ("vcpu", {"vcpu": True}, "trait vcpu is not an integer: bool"),
    ],
)
def test_expression_evaluation_errors(
    text: str, traits: dict[str, object], message: str
) -> None:
    expression = parse_expression(text)

    with pytest.raises(EvaluationError) as caught:
        expression.evaluate(traits)

    assert message in str(caught.value)
    assert repr(text) in str(caught.value)


def test_bare_trait_is_recognised() -> None:
    assert parse_expression("ramMb").bare_trait == "ramMb"
    assert parse_expression("(ramMb)").bare_trait == "ramMb"
    assert parse_expression("ramMb / 1024").bare_trait is None
    assert parse_expression("1").bare_trait is None


@pytest.mark.parametrize(
    ("price_unit", "trait_unit", "factor"),
    [
        ("GiBy.h", "MiBy", "0.0009765625"),
        ("GiBy", "GiBy", "1"),
        ("GiBy.h", "GBy", "0.931322574615478515625"),
        ("GBy.h", "GiBy", "1.073741824"),
        ("MiBy", "KiBy", "0.0009765625"),
        ("kBy", "By", "0.001"),
        ("TiBy.h", "GiBy", "0.0009765625"),
        ("By", "PiBy", str(2**50)),
        ("{vCPU}.h", "{vCPU}", "1"),
        ("1", "1", "1"),
    ],
)
def test_unit_conversion_factors(price_unit: str, trait_unit: str, factor: str) -> None:
    assert parse_unit(price_unit).factor_from(parse_unit(trait_unit)) == Decimal(factor)


@pytest.mark.parametrize(
    ("text", "dimension", "per_hour", "quantity_text"),
    [
        ("h", "", True, ""),
        ("GiBy", "By", False, "GiBy"),
        ("GiBy.h", "By", True, "GiBy"),
        ("{vCPU}.h", "{vCPU}", True, "{vCPU}"),
        ("{listener}", "{listener}", False, "{listener}"),
        ("1.h", "1", True, "1"),
    ],
)
def test_units_parse(
    text: str, dimension: str, per_hour: bool, quantity_text: str
) -> None:
    unit = parse_unit(text)

    assert (unit.dimension, unit.per_hour, unit.quantity_text) == (
        dimension,
        per_hour,
        quantity_text,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "non-empty"),
        ("GiB", "'GiB' is not a known unit"),
        ("XiBy", "unknown byte prefix 'Xi'"),
        ("KBy", "unknown byte prefix 'K'"),
        ("GiBy.d", "the second part must be 'h'"),
        ("GiBy.h.h", "at most a quantity and 'h'"),
        ("h.h", "'h' may appear once"),
        ("vCPU.h", "'vCPU' is not a known unit"),
    ],
)
def test_bad_units(text: str, message: str) -> None:
    with pytest.raises(UnitError) as caught:
        parse_unit(text)

    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("price_unit", "source", "message"),
    [
        ("GiBy.h", "{vCPU}", "a count of {vCPU} is not a byte size"),
        ("{vCPU}.h", "{core}", "a count of {core} is not a count of {vCPU}"),
        ("{vCPU}.h", "1", "a plain number is not a count of {vCPU}"),
    ],
)
def test_units_that_do_not_convert(price_unit: str, source: str, message: str) -> None:
    with pytest.raises(UnitError) as caught:
        parse_unit(price_unit).factor_from(parse_unit(source))

    assert message in str(caught.value)
