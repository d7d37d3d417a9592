"""Arrow values as the Python objects their consumers expect: maps as dicts (Arrow hands them over as
lists of pairs, an empty map too), lists, structs and unions element by element, and leaves through a
per-type fix-up. Shared by the result writers (JSON, the terminal table) and the server backend's inserts.

Also the engine side of it: ``readable_type`` names the type a result column is cast to so that Arrow
carries the value a person reads, where the engine's own Arrow form of it does not.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pyarrow as pa

Converter = Callable[[Any], Any] | None


def _no_fixup(kind: pa.DataType) -> Converter:
    return None


def converter(kind: pa.DataType, leaf: Callable[[pa.DataType], Converter] = _no_fixup) -> Converter:
    """How to turn one non-null value of ``kind`` into plain Python; None where it passes as it is."""
    if pa.types.is_map(kind):
        key, item = converter(kind.key_type, leaf), converter(kind.item_type, leaf)
        return lambda v: {apply(key, k): apply(item, x) for k, x in v}
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        inner = converter(kind.value_type, leaf)
        return None if inner is None else (lambda v: [apply(inner, x) for x in v])
    if pa.types.is_struct(kind):
        fields = [(kind.field(i).name, converter(kind.field(i).type, leaf)) for i in range(kind.num_fields)]
        if all(convert is None for _, convert in fields):
            return None
        return lambda v: {name: apply(convert, v[name]) for name, convert in fields}
    if pa.types.is_union(kind):
        return _loose
    if pa.types.is_dictionary(kind):
        return converter(kind.value_type, leaf)
    return leaf(kind)


def _loose(value: Any) -> Any:
    """A union's value (a ClickHouse Variant), whose member Arrow does not say: lists of pairs, the only
    form in which Arrow hands over a map, become dicts."""
    if isinstance(value, list):
        if value and all(isinstance(x, tuple) and len(x) == 2 for x in value):
            return {k: _loose(x) for k, x in value}
        return [_loose(x) for x in value]
    if isinstance(value, dict):
        return {k: _loose(x) for k, x in value.items()}
    return value


def apply(convert: Converter, value: Any) -> Any:
    return value if convert is None or value is None else convert(value)


def python_values(column: pa.ChunkedArray | pa.Array, leaf: Callable[[pa.DataType], Converter] = _no_fixup,
                  invalid: str = "replace") -> list:
    """A column's values as Python objects, maps as dicts. Text that is not UTF-8 (a producer may write
    any bytes) is decoded with the ``invalid`` error handler instead of failing the whole output."""
    kind = column.type
    try:
        values = column.to_pylist()
    except UnicodeDecodeError:
        values = column.cast(_text_as_bytes(kind)).to_pylist()
        leaf = _decoding(leaf, invalid)
    convert = converter(kind, leaf)
    return values if convert is None else [apply(convert, v) for v in values]


def _text_as_bytes(kind: pa.DataType) -> pa.DataType:
    """``kind`` with every string in it as binary: the same values, not decoded."""
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return pa.binary()
    if pa.types.is_map(kind):
        return pa.map_(_text_as_bytes(kind.key_type), _text_as_bytes(kind.item_type))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return pa.list_(kind.value_field.with_type(_text_as_bytes(kind.value_type)))
    if pa.types.is_struct(kind):
        return pa.struct([kind.field(i).with_type(_text_as_bytes(kind.field(i).type)) for i in range(kind.num_fields)])
    if pa.types.is_dictionary(kind):
        return _text_as_bytes(kind.value_type)
    return kind


def _decoding(leaf: Callable[[pa.DataType], Converter], errors: str) -> Callable[[pa.DataType], Converter]:
    def fixup(kind: pa.DataType) -> Converter:
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            return lambda v: v.decode("utf-8", errors)
        return leaf(kind)

    return fixup


# The engine's result types whose Arrow form is not the value a reader means: an Enum is its code,
# IPv4 a number, IPv6 and the wide integers raw little-endian bytes (Arrow has no 128/256-bit integer;
# as text they keep every digit), BFloat16 two raw bytes, DateTime a count of seconds.
_AS_TEXT = frozenset({"Enum8", "Enum16", "IPv4", "IPv6", "Int128", "UInt128", "Int256", "UInt256"})
_AS = {"BFloat16": "Float32", "DateTime": "DateTime64(0, 'UTC')"}
_NAMED = re.compile(r"(`(?:[^`\\]|\\.)*`|[A-Za-z_][A-Za-z_0-9]*)\s+(\S.*)", re.DOTALL)


def readable_type(kind: str) -> str | None:
    """The type to CAST a result column of ClickHouse type ``kind`` to so that Arrow carries the value a
    person reads (inside Array, Map, Tuple, Nullable and LowCardinality too), or None when it already
    does. A Variant holding such a member is read as text: the engine casts a Variant only to a wider one."""
    readable = _readable(kind.strip())
    return None if readable == kind.strip() else readable


def _readable(kind: str) -> str:
    name, args = split_type(kind)
    if name in _AS_TEXT:
        return "String"
    if name in _AS:
        return _AS[name]
    inner = [_readable_element(a) if name == "Tuple" else _readable(a) for a in args]
    if inner == args:
        return kind
    if name in ("Array", "Map", "Nullable", "Tuple"):
        return f"{name}({', '.join(inner)})"
    if name == "LowCardinality":  # Arrow has no trace of it, and it does not hold every readable type
        return inner[0]
    return "String" if name == "Variant" else kind


def _readable_element(element: str) -> str:
    """A Tuple's element, ``name Type`` or ``Type``."""
    named = _NAMED.fullmatch(element)
    return f"{named.group(1)} {_readable(named.group(2))}" if named else _readable(element)


def split_type(kind: str) -> tuple[str, list[str]]:
    """``Map(String, Array(UInt8))`` -> ``("Map", ["String", "Array(UInt8)"])``, quotes respected."""
    name, paren, rest = kind.strip().partition("(")
    if not paren:
        return name, []
    args, start, depth, quote = [], 0, 0, ""
    body = rest[:rest.rfind(")")]
    index = 0
    while index < len(body):
        char = body[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = ""
        elif char in "'`":
            quote = char
        elif char in "()":
            depth += 1 if char == "(" else -1
        elif char == "," and depth == 0:
            args.append(body[start:index].strip())
            start = index + 1
        index += 1
    args.append(body[start:].strip())
    return name.strip(), args
