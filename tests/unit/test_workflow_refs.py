"""References to other tasks' results in a call's arguments (issue 17, protocol 1.4):
extension type 16 in the client's payload, the TASK entry's 7th field carrying the
results, the process pool's pipe, and the worker's substitution (serde.decode_call).
The results are packed by the value rules of §2.1, frames of their own included."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.values_strategies import canon
from tests.values_strategies import values as any_values
from zq.core import codec, serde
from zq.core import messages as m
from zq.core import values as v
from zq.core.messages import Cmd, Role
from zq.core.parts import Parts, Refs, largest_frame
from zq.errors import ProtocolError
from zq.pools import pipe


class Fut:
    """Stands for the client's Future (which registers itself the same way)."""

    def __init__(self, id: str) -> None:
        self.id = id


v.refer_with(Fut, lambda f: f.id)


def _submit_payload(args: list[Any], kwargs: dict[str, Any]) -> Any:
    return serde.pack_submit_call((args, kwargs))


def _as_worker(packed: Refs, results: dict[str, Any]) -> Any:
    """What a worker decodes: the call with each referred task's result payload."""
    return serde.decode_call(Refs(packed.payload, [(i, serde.encode_value(results[i]))
                                                   for i in packed.refs]))


def test_futures_positional_keyword_and_nested_become_references_once_each() -> None:
    a, b, c = Fut("a"), Fut("b"), Fut("c")
    packed = _submit_payload([a, [1, {"k": b}], (a,)], {"key": c})
    assert type(packed) is Refs and packed.refs == ["a", "b", "c"]
    args, kwargs = _as_worker(packed, {"a": 10, "b": "bee", "c": [1, 2]})
    assert args == [10, [1, {"k": "bee"}], (10,)] and kwargs == {"key": [1, 2]}


def test_a_call_without_futures_is_packed_as_before() -> None:
    assert _submit_payload([1, "x"], {}) == msgpack.packb([[1, "x"], {}])
    assert type(_submit_payload([(1, 2)], {})) is bytes


def test_a_future_outside_a_submit_cannot_be_packed() -> None:
    """A result (or a payload packed without collecting references) holding a future."""
    with pytest.raises(Exception, match="stand only in a task's arguments"):
        serde.encode_value([Fut("a")])


def test_a_reference_the_task_did_not_bring_fails_the_decoding() -> None:
    packed = _submit_payload([Fut("a")], {})
    with pytest.raises(ValueError, match="result of task a, which did not come"):
        serde.decode_call(packed.payload)
    with pytest.raises(ValueError, match="did not come"):
        serde.decode_call(Refs(packed.payload, [("b", serde.encode_value(1))]))


def test_a_reference_inside_a_result_is_not_followed() -> None:
    """A hostile result payload referring to a task (itself) must not recurse."""
    packed = _submit_payload([Fut("a")], {})
    evil = msgpack.packb(msgpack.ExtType(16, msgpack.packb("a")))
    with pytest.raises(ValueError, match="did not come"):
        serde.decode_call(Refs(packed.payload, [("a", evil)]))


def test_a_reference_must_hold_a_task_id() -> None:
    bad = msgpack.packb([[msgpack.ExtType(16, msgpack.packb(5))], {}])
    with pytest.raises(ValueError, match="must hold a task id"):
        serde.decode_call(Refs(bad, [("5", b"\x01")]))


def test_results_with_frames_of_their_own_are_substituted() -> None:
    np = pytest.importorskip("numpy")
    big = np.arange(10_000, dtype="<f8")  # 80 KB: a frame of its own
    result = serde.encode_value({"x": big})
    assert type(result) is Parts
    packed = _submit_payload([Fut("a"), Fut("b")], {})
    args, _ = serde.decode_call(Refs(packed.payload, [("a", result),
                                                      ("b", serde.encode_value(3))]))
    assert (args[0]["x"] == big).all() and args[1] == 3


def _wire(frames: list[Any]) -> list[Any]:
    return [bytes(frames[0]), bytes(frames[1]), *(memoryview(bytes(f)) for f in frames[2:])]


@settings(max_examples=60, deadline=None)
@given(st.lists(any_values, min_size=1, max_size=4), st.booleans())
def test_a_task_with_references_round_trips_through_codec_and_pipe(results: list[Any],
                                                                    big_args: bool) -> None:
    futs = [Fut(f"in{i}") for i in range(len(results))]
    packed = _submit_payload([*futs, b"p" * (70_000 if big_args else 3)], {"all": futs})
    payloads = [(f.id, serde.encode_value(r)) for f, r in zip(futs, results)]
    sent = m.Task([("t", 1, "app:f", Refs(packed.payload, payloads), None, None),
                   ("plain", 1, "app:f", b"\x92\x90\x80", None, None)])
    frames = codec.encode(Role.MASTER, sent)
    _, got = codec.decode(_wire(frames))
    entry = got.entries[0]
    assert got.entries[1][3] == b"\x92\x90\x80"  # a plain entry stays plain
    through = pipe.unpacker()
    through.feed(pipe.packb(entry))
    (entry,) = list(through)
    args, kwargs = serde.decode_call(entry[3])
    assert canon(args[:len(results)]) == canon(results)
    assert canon(kwargs["all"]) == canon(results)


def test_an_older_worker_sees_a_plain_payload_and_the_reference_fails_its_task() -> None:
    """A 1.3 worker reads six fields of a TASK entry: the arguments alone, whose
    reference (an extension type it does not know) fails that task only."""
    packed = _submit_payload([Fut("a")], {})
    frames = codec.encode(Role.MASTER, m.Task([("t", 1, "app:f", Refs(
        packed.payload, [("a", serde.encode_value(1))]), None, None)]))
    header = msgpack.unpackb(frames[1])
    entry = header[1][0]
    assert len(entry) == 7 and entry[3] == packed.payload and entry[6] == [["a", b"\x01"]]


@pytest.mark.parametrize("inputs, why", [
    ("x", "TASK inputs"),
    ([["a"]], "each must be"),
    ([[5, b"\x01"]], "input task id"),
    ([["a", None]], "payload must be"),
])
def test_bad_task_inputs_are_refused(inputs: Any, why: str) -> None:
    header = msgpack.packb([int(Cmd.TASK), [["t", 1, "app:f", b"\x90", None, None, inputs]]])
    with pytest.raises(ProtocolError, match=why):
        codec.decode([codec.SIGNATURES[Role.MASTER], header])


def test_the_submit_option_inputs_is_checked() -> None:
    entries = [["t", "app:f", b"\x90", {"inputs": ["a", "b"]}],
               ["u", "app:f", b"\x90", {"inputs": "a"}],
               ["w", "app:f", b"\x90", {"inputs": [3]}]]
    _, got = codec.decode([codec.SIGNATURES[Role.CLIENT],
                           msgpack.packb([int(Cmd.SUBMIT), entries])])
    assert [e[0] for e in got.entries] == ["t"]
    assert [b[0] for b in got.bad] == ["u", "w"]


def test_refs_sizes_count_every_result() -> None:
    r = Refs(b"x" * 10, [("a", b"y" * 100), ("b", Parts(b"z", [b"f" * 1000]))])
    assert largest_frame(r) == 1000 and len(r) == 10 + 100 + 1001
