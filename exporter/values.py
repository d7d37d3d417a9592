"""Arrow values as the Python objects their consumers expect: maps as dicts (Arrow hands them over as
lists of pairs, an empty map too), lists element by element, and leaves through a per-type fix-up.
Shared by the result writers (JSON, the terminal table) and the server backend's inserts."""

from __future__ import annotations

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
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        inner = converter(kind.value_type, leaf)
        return None if inner is None else (lambda v: [apply(inner, x) for x in v])
    return leaf(kind)


def apply(convert: Converter, value: Any) -> Any:
    return value if convert is None or value is None else convert(value)


def python_values(column: pa.ChunkedArray | pa.Array,
                  leaf: Callable[[pa.DataType], Converter] = _no_fixup) -> list:
    """A column's values as Python objects, maps as dicts."""
    convert = converter(column.type, leaf)
    values = column.to_pylist()
    return values if convert is None else [apply(convert, v) for v in values]
