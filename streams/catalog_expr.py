"""The catalog's quantity expressions: a small recursive-descent parser over Decimal.

An expression is arithmetic over decimal numbers and integer trait names:
``1``, ``vcpu``, ``ramMb / 1024``, ``max(size - 10, 0)``. The grammar::

    expr  := term (("+" | "-") term)*
    term  := unary (("*" | "/") unary)*
    unary := "-" unary | atom
    atom  := NUMBER | NAME | NAME "(" expr ("," expr)* ")" | "(" expr ")"

Functions are ``min``, ``max``, ``ceil`` and ``floor``. Nothing is ever handed
to Python's ``eval``; a parsed expression is a tree of the node classes below.
Arithmetic runs in ``DECIMAL_CONTEXT``: 50 significant digits, half-even,
with invalid operations, division by zero, overflow and any mixing with a
float raised as errors. Sums
and products of catalog inputs are exact in it; only a division that does not
terminate (``size / 3``) is cut at 50 digits, before the rater's one rounding
of the result to 9 decimal places.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import (
    ROUND_CEILING,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DecimalException,
    DivisionByZero,
    FloatOperation,
    InvalidOperation,
    Overflow,
    localcontext,
)

DECIMAL_CONTEXT = Context(
    prec=50,
    rounding=ROUND_HALF_EVEN,
    traps=[InvalidOperation, DivisionByZero, Overflow, FloatOperation],
)

MAX_EXPRESSION_CHARS = 500
MAX_DEPTH = 32

TraitValues = Mapping[str, object]

_TOKEN = re.compile(
    r"\s*(?:(?P<number>[0-9]+(?:\.[0-9]+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>[-+*/(),]))"
)


class ExpressionSyntaxError(ValueError):
    """An expression that does not parse; names the position and what was found."""


class EvaluationError(ArithmeticError):
    """An expression that parsed but cannot be computed for these traits."""


class Node:
    """A node of a parsed expression."""

    def evaluate(self, traits: TraitValues) -> Decimal:
        """The value for one set of traits; raises EvaluationError."""
        raise NotImplementedError

    def names(self) -> frozenset[str]:
        """Every trait name the expression reads."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Number(Node):
    value: Decimal

    def evaluate(self, traits: TraitValues) -> Decimal:
        return self.value

    def names(self) -> frozenset[str]:
        return frozenset()


@dataclass(frozen=True, slots=True)
class TraitName(Node):
    name: str

    def evaluate(self, traits: TraitValues) -> Decimal:
        value = traits.get(self.name)
        if value is None:
            raise EvaluationError(f"trait {self.name} has no value")
        # bool is an int subclass; a flag is never a quantity.
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            raise EvaluationError(
                f"trait {self.name} is not an integer: {type(value).__name__}"
            )
        return Decimal(value)

    def names(self) -> frozenset[str]:
        return frozenset({self.name})


@dataclass(frozen=True, slots=True)
class Negation(Node):
    operand: Node

    def evaluate(self, traits: TraitValues) -> Decimal:
        return -self.operand.evaluate(traits)

    def names(self) -> frozenset[str]:
        return self.operand.names()


_BINARY: dict[str, Callable[[Decimal, Decimal], Decimal]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
}


@dataclass(frozen=True, slots=True)
class Binary(Node):
    op: str
    left: Node
    right: Node

    def evaluate(self, traits: TraitValues) -> Decimal:
        left = self.left.evaluate(traits)
        right = self.right.evaluate(traits)
        if self.op == "/" and right == 0:
            raise EvaluationError("division by zero")
        return _BINARY[self.op](left, right)

    def names(self) -> frozenset[str]:
        return self.left.names() | self.right.names()


def _ceil(values: list[Decimal]) -> Decimal:
    return values[0].to_integral_value(rounding=ROUND_CEILING)


def _floor(values: list[Decimal]) -> Decimal:
    return values[0].to_integral_value(rounding=ROUND_FLOOR)


# name -> (least and most arguments, function)
_FUNCTIONS: dict[str, tuple[int, int, Callable[[list[Decimal]], Decimal]]] = {
    "min": (2, 16, min),
    "max": (2, 16, max),
    "ceil": (1, 1, _ceil),
    "floor": (1, 1, _floor),
}


@dataclass(frozen=True, slots=True)
class Call(Node):
    function: str
    arguments: tuple[Node, ...]

    def evaluate(self, traits: TraitValues) -> Decimal:
        _least, _most, function = _FUNCTIONS[self.function]
        return function([argument.evaluate(traits) for argument in self.arguments])

    def names(self) -> frozenset[str]:
        found: frozenset[str] = frozenset()
        for argument in self.arguments:
            found |= argument.names()
        return found


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed expression with its source text."""

    text: str
    root: Node

    def evaluate(self, traits: TraitValues) -> Decimal:
        """Compute the value in ``DECIMAL_CONTEXT``; raises EvaluationError."""
        try:
            with localcontext(DECIMAL_CONTEXT):
                return +self.root.evaluate(traits)
        except EvaluationError as exc:
            raise EvaluationError(f"{self.text!r}: {exc}") from exc
        except DecimalException as exc:
            raise EvaluationError(f"{self.text!r}: {type(exc).__name__}") from exc

    def names(self) -> frozenset[str]:
        return self.root.names()

    @property
    def bare_trait(self) -> str | None:
        """The trait name when the whole expression is one trait, else None."""
        return self.root.name if isinstance(self.root, TraitName) else None


def parse_expression(text: str | int) -> Expression:
    """Parse an expression; raises ExpressionSyntaxError saying where and why."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise ExpressionSyntaxError(
            f"expected a text or an integer, got {type(text).__name__}"
        )
    source = str(text)
    if len(source) > MAX_EXPRESSION_CHARS:
        raise ExpressionSyntaxError(
            f"longer than {MAX_EXPRESSION_CHARS} characters ({len(source)})"
        )
    parser = _Parser(source, _tokenize(source))
    root = parser.expression(depth=0)
    parser.expect_end()
    return Expression(source, root)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    position: int


def _tokenize(source: str) -> list[_Token]:
    tokens = []
    position = 0
    while position < len(source):
        if source[position:].strip() == "":
            break
        match = _TOKEN.match(source, position)
        if match is None:
            offending = source[position:].lstrip()[:1]
            where = len(source) - len(source[position:].lstrip())
            raise ExpressionSyntaxError(
                f"unexpected character {offending!r} at position {where} in {source!r}"
            )
        kind = str(match.lastgroup)
        tokens.append(_Token(kind, match.group(kind), match.start(kind)))
        position = match.end()
    if not tokens:
        raise ExpressionSyntaxError("empty expression")
    return tokens


class _Parser:
    def __init__(self, source: str, tokens: list[_Token]) -> None:
        self._source = source
        self._tokens = tokens
        self._index = 0

    def _peek(self) -> _Token | None:
        if self._index < len(self._tokens):
            return self._tokens[self._index]
        return None

    def _take(self) -> _Token:
        token = self._peek()
        if token is None:
            raise ExpressionSyntaxError(
                f"unexpected end of {self._source!r}: an operand is missing"
            )
        self._index += 1
        return token

    def _fail(self, token: _Token, expected: str) -> ExpressionSyntaxError:
        return ExpressionSyntaxError(
            f"expected {expected} at position {token.position} in "
            f"{self._source!r}, found {token.text!r}"
        )

    def _is_op(self, *ops: str) -> bool:
        token = self._peek()
        return token is not None and token.kind == "op" and token.text in ops

    def expect_end(self) -> None:
        token = self._peek()
        if token is not None:
            raise self._fail(token, "an operator or the end")

    def expression(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise ExpressionSyntaxError(
                f"nested deeper than {MAX_DEPTH} levels in {self._source!r}"
            )
        node = self._term(depth)
        while self._is_op("+", "-"):
            op = self._take().text
            node = Binary(op, node, self._term(depth))
        return node

    def _term(self, depth: int) -> Node:
        node = self._unary(depth)
        while self._is_op("*", "/"):
            op = self._take().text
            node = Binary(op, node, self._unary(depth))
        return node

    def _unary(self, depth: int) -> Node:
        if self._is_op("-"):
            self._take()
            if depth > MAX_DEPTH:
                raise ExpressionSyntaxError(
                    f"nested deeper than {MAX_DEPTH} levels in {self._source!r}"
                )
            return Negation(self._unary(depth + 1))
        return self._atom(depth)

    def _atom(self, depth: int) -> Node:
        token = self._take()
        if token.kind == "number":
            return Number(Decimal(token.text))
        if token.kind == "name":
            if self._is_op("("):
                return self._call(token, depth)
            if token.text in _FUNCTIONS:
                raise self._fail(token, f"'(' after function {token.text}")
            return TraitName(token.text)
        if token.text == "(":
            node = self.expression(depth + 1)
            self._close(token)
            return node
        raise self._fail(token, "a number, a trait name or '('")

    def _call(self, name: _Token, depth: int) -> Node:
        if name.text not in _FUNCTIONS:
            known = ", ".join(_FUNCTIONS)
            raise ExpressionSyntaxError(
                f"unknown function {name.text!r} at position {name.position} in "
                f"{self._source!r}; known: {known}"
            )
        opening = self._take()
        arguments = [self.expression(depth + 1)]
        while self._is_op(","):
            self._take()
            arguments.append(self.expression(depth + 1))
        self._close(opening)
        least, most, _function = _FUNCTIONS[name.text]
        if not least <= len(arguments) <= most:
            wanted = "1 argument" if most == 1 else f"{least} to {most} arguments"
            raise ExpressionSyntaxError(
                f"{name.text}() takes {wanted}, got {len(arguments)} "
                f"in {self._source!r}"
            )
        return Call(name.text, tuple(arguments))

    def _close(self, opening: _Token) -> None:
        token = self._peek()
        if token is None:
            raise ExpressionSyntaxError(
                f"'(' at position {opening.position} in {self._source!r} "
                "is never closed"
            )
        if not self._is_op(")"):
            raise self._fail(token, "')'")
        self._take()
