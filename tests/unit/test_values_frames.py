"""numpy arrays as frames of their own (protocol 1.4, issue 13): values.pack_parts takes
arrays of ARRAY_FRAME bytes or more out of the msgpack body as views (no copy), unpack
rebuilds them over their frames (no copy when a frame is writable, as ZeroMQ's are), the
codec carries a Parts payload as [body, frame indexes...] in every command that has
payloads, a store keeps it as one blob, and a peer's bad frame references refuse that
entry alone."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.values_strategies import canon
from zq.core import codec, outbox, values
from zq.core import messages as m
from zq.core.messages import Cmd, Role
from zq.core.parts import MAX_PAYLOAD_FRAMES, Parts, from_blob
from zq.errors import ProtocolError

np = pytest.importorskip("numpy", reason="numpy is not installed (pip install -e '.[test]')")

T = values.ARRAY_FRAME


def _writable_frames(p: Parts) -> Parts:
    """p as a peer receives it: each frame a writable buffer of its own (ZeroMQ's)."""
    return Parts(bytes(p.body), [memoryview(bytearray(f)) for f in p.frames])


# --- values -------------------------------------------------------------------------


def test_a_large_array_is_a_view_not_a_copy_and_a_small_one_stays_inline():
    big = np.arange(T // 8, dtype="<f8")  # exactly ARRAY_FRAME bytes
    small = np.arange(T // 8 - 1, dtype="<f8")
    p = values.pack_parts([big, small])
    assert type(p) is Parts and len(p.frames) == 1
    assert np.shares_memory(np.frombuffer(p.frames[0], np.uint8), big)  # no copy
    assert values.pack_parts([small]) == values.pack([small])  # as before 1.4: ext 14
    assert type(values.pack([big])) is bytes  # pack() (error payloads) never makes frames


def test_an_array_is_rebuilt_over_its_frame_writable_and_without_a_copy():
    a = np.arange(10_000, dtype=">i4").reshape(100, 100)
    received = _writable_frames(values.pack_parts((a, "x")))
    got = values.unpack(received)
    arr = got[0]
    assert type(got) is tuple and arr.dtype == a.dtype and arr.shape == (100, 100)
    assert (arr == a).all() and arr.flags.writeable
    # over the received frame's own memory: not copied
    assert np.shares_memory(arr, np.frombuffer(received.frames[0], np.uint8))
    arr[0, 0] = 7  # writable as an unpickled array is


def test_a_read_only_frame_is_copied_once_so_the_array_is_still_writable():
    a = np.ones(T, dtype=np.uint8)
    p = values.pack_parts(a)
    arr = values.unpack(Parts(p.body, [bytes(p.frames[0])]))
    assert arr.flags.writeable and (arr == a).all()


def test_non_contiguous_fortran_and_nested_arrays():
    base = np.arange(4 * T, dtype="<i8").reshape(64, -1)
    value = {"f": np.asfortranarray(base), "s": base[:, ::2], "t": ([base.T],)}
    p = values.pack_parts(value)
    assert type(p) is Parts and len(p.frames) == 3
    got = values.unpack(_writable_frames(p))
    assert canon(got) == canon(value)


def test_arrays_past_the_frame_limit_of_a_payload_go_inline():
    arrays = [np.zeros(T, np.uint8) for _ in range(MAX_PAYLOAD_FRAMES + 2)]
    p = values.pack_parts(arrays)
    assert type(p) is Parts and len(p.frames) == MAX_PAYLOAD_FRAMES
    assert len(p.body) > 2 * T  # the last two are in the body
    assert all((x == 0).all() for x in values.unpack(p))


@pytest.mark.parametrize("refs, why", [
    ([["<f8", [2], 1]], "refers to frame 1 of its payload, which has 1 frames"),
    ([["<f8", [2], -1]], "refers to frame -1"),
    ([["<f8", [2], "0"]], "refers to frame 0"),
    ([["<f8", [3], 0]], "does not take 16 bytes"),
    ([["|O8", [2], 0]], "not a numpy dtype zq sends"),
    ([["<f8", [-2], 0]], "shape must be"),
])
def test_a_bad_frame_reference_in_a_value_is_refused(refs, why):
    body = msgpack.packb([msgpack.ExtType(15, msgpack.packb(r)) for r in refs])
    with pytest.raises(ValueError, match=why):
        values.unpack(Parts(body, [bytearray(16)]))
    with pytest.raises(ValueError, match="which has 0 frames"):  # frames outside a Parts
        values.unpack(msgpack.packb(msgpack.ExtType(15, msgpack.packb(["<f8", [2], 0]))))


_NUMERIC = ["|b1", "|i1", "<i2", ">i4", "<i8", "|u1", ">u2", "<u8", "<f2", ">f4", "<f8",
            "<c8", ">c16", "<M8[ns]", ">m8[s]"]


@st.composite
def sized_arrays(draw: Any) -> Any:
    """Arrays of every kind zq sends, of sizes around ARRAY_FRAME, in C or Fortran order,
    contiguous or not."""
    dtype = np.dtype(draw(st.sampled_from(_NUMERIC + ["|S3", "<U2", ">U5"])))
    target = draw(st.sampled_from([0, T - 1, T, T + 1, 2 * T]) | st.integers(0, 3 * T))
    count = max(1, target // dtype.itemsize + draw(st.integers(-1, 1)))
    rows = draw(st.sampled_from([1, 2, 3, count]))
    count -= count % rows
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if dtype.kind in "SU":
        flat = np.array(["ab", "z", ""] * count, dtype=dtype)[:count]
    elif dtype.kind == "b":
        flat = rng.integers(0, 2, count).astype(bool)
    else:  # any bit pattern: NaNs, NaTs and all (compared as bytes)
        flat = np.frombuffer(rng.bytes(count * dtype.itemsize), dtype=dtype).copy()
    a = flat.reshape(rows, -1) if rows and count else flat
    how = draw(st.sampled_from(["c", "f", "strided"]))
    if how == "f":
        a = np.asfortranarray(a)
    elif how == "strided" and a.ndim == 2 and a.shape[1] > 1:
        a = a[:, ::2]
    return a


@settings(max_examples=150, deadline=None)
@given(st.lists(sized_arrays(), min_size=1, max_size=3))
def test_round_trip_of_arrays_around_the_threshold(arrays):
    p = values.pack_parts(arrays)
    framed = [a for a in arrays if a.nbytes >= T]
    assert (type(p) is Parts) == bool(framed)
    if type(p) is Parts:
        assert [f.nbytes for f in p.frames] == [a.nbytes for a in framed]
        for got in (values.unpack(_writable_frames(p)), values.unpack(from_blob(p.to_blob()))):
            assert canon(got) == canon([np.ascontiguousarray(a) for a in arrays])
    else:
        assert canon(values.unpack(p)) == canon([np.ascontiguousarray(a) for a in arrays])


# --- the stored form ------------------------------------------------------------------


def test_a_parts_survives_its_blob_and_other_payloads_pass_through():
    p = Parts(b"\x91\x01", [b"abc", memoryview(bytearray(b"defg"))])
    blob = p.to_blob()
    assert blob[:1] == b"\xc1" and from_blob(blob) == p
    assert len(p) == 2 + 3 + 4
    for plain in (b"", b"\x91\x01", b"\xc1", b"\xc1garbage", blob[:-1], blob + b"x"):
        assert from_blob(plain) is plain  # not a whole blob of ours: as it came


# --- the codec ------------------------------------------------------------------------


def _parts(n_frames: int, size: int = 100) -> Parts:
    return Parts(msgpack.packb([1]), [bytes([i % 256]) * size for i in range(n_frames)])


def _wire(frames: list[Any]) -> list[Any]:
    """Frames as drain() gives them to decode: payload frames as buffers."""
    return [bytes(frames[0]), bytes(frames[1]), *(memoryview(bytes(f)) for f in frames[2:])]


def _same(a: Any, b: Any) -> bool:
    return a == b if type(a) is Parts else bytes(a) == bytes(b)


@pytest.mark.parametrize("role, msg, at", [
    (Role.CLIENT, m.Submit([("a", "t", _parts(2), {}), ("b", "t", b"x" * 70_000, {}),
                            ("c", "t", Parts(b"y" * 70_000, [b"z"]), {}),
                            ("d", "t", b"\x90", {})]), 2),
    (Role.WORKER, m.Result([("a", 1, 0, _parts(3)), ("b", 1, 0, b"\x90"),
                            ("c", 1, 0, _parts(1))]), 3),
    (Role.MASTER, m.Result([("a", 3, _parts(3)), ("b", 3, b"\x90"), ("c", 3, _parts(1))]), 2),
    (Role.MASTER, m.Task([("a", 1, "t", _parts(2), None, None),
                          ("b", 1, "t", _parts(4), 1.0, ["E"])]), 3),
    (Role.WORKER, m.Partial([("a", 1, 0, _parts(2)), ("a", 1, 1, b"\x90")]), 3),
])
def test_parts_payloads_round_trip_through_the_codec_in_a_batch(role, msg, at):
    frames = codec.encode(role, msg)
    header = msgpack.unpackb(frames[1])
    assert len(frames) == 2 + sum(len(e[at].frames) + (len(e[at].body) >= codec.LARGE_PAYLOAD)
                                  if type(e[at]) is Parts else len(e[at]) >= codec.LARGE_PAYLOAD
                                  for e in msg.entries)
    assert any(type(e[at]) is list for e in header[1])  # [body, frame indexes...]
    _, got = codec.decode(_wire(frames))
    assert len(got.entries) == len(msg.entries) and not getattr(got, "bad", [])
    for sent, came in zip(msg.entries, got.entries):
        assert _same(sent[at], came[at])
        if type(came[at]) is Parts:  # its frames kept as the transport's buffers
            assert all(type(f) is memoryview for f in came[at].frames)


def _submit(*payloads: Any, frames: int = 3) -> list[Any]:
    entries = [[f"t{i}", "app:f", p, {}] for i, p in enumerate(payloads)]
    return [codec.SIGNATURES[Role.CLIENT], msgpack.packb([int(Cmd.SUBMIT), entries]),
            *(memoryview(bytes([i % 256]) * 10) for i in range(frames))]


@pytest.mark.parametrize("bad, why", [
    ([b"\x90", 3], "not one of the message's 3 payload frames"),
    ([b"\x90", -1], "not one of the message's 3 payload frames"),
    ([b"\x90", 2**40], "not one of the message's 3 payload frames"),
    ([b"\x90", "0"], "given by their indexes"),
    ([b"\x90", 1.0], "given by their indexes"),
    ([b"\x90"], "not an array of 1"),
    ([], "not an array of 0"),
    ([None, 0], "body must be bin or the index"),
    ([7, 0], "not one of the message's 3 payload frames"),
    ([b"\x90", 0], "referred to twice"),  # frame 0 is the first entry's already
    ([b"\x90", *range(MAX_PAYLOAD_FRAMES + 1)], f"1 to {MAX_PAYLOAD_FRAMES} frame indexes"),
    ({"b": 1}, "payload must be bin, the index of a payload frame, or an array"),
])
def test_a_bad_frame_reference_refuses_that_entry_alone(bad, why):
    role, msg = codec.decode(_submit([b"\x90", 0], bad, [b"\x91", 1, 2]))
    assert [e[0] for e in msg.entries] == ["t0", "t2"]
    assert msg.entries[0][2] == Parts(b"\x90", [bytes([0]) * 10])
    assert msg.entries[1][2] == Parts(b"\x91", [bytes([1]) * 10, bytes([2]) * 10])
    assert len(msg.bad) == 1 and msg.bad[0][0] == "t1" and why in msg.bad[0][1]


def test_a_worker_result_with_a_bad_frame_reference_refuses_that_entry_alone():
    frames = [codec.SIGNATURES[Role.WORKER], msgpack.packb([int(Cmd.RESULT), [
        ["a", 1, 0, [b"\x90", 0]], ["b", 1, 0, [b"\x90", 5]], ["c", 1, 0, [b"\x90", 0]]]]),
        memoryview(b"f0")]
    _, msg = codec.decode(frames)
    assert [e[0] for e in msg.entries] == ["a"]
    assert sorted(b[0] for b in msg.bad) == ["b", "c"]


def test_too_many_frames_refuse_the_message():
    with pytest.raises(ProtocolError, match="too many frames"):
        codec.decode(_submit([b"\x90", 0], frames=codec.MAX_FRAMES - 1))


def test_a_plain_frame_index_may_be_taken_once_only():
    role, msg = codec.decode(_submit(0, 0, frames=1))
    assert [e[0] for e in msg.entries] == ["t0"] and "referred to twice" in msg.bad[0][1]


# --- the master's outbox and the worker keep messages within MAX_FRAMES ----------------


def test_the_outbox_splits_tasks_whose_frames_overflow_one_message():
    entries = [(f"t{i}", 1, "f", _parts(600, 10), None, None) for i in range(3)]
    msgs = outbox.build(Cmd.TASK, entries)
    assert [len(x.entries) for x in msgs] == [1, 1, 1]
    for x in msgs:
        frames = codec.encode(Role.MASTER, x)
        assert len(frames) <= codec.MAX_FRAMES
        codec.decode(_wire(frames))
    few = [(f"t{i}", 1, "f", _parts(2, 10), None, None) for i in range(3)]
    assert len(outbox.build(Cmd.TASK, few)) == 1


def test_the_worker_splits_results_and_chunks_whose_frames_overflow_one_message():
    from tests.unit.test_worker_core import registered
    s = registered()
    s.pop_sent()
    s.report(results=[(f"r{i}", 1, 0, _parts(600, 10)) for i in range(3)],
             partials=[("g", 1, seq, _parts(600, 10)) for seq in range(3)])
    s.tick(0.01)
    sent = [x for x in s.pop_sent() if isinstance(x, (m.Result, m.Partial))]
    assert sorted(len(x.entries) for x in sent if isinstance(x, m.Result)) == [1, 1, 1]
    assert sorted(len(x.entries) for x in sent if isinstance(x, m.Partial)) == [1, 1, 1]
    for x in sent:
        frames = codec.encode(Role.WORKER, x)
        assert len(frames) <= codec.MAX_FRAMES
        codec.decode(_wire(frames))
