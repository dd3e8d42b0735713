"""zq.preview.preview_payload (the `get` query's argument preview, issue 15): for any
bytes, any payload zq makes and any cut of one it returns a str of at most `limit`
characters and never raises; it builds nothing a payload names (no class looked up,
no module imported); plain arguments read as Python writes them."""

from __future__ import annotations

import sys

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.values_strategies import values
from zq.core import serde
from zq.core import values as v
from zq.core.detail import ARGS_HEAD, head
from zq.preview import preview_payload

limits = st.integers(min_value=1, max_value=600)


@pytest.fixture(autouse=True)
def _nothing_is_looked_up(monkeypatch):
    """A preview must never look a class up (an Enum's, a dataclass's) to build it."""
    def refuse(*args, **kwargs):
        raise AssertionError("the preview looked a class up")
    monkeypatch.setattr(v, "find_class", refuse)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600), st.integers(min_value=-5, max_value=10_000), limits,
       st.booleans())
def test_any_bytes_give_a_bounded_text(data, size, limit, call):
    text = preview_payload(data, size, limit, call=call)
    assert type(text) is str and 1 <= len(text) <= limit


@settings(max_examples=300, deadline=None)
@given(st.lists(values, max_size=4), st.dictionaries(st.text(max_size=8), values, max_size=3),
       limits, st.data())
def test_every_call_and_every_cut_of_it_gives_a_bounded_text(args, kwargs, limit, data):
    payload = v.pack_parts([args, kwargs])
    whole, size = head(payload, 1 << 30)
    cut = data.draw(st.integers(min_value=0, max_value=len(whole)))
    for part in (whole, whole[:cut], head(payload, ARGS_HEAD)[0]):
        text = preview_payload(part, size, limit)
        assert type(text) is str and 1 <= len(text) <= limit


@settings(max_examples=300, deadline=None)
@given(values, limits)
def test_every_value_gives_a_bounded_text(value, limit):
    data, size = head(v.pack_parts(value), ARGS_HEAD)
    text = preview_payload(data, size, limit, call=False)
    assert type(text) is str and 1 <= len(text) <= limit


plain = st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.text(max_size=20) \
    | st.floats(allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(plain, max_size=5),
       st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True), plain,
                       max_size=3))
def test_plain_arguments_read_as_python_writes_them(args, kwargs):
    payload = serde.encode_call(args, kwargs)
    shown = ", ".join([*map(repr, args), *(f"{k}={x!r}" for k, x in kwargs.items())])
    assert preview_payload(payload, len(payload), 100_000) == f"({shown})"


def test_a_cut_payload_shows_its_start_then_an_ellipsis():
    payload = serde.encode_call([1, "two", list(range(1000))], {})
    text = preview_payload(payload[:20], len(payload))
    assert text.startswith("(1, 'two', [0, 1, 2") and text.endswith("…")


def test_a_long_preview_ends_with_an_ellipsis_at_its_limit():
    payload = serde.encode_call(["x" * 1000], {})
    text = preview_payload(payload, len(payload), 50)
    assert len(text) == 50 and text.startswith("('xxx") and text.endswith("…")


def test_classes_and_modules_named_show_as_tags_and_are_never_imported():
    missing = "zq_no_such_module_for_preview"
    enum_ext = msgpack.ExtType(12, msgpack.packb([f"{missing}:Color", "RED"]))
    data_ext = msgpack.ExtType(13, msgpack.packb([f"{missing}:Point", {"x": 1}]))
    ref_ext = msgpack.ExtType(16, msgpack.packb("task-1"))
    array_ext = msgpack.ExtType(14, msgpack.packb(["<f8", [2, 3], b"\0" * 48]))
    payload = msgpack.packb([[enum_ext, data_ext, ref_ext, array_ext], {}])
    text = preview_payload(payload, len(payload))
    assert text == (f"(<enum {missing}:Color.RED>, <dataclass {missing}:Point>(x=1), "
                    "<result of task task-1>, <ndarray <f8 [2, 3]>)")
    assert missing not in sys.modules


def test_bytes_that_are_not_msgpack_show_in_hex():
    assert preview_payload(b"\xc1\x00\xff", 3) == "<bytes from 0: c1 00 ff>"


def test_an_unknown_extension_type_shows_as_a_tag():
    payload = msgpack.packb([[msgpack.ExtType(99, b"abc")], {}])
    assert preview_payload(payload, len(payload)) == "(<ext 99: 3 bytes>)"


@pytest.mark.parametrize("long", ["é" * 3000 + "end", b"\x01" * 9000])
def test_a_long_str_or_bytes_cut_short_in_the_head_shows_its_start(long):
    """A document passed as an argument is longer than the head the master keeps: the
    preview shows how it starts, not a bare ellipsis."""
    payload = serde.encode_call([1, long], {"k": 2})
    text = preview_payload(*head(payload, ARGS_HEAD), 100)
    start = repr(long[:5])[:-1]
    assert text.startswith(f"(1, {start}") and text.endswith("…") and len(text) <= 100, text
