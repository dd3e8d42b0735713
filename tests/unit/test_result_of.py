"""zq.result_of(id) (issue 17, `zq submit --arg-from`): a task's result by its id stands
among another task's arguments as a future of that task does."""

from __future__ import annotations

import pytest

import zq
from zq.core import serde
from zq.core.parts import Refs


def test_a_result_by_id_packs_as_a_reference_and_names_the_input():
    packed = serde.pack_submit_call(((zq.result_of("a-1"), 2), {"k": zq.result_of("b-2")}))
    assert type(packed) is Refs and packed.refs == ["a-1", "b-2"]
    # The worker's side: each reference replaced by the input's result value.
    got = serde.decode_call(Refs(packed.payload, [("a-1", serde.encode_value([1, 2])),
                                                  ("b-2", serde.encode_value("x"))]))
    assert got == ([[1, 2], 2], {"k": "x"})


def test_the_same_id_twice_is_one_input():
    packed = serde.pack_submit_call(((zq.result_of("a"), zq.result_of("a")), {}))
    assert type(packed) is Refs and packed.refs == ["a"]


@pytest.mark.parametrize("bad", ["", "x" * 129, 7, None])
def test_a_bad_id_is_refused_before_anything_is_sent(bad):
    with pytest.raises(zq.ConfigError, match="a task id is a non-empty string"):
        zq.result_of(bad)


def test_it_cannot_stand_in_a_result():
    with pytest.raises(TypeError, match="only in a task's arguments"):
        serde.encode_value(zq.result_of("a"))
