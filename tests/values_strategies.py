"""Hypothesis strategies for every Python value zq carries (docs/PROTOCOL.md §2.1), and
`canon`, a form of a value that two values share only if they are the same type all the
way down (a tuple is not a list, 1 is not True, -0.0 is not 0.0, a time zone is kept)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
from typing import Any

from hypothesis import strategies as st

from tests.apps.values_tasks import Box, Color, Level, Perm, Point

try:
    import numpy as np
    from hypothesis.extra import numpy as hnp
except ImportError:  # numpy is optional: arrays are then left out
    np = None


def canon(x: Any) -> Any:
    kind = type(x)
    if kind in (list, tuple):
        return (kind.__name__, [canon(i) for i in x])
    if kind in (set, frozenset):
        return (kind.__name__, sorted((canon(i) for i in x), key=repr))
    if kind is dict:
        return ("dict", sorted(((canon(k), canon(v)) for k, v in x.items()), key=repr))
    if kind in (bytearray, memoryview):  # sent as bin, they arrive as bytes (§2.1)
        return ("bytes", bytes(x))
    if kind in (float, complex):
        return (kind.__name__, repr(x))  # -0.0 and nan as themselves
    if kind is decimal.Decimal:
        return ("Decimal", str(x))
    if kind in (dt.datetime, dt.time):
        return (kind.__name__, x.isoformat(), x.fold, _tz(x.tzinfo))
    if isinstance(x, enum.Enum):
        return ("enum", kind.__qualname__, x.name)
    if dataclasses.is_dataclass(x):
        return (kind.__qualname__, [(f.name, canon(getattr(x, f.name)))
                                    for f in dataclasses.fields(x)])
    if np is not None and kind is np.ndarray:
        return ("ndarray", x.dtype.str, x.shape, x.tobytes(), x.flags.writeable)
    return (kind.__name__, x)


def _tz(tz: Any) -> Any:
    if tz is None:
        return None
    if type(tz) is dt.timezone:
        return ("fixed", tz.utcoffset(None), tz.tzname(None))
    return ("zone", tz.key)


fixed_zones = st.builds(
    dt.timezone,
    st.timedeltas(min_value=-dt.timedelta(hours=23, minutes=59),
                  max_value=dt.timedelta(hours=23, minutes=59)),
) | st.builds(dt.timezone, st.timedeltas(min_value=-dt.timedelta(hours=12),
                                          max_value=dt.timedelta(hours=12)),
              st.text(min_size=1, max_size=8))
zones = st.none() | fixed_zones | st.timezones()

big_ints = st.integers() | st.integers(min_value=-(2 ** 300), max_value=2 ** 300) | \
    st.sampled_from([2 ** 64 - 1, 2 ** 64, -(2 ** 63), -(2 ** 63) - 1, 16 ** 16])

hashable_scalars = (
    st.none() | st.booleans() | big_ints | st.floats() | st.text() | st.binary()
    | st.complex_numbers() | st.decimals(allow_nan=False) | st.uuids()
    | st.datetimes(timezones=zones) | st.dates() | st.times(timezones=zones)
    | st.timedeltas() | st.sampled_from(list(Color) + list(Level) + [Perm(n) for n in range(8)])
)
# Decimal("sNaN") cannot be hashed, so NaNs are only where no hash is taken
scalars = hashable_scalars | st.decimals(allow_nan=True, allow_infinity=True)

hashables = st.recursive(
    hashable_scalars,
    lambda inner: st.tuples(inner, inner) | st.lists(inner, max_size=3).map(tuple)
    | st.frozensets(inner, max_size=3) | st.builds(Point, inner, inner),
    max_leaves=8,
)


def _arrays() -> Any:
    dtypes = (hnp.boolean_dtypes() | hnp.integer_dtypes() | hnp.unsigned_integer_dtypes()
              | hnp.floating_dtypes() | hnp.complex_number_dtypes()
              | hnp.datetime64_dtypes() | hnp.timedelta64_dtypes()
              | hnp.byte_string_dtypes(min_len=1) | hnp.unicode_string_dtypes(min_len=1))
    return hnp.arrays(dtypes, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))


def _big_arrays() -> Any:
    """Arrays of sizes around values.ARRAY_FRAME (16 KiB), where they start to travel as
    frames of their own (protocol 1.4): below, at and above it, C order or not."""
    from zq.core.values import ARRAY_FRAME

    def build(dtype: str, nbytes: int, seed: int, order: str) -> Any:
        d = np.dtype(dtype)
        count = max(1, nbytes // d.itemsize)
        raw = np.random.default_rng(seed).bytes(count * d.itemsize)
        a = np.frombuffer(raw, dtype=d).copy()
        if d.kind == "b":
            a = a.view(np.uint8) % 2 == 1
        if order == "F" and count % 2 == 0:
            a = np.asfortranarray(a.reshape(2, -1))
        elif order == "strided" and count > 1:
            a = a[::2]
        return a

    sizes = st.sampled_from([ARRAY_FRAME - 8, ARRAY_FRAME, ARRAY_FRAME + 8, 3 * ARRAY_FRAME])
    return st.builds(build, st.sampled_from(["<f8", ">i4", "|u1", "|b1", "<c16", "<M8[us]"]),
                     sizes, st.integers(0, 2**32 - 1), st.sampled_from(["C", "F", "strided"]))


leaves = scalars | hashables
if np is not None:
    leaves = leaves | _arrays() | _big_arrays()

values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.lists(inner, max_size=4).map(tuple)
    | st.dictionaries(hashables, inner, max_size=4)
    | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    | st.sets(hashables, max_size=4) | st.frozensets(hashables, max_size=4)
    | st.builds(Point, inner, inner) | st.builds(Box, st.lists(inner, max_size=3), st.text()),
    max_leaves=20,
)

# What a client may send besides: bytearray and memoryview travel as bin and arrive as
# bytes (docs/PROTOCOL.md §2.1), which canon counts them as. Not hashable, so never keys.
byte_buffers = st.binary(max_size=32).map(bytearray) | st.binary(max_size=32).map(memoryview)
sendable = values | st.recursive(
    byte_buffers,
    lambda inner: st.lists(inner | values, max_size=3) | st.lists(inner, max_size=3).map(tuple)
    | st.dictionaries(hashables, inner, max_size=3) | st.builds(Point, inner, values),
    max_leaves=6,
)
