"""ClickHouse type names, parsed into a small tree.

``parse_type("Nullable(DateTime64(3, 'UTC'))")`` gives a :class:`ChType`
whose ``name`` is ``"Nullable"`` and whose one argument is the DateTime64.
Wrappers that change nothing about the values (``LowCardinality``,
``SimpleAggregateFunction``) stay in the tree or are dropped as noted below;
types the codec cannot carry losslessly raise
:class:`sidecar.errors.RequestError` naming the type.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace

from sidecar.errors import RequestError

__all__ = ["ChType", "parse_type"]

_INTEGERS = frozenset(
    f"{sign}Int{bits}" for sign in ("", "U") for bits in (8, 16, 32, 64, 128, 256)
)
_SIMPLE = _INTEGERS | {
    "Float32",
    "Float64",
    "Bool",
    "String",
    "UUID",
    "IPv4",
    "IPv6",
    "Date",
    "Date32",
    "DateTime",
    "Nothing",
}
_DECIMAL_PRECISION = {
    "Decimal32": 9,
    "Decimal64": 18,
    "Decimal128": 38,
    "Decimal256": 76,
}
_ONE_TYPE = frozenset({"Nullable", "LowCardinality", "Array"})

_TOKEN_RE = re.compile(
    r"""\s*(?:
        (?P<quoted>'(?:[^'\\]|\\.|'')*')
      | (?P<backquoted>`(?:[^`\\]|\\.|``)*`)
      | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<punct>[(),=])
    )""",
    re.VERBOSE | re.DOTALL,
)
_UNQUOTE_RE = re.compile(r"\\(.)|''|``", re.DOTALL)
_UNQUOTE_MAP = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "b": "\b", "f": "\f"}


@dataclass(frozen=True, slots=True)
class ChType:
    """One node of a parsed type.

    ``args`` holds element types (Nullable, LowCardinality, Array, Tuple,
    Map). ``field_names`` is set for named tuples. ``enum`` maps names to
    values in declaration order.
    """

    name: str
    text: str
    args: tuple[ChType, ...] = ()
    field_names: tuple[str, ...] = ()
    precision: int = 0
    scale: int = 0
    timezone: str = ""
    length: int = 0
    enum: tuple[tuple[str, int], ...] = ()


def _unquote(token: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return match.group(0)[0]
        return _UNQUOTE_MAP.get(match.group(1), match.group(1))

    return _UNQUOTE_RE.sub(replace, token[1:-1])


class _Parser:
    """Recursive descent over the tokens of one type name."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.ends: list[int] = []
        self.tokens = self._tokenize(text)
        self.pos = 0

    def _tokenize(self, text: str) -> list[tuple[str, str]]:
        tokens: list[tuple[str, str]] = []
        pos = 0
        while text[pos:].strip():
            match = _TOKEN_RE.match(text, pos)
            if match is None or match.lastgroup is None:
                raise self._error(f"unexpected text at {text[pos:].strip()!r}")
            tokens.append((match.lastgroup, match.group(match.lastgroup)))
            self.ends.append(match.end())
            pos = match.end()
        return tokens

    def _error(self, reason: str) -> RequestError:
        return RequestError(f"cannot parse ClickHouse type {self.text!r}: {reason}")

    def _unsupported(self, name: str) -> RequestError:
        if self.text.startswith(name):
            return RequestError(f"unsupported ClickHouse type {self.text!r}")
        return RequestError(f"unsupported ClickHouse type {name!r} in {self.text!r}")

    def peek(self, offset: int = 0) -> tuple[str, str]:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else ("end", "")

    def take(self, kind: str, value: str | None = None) -> str:
        token_kind, token = self.peek()
        if token_kind != kind or (value is not None and token != value):
            raise self._error(f"expected {value or kind}, found {token or 'the end'}")
        self.pos += 1
        return token

    def accept(self, value: str) -> bool:
        if self.peek() == ("punct", value):
            self.pos += 1
            return True
        return False

    def whole(self) -> ChType:
        node = self.type_()
        if self.peek()[0] != "end":
            raise self._error(f"unexpected {self.peek()[1]!r}")
        return node

    def type_(self) -> ChType:
        start = self.ends[self.pos - 1] if self.pos else 0
        name = self.take("ident")
        if not self.accept("("):
            return self._plain(name)
        node = self._with_args(name)
        self.take("punct", ")")
        if node.text:
            return node  # SimpleAggregateFunction(f, T) is T, text and all
        return replace(node, text=self.text[start : self.ends[self.pos - 1]].strip())

    def _plain(self, name: str) -> ChType:
        if name in _SIMPLE:
            return ChType(name, name)
        if name == "DateTime64":
            raise self._error("DateTime64 needs a precision")
        raise self._unsupported(name)

    def _with_args(self, name: str) -> ChType:
        if name in _ONE_TYPE:
            return ChType(name, "", args=(self.type_(),))
        if name == "Map":
            key = self.type_()
            self.take("punct", ",")
            return ChType(name, "", args=(key, self.type_()))
        if name == "Tuple":
            return self._tuple()
        if name == "SimpleAggregateFunction":
            return self._simple_aggregate()
        return self._parametric(name)

    def _tuple(self) -> ChType:
        names: list[str] = []
        elements: list[ChType] = []
        while True:
            if self.peek()[0] in ("ident", "backquoted") and self.peek(1)[0] in (
                "ident",
                "backquoted",
            ):
                names.append(self._field_name())
            elements.append(self.type_())
            if not self.accept(","):
                break
        if names and len(names) != len(elements):
            raise self._error("a tuple names all its elements or none")
        return ChType("Tuple", "", tuple(elements), tuple(names))

    def _field_name(self) -> str:
        kind, token = self.peek()
        self.pos += 1
        return _unquote(token) if kind == "backquoted" else token

    def _simple_aggregate(self) -> ChType:
        self.take("ident")
        if self.accept("("):
            self._skip_balanced()
        self.take("punct", ",")
        return self.type_()

    def _skip_balanced(self) -> None:
        depth = 1
        while depth:
            kind, token = self.peek()
            if kind == "end":
                raise self._error("unbalanced parentheses")
            depth += {"(": 1, ")": -1}.get(token, 0) if kind == "punct" else 0
            self.pos += 1

    def _parametric(self, name: str) -> ChType:
        if name == "FixedString":
            return ChType(name, "", length=self._int())
        if name == "DateTime":
            return ChType(name, "", timezone=_unquote(self.take("quoted")))
        if name == "DateTime64":
            return self._datetime64()
        if name == "Decimal":
            precision = self._int()
            scale = self._int() if self.accept(",") else 0
            return ChType(name, "", precision=precision, scale=scale)
        if name in _DECIMAL_PRECISION:
            precision = _DECIMAL_PRECISION[name]
            return ChType("Decimal", "", precision=precision, scale=self._int())
        if name in ("Enum8", "Enum16", "Enum"):
            return ChType(name, "", enum=self._enum())
        raise self._unsupported(name)

    def _int(self) -> int:
        token = self.take("number")
        if not token.lstrip("-").isdigit():
            raise self._error(f"expected an integer, found {token}")
        return int(token)

    def _datetime64(self) -> ChType:
        precision = self._int()
        if not 0 <= precision <= 9:
            raise self._error("DateTime64 precision must be 0..9")
        timezone = _unquote(self.take("quoted")) if self.accept(",") else ""
        return ChType("DateTime64", "", precision=precision, timezone=timezone)

    def _enum(self) -> tuple[tuple[str, int], ...]:
        members: list[tuple[str, int]] = []
        while True:
            label = _unquote(self.take("quoted"))
            value = self._int() if self.accept("=") else len(members) + 1
            members.append((label, value))
            if not self.accept(","):
                return tuple(members)


@functools.lru_cache(maxsize=1024)
def parse_type(text: str) -> ChType:
    """Parse a ClickHouse type name such as ``Map(String, Array(UInt8))``.

    ``SimpleAggregateFunction(f, T)`` becomes ``T``. Nested, AggregateFunction,
    Object, JSON, Variant, Dynamic and any other unknown type raise
    :class:`RequestError` naming the type.
    """
    return _Parser(text).whole()
