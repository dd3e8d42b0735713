"""Every value zq carries comes back as the same type with the same contents (pure codec);
bytes that are not a value raise an Exception, never crash or hang."""

from __future__ import annotations

import datetime as dt
import decimal

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.apps.values_tasks import Box, Color, Point
from tests.values_strategies import canon, sendable, values
from zq.core import serde
from zq.core import values as v
from zq.errors import SerializationError


@settings(max_examples=400, deadline=None)
@given(sendable)
def test_every_value_round_trips(value):
    assert canon(v.unpack(v.pack(value))) == canon(value)


@settings(max_examples=200, deadline=None)
@given(st.lists(values, max_size=4).map(tuple), st.dictionaries(st.text(max_size=8), values,
                                                                  max_size=3))
def test_arguments_round_trip_through_the_payload(args, kwargs):
    got_args, got_kwargs = serde.decode_call(serde.encode_call(args, kwargs))
    assert canon(tuple(got_args)) == canon(args) and canon(got_kwargs) == canon(kwargs)
    assert serde.pack_call((args, kwargs)) == serde.encode_call(args, kwargs)


def test_the_findings_of_issue_13():
    assert serde.decode_value(serde.encode_value((0, 1))) == (0, 1)
    assert type(serde.decode_value(serde.encode_value((0, 1)))) is tuple
    args, _ = serde.decode_call(serde.encode_call(((1, 2), 2), {}))
    assert type(args[0]) is tuple
    assert serde.decode_value(serde.encode_value(16 ** 16)) == 16 ** 16


def test_native_values_keep_their_old_bytes():
    """Native values are still plain msgpack: a 1.1 peer reads them as before."""
    value = {"a": [1, 2.5, "x", b"y", None, True, {"n": -(2 ** 63)}], "u": 2 ** 64 - 1}
    assert v.pack(value) == msgpack.packb(value, use_bin_type=True)
    assert serde.encode_call((1, "a"), {"k": 2}) == msgpack.packb([[1, "a"], {"k": 2}])


def test_bytearray_and_memoryview_arrive_as_bytes():
    assert v.unpack(v.pack([bytearray(b"ab"), memoryview(b"cd")])) == [b"ab", b"cd"]
    with pytest.raises(SerializationError, match="C-contiguous"):
        serde.encode_value((memoryview(b"abcd")[::2],))  # a strided view: bytes(view) travels


def test_subclasses_travel_as_their_native_base():
    from collections import OrderedDict, namedtuple
    P = namedtuple("P", "a b")
    assert v.unpack(v.pack([OrderedDict(a=1), P(1, 2), IntSubclass(3)])) == [{"a": 1}, (1, 2), 3]


class IntSubclass(int):
    pass


def test_enum_members_and_flag_combinations():
    from tests.apps.values_tasks import Level, Perm
    for member in [Color.GREEN, Level.HIGH, Perm.R, Perm.R | Perm.X, Perm(0)]:
        back = v.unpack(v.pack(member))
        assert back is member or (back == member and type(back) is Perm)


def test_datetime_keeps_its_zone_and_fold():
    from zoneinfo import ZoneInfo
    when = dt.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Paris"))
    back = v.unpack(v.pack(when))
    assert back.tzinfo is ZoneInfo("Europe/Paris") and back.fold == 1
    assert back.utcoffset() == when.utcoffset()


def test_unsendable_values_say_what_can_be_sent():
    with pytest.raises(SerializationError, match="dataclasses"):
        serde.encode_value(object())
    with pytest.raises(SerializationError, match="zoneinfo"):
        serde.encode_value(dt.datetime(2024, 1, 1, tzinfo=_OddZone()))

    @__import__("dataclasses").dataclass
    class Local:
        x: int
    with pytest.raises(SerializationError, match="top level of a module"):
        serde.encode_value(Local(1))


class _OddZone(dt.tzinfo):
    def utcoffset(self, d):
        return dt.timedelta(0)


def test_dataclass_is_rebuilt_without_running_its_code():
    box = Box([1, (2, 3)], "b")
    box.hidden = 9
    back = v.unpack(v.pack(box))
    assert (back.items, back.label, back.hidden) == ([1, (2, 3)], "b", 9)
    assert v.unpack(v.pack(Point(1, Color.GREEN))) == Point(1, Color.GREEN)


# --- hostile input ------------------------------------------------------------------------

def _ext(code: int, data: bytes) -> bytes:
    return msgpack.packb(msgpack.ExtType(code, data))


@pytest.mark.parametrize("payload,match", [
    (_ext(99, b""), "unknown extension type 99"),
    (_ext(v.Ext.TUPLE, b"\x01"), "must hold an array"),
    (_ext(v.Ext.UUID, b"short"), "16 bytes"),
    (_ext(v.Ext.BIGINT, b""), "empty"),
    (_ext(v.Ext.DECIMAL, b"\xff"), "not a decimal"),
    (_ext(v.Ext.DATETIME, msgpack.packb([2024, 1, 1, 0, 0, 0, 0, 0, "../../etc/passwd"])),
     "TZPATH"),
    (_ext(v.Ext.DATETIME, msgpack.packb([2024, 1, 1, 0, 0, 0, 0, 0, "/etc/passwd"])), "absolute"),
    (_ext(v.Ext.DATE, msgpack.packb([2024, 13, 1])), "month"),
    (_ext(v.Ext.ENUM, msgpack.packb(["os:PathLike", "x"])), "not an Enum"),
    (_ext(v.Ext.ENUM, msgpack.packb(["never_imported_module_zq:Color", "RED"])), "not imported"),
    (_ext(v.Ext.ENUM, msgpack.packb(["tests.apps.values_tasks:Color.__class__", "RED"])),
     "does not name"),
    (_ext(v.Ext.ENUM, msgpack.packb(["tests.apps.values_tasks:zq", "RED"])), "defines no class"),
    (_ext(v.Ext.ENUM, msgpack.packb(["tests.apps.values_tasks:Color", "BLUE"])), "no member"),
    (_ext(v.Ext.ENUM, msgpack.packb(["tests.apps.values_tasks:Color", 1])), "no member"),
    (_ext(v.Ext.ENUM, msgpack.packb(["tests.apps.values_tasks:Perm", 8])), "invalid value"),
    (_ext(v.Ext.DATACLASS, msgpack.packb(["tests.apps.values_tasks:Color", {}])),
     "not a dataclass"),
    (_ext(v.Ext.DATACLASS, msgpack.packb(["tests.apps.values_tasks:Point", {"z": 1}])),
     "field names"),
    (_ext(v.Ext.NDARRAY, msgpack.packb(["|O8", [1], b"x" * 8])), "dtype"),
    (_ext(v.Ext.NDARRAY, msgpack.packb(["<f8", [2, 2], b"x" * 8])), "does not take"),
])
def test_malformed_extension_values_are_a_clear_error(payload, match):
    with pytest.raises(Exception, match=match) as err:
        v.unpack(payload)
    assert isinstance(err.value, (ValueError, TypeError, KeyError))


def test_hostile_nesting_is_refused_before_the_stack_runs_out():
    data = msgpack.packb(None)
    for _ in range(5000):
        data = _ext(v.Ext.TUPLE, msgpack.packb([msgpack.ExtType(v.Ext.TUPLE, data)]))
    with pytest.raises(ValueError, match="nest more than"):
        v.unpack(data)
    deep: tuple = ()
    for _ in range(v.MAX_DEPTH + 5):
        deep = (deep,)
    with pytest.raises(SerializationError, match="nest more than"):
        serde.encode_value(deep)


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=-128, max_value=127), st.binary(max_size=64))
def test_any_extension_bytes_decode_or_raise_an_exception(code, data):
    try:
        v.unpack(_ext(code, data))
    except Exception:  # noqa: BLE001, S110 - any Exception is this payload's error alone;
        pass  # a BaseException, a crash or a hang would end the loop that decodes it


def test_a_worker_rejects_a_call_that_is_not_args_and_kwargs():
    for bad in ([1], {"a": 1}, [(1,), {}]):
        with pytest.raises(ValueError, match="arguments must be"):
            serde.decode_call(v.pack(bad))


def test_decimal_keeps_sign_and_exponent():
    for text in ["-0.00", "1E+5", "sNaN", "-Infinity", "123.4560"]:
        assert str(v.unpack(v.pack(decimal.Decimal(text)))) == str(decimal.Decimal(text))
