"""Property tests of zq.core.codec: every valid message survives encode -> decode, and no
input at all makes decode raise anything but ProtocolError (docs/PROTOCOL.md §2, §7).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zq.core import codec
from zq.core import messages as m
from zq.core.messages import Cmd, Role
from zq.errors import ProtocolError

LARGE = codec.LARGE_PAYLOAD
MIN_I64, MAX_U64 = -(2**63), 2**64 - 1  # what msgpack can carry
PAIRS = sorted((role, cmd) for role in Role for cmd in codec.ALLOWED[role])
SIGNATURES = list(codec.SIGNATURES.values())

FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PACK = msgpack.Packer(use_bin_type=True).pack


def decode_or_reject(frames: list[Any]) -> Any:
    """decode's answer, or None when it raised ProtocolError; any other exception escapes."""
    try:
        return codec.decode(frames)
    except ProtocolError:
        return None


def rejects(frames: list[Any]) -> None:
    """The message is refused: ProtocolError, or (a batch entry checked alone,
    docs/PROTOCOL.md §7) a message whose bad entry is refused by itself."""
    try:
        _, msg = codec.decode(frames)
    except ProtocolError:
        return
    assert getattr(msg, "bad", None), f"accepted: {msg}"


def norm(x: Any) -> Any:
    """A comparable form: messages as (type, fields), tuples as lists, buffers as bytes."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return type(x).__name__, {f.name: norm(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, (list, tuple)):
        return [norm(i) for i in x]
    if isinstance(x, dict):
        return {k: norm(v) for k, v in x.items()}
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x)
    return x


# --- valid messages ---------------------------------------------------------------------

def _repeat(n: int, pattern: bytes) -> bytes:
    return (pattern * (n // len(pattern) + 1))[:n]


# Large payloads are built from a short pattern: cheap to generate and to shrink.
_large = st.builds(_repeat, st.integers(LARGE, LARGE + 4096), st.binary(min_size=1, max_size=8))
payloads = st.one_of(
    st.binary(max_size=64),
    st.binary(max_size=64).map(memoryview),
    st.builds(_repeat, st.just(LARGE - 1), st.binary(min_size=1, max_size=8)),  # inline, just
    _large,
    _large.map(memoryview),  # how a zero-copy sender hands it over
)
_chars = st.characters(codec="utf-8")
# ids and names at their limit too; the limits count characters, which may be multibyte
ids = st.one_of(st.text(min_size=1, max_size=codec.MAX_ID), _chars.map(lambda c: c * codec.MAX_ID))
names = st.one_of(st.text(max_size=30), _chars.map(lambda c: c * codec.MAX_NAME))
reasons = st.text(max_size=200)
# what a worker calls itself (HELLO name, host, pool): printable, not empty
labels = st.one_of(st.text(st.characters(codec="utf-8").filter(str.isprintable), min_size=1,
                           max_size=30),
                   _chars.filter(str.isprintable).map(lambda c: c * codec.MAX_NAME))
sessions = st.text("0123456789abcdefABCXYZ", min_size=codec.SESSION_MIN,
                   max_size=codec.SESSION_MAX)
# a worker's task catalogue: name -> the options it declares
_declared = st.fixed_dictionaries({}, optional={
    "queue": st.text(max_size=10), "priority": st.integers(-5, 5),
    "retries": st.integers(0, 1000), "timeout": st.floats(0.1, 1e6),
    "retry_on": st.lists(st.text(max_size=10), max_size=3), "rate_limit": st.just("5/s")})
catalogues = st.dictionaries(st.text(min_size=1, max_size=30), _declared, max_size=4)
numbers = st.one_of(st.floats(allow_nan=False), st.integers(-(2**53), 2**53))
# SUBMIT options that are numbers must be finite (docs/PROTOCOL.md, SUBMIT options)
finite = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**53), 2**53))
attempts = st.integers(0, 2**62)
request_ids = st.integers(0, 2**62)


def few(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(strategy, max_size=4)


_leaves = st.one_of(st.none(), st.booleans(), st.integers(MIN_I64, MAX_U64),
                    st.floats(allow_nan=False), st.text(max_size=12), st.binary(max_size=12))
values = st.recursive(  # any msgpack value that comes back equal
    _leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.text(max_size=8), inner, max_size=4), max_leaves=12)

OPTION_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "queue": names,
    "priority": st.integers(MIN_I64, 2**63 - 1),
    "retries": st.integers(0, 2**31),
    "timeout": finite,
    "eta": finite,
    "delay": finite,
    "key": st.text(max_size=64),
    "after": few(ids),
    "inputs": few(ids),  # 1.4 (issue 17)
    "retry_backoff": finite,
    "retry_backoff_max": finite,
    "retry_on": few(names),
    "result_ttl": finite,
    "rate_limit": st.sampled_from(["100/s", "20/m", "5/h"]),
}
options = st.fixed_dictionaries({}, optional=OPTION_VALUES)


def messages(role: Role, cmd: Cmd) -> st.SearchStrategy[m.Message]:
    """Valid messages of cmd as role sends them."""
    if cmd is Cmd.RESULT and role is Role.WORKER:
        outcomes = st.one_of(st.sampled_from(list(m.Outcome)), st.integers(0, max(m.Outcome)))
        return st.builds(m.Result, few(st.tuples(ids, attempts, outcomes, payloads)))
    if cmd is Cmd.RESULT:
        states = st.one_of(st.sampled_from(list(m.State)), st.integers(0, max(m.State)))
        return st.builds(m.Result, few(st.tuples(ids, states, payloads)))
    return MESSAGES[cmd]


MESSAGES: dict[Cmd, st.SearchStrategy[Any]] = {
    Cmd.HELLO: st.builds(m.Hello, name=labels, host=labels, pid=st.integers(0, 2**62),
                         queues=few(names), concurrency=st.integers(0, 1 << 20), pool=labels,
                         credit=st.integers(0, 1 << 24), running=few(ids),
                         session=sessions, catalogue=catalogues,
                         # 1.4: with started (zq's worker always) allow_code goes too
                         allow_code=st.booleans(), started=st.just(True)),
    Cmd.WELCOME: st.builds(m.Welcome, numbers, st.integers(1, 1000), st.integers(0, 2**62),
                           names, st.booleans()),
    Cmd.CREDIT: st.builds(m.Credit, st.integers(0, 1 << 24), few(ids)),
    Cmd.TASK: st.builds(m.Task, few(st.tuples(ids, attempts, names, payloads,
                                              st.none() | numbers, st.none() | few(names)))),
    Cmd.PARTIAL: st.builds(m.Partial, few(st.tuples(ids, attempts, st.integers(0, 2**62),
                                                    payloads))),
    Cmd.RESULT: st.nothing(),  # depends on the role: see messages()
    Cmd.ACK: st.builds(m.Ack, few(ids)),
    Cmd.CANCEL: st.builds(m.Cancel, few(ids)),
    Cmd.HEARTBEAT: st.just(m.Heartbeat()),
    Cmd.BYE: st.builds(m.Bye, few(ids)),
    Cmd.DISCONNECT: st.builds(m.Disconnect, reasons),
    Cmd.SUBMIT: st.builds(m.Submit, few(st.tuples(ids, names, payloads, options))),
    Cmd.ACCEPTED: st.builds(m.Accepted, few(ids), st.dictionaries(ids, ids, max_size=3)),
    Cmd.REJECTED: st.builds(m.RejectedEntries, few(st.tuples(ids, reasons))),
    Cmd.BUSY: st.builds(m.Busy, few(ids), numbers),
    Cmd.WATCH: st.builds(m.Watch, few(ids)),
    Cmd.QUERY: st.builds(m.Query, request_ids, names,
                         st.dictionaries(st.text(max_size=12), values, max_size=4)),
    Cmd.REPLY: st.builds(m.Reply, request_ids, st.booleans(), values),
    Cmd.ERROR: st.builds(m.Error, reasons),
    Cmd.PROGRESS: st.builds(m.Progress, few(st.tuples(ids, attempts, numbers, numbers))),
    Cmd.EVENTS: st.builds(m.Events, st.integers(0, 2**62), few(st.fixed_dictionaries(
        {"kind": st.sampled_from(["started", "lost"]), "time": numbers},
        optional={"id": ids, "done": numbers})), st.integers(0, 2**62)),
    Cmd.STANDBY: st.builds(m.Standby, st.sampled_from(["", "tcp://10.0.0.2:5555"])),
    Cmd.STARTED: st.builds(m.Started, few(st.tuples(ids, attempts))),
}

pairs_and_messages = st.sampled_from(PAIRS).flatmap(
    lambda rc: st.tuples(st.just(rc[0]), st.just(rc[1]), messages(*rc)))


def test_strategies_cover_the_protocol() -> None:
    assert set(MESSAGES) == set(Cmd) == {c for _, c in PAIRS}
    assert set(OPTION_VALUES) == set(m.SUBMIT_OPTIONS)


def _large_payloads(msg: m.Message) -> int:
    entries = getattr(msg, "entries", None)
    if not entries or msg.cmd in (Cmd.PROGRESS, Cmd.REJECTED, Cmd.STARTED):
        return 0
    at = {Cmd.SUBMIT: 2, Cmd.TASK: 3, Cmd.PARTIAL: 3}.get(msg.cmd, len(entries[0]) - 1)
    return sum(len(e[at]) >= LARGE for e in entries)


def _inline_large(x: Any) -> bool:
    if isinstance(x, bytes):
        return len(x) >= LARGE
    if isinstance(x, list):
        return any(_inline_large(i) for i in x)
    return False


@pytest.mark.parametrize("role,cmd", PAIRS, ids=[f"{r.name}-{c.name}" for r, c in PAIRS])
@FAST
@given(data=st.data())
def test_round_trip(role: Role, cmd: Cmd, data: st.DataObject) -> None:
    msg = data.draw(messages(role, cmd))
    frames = codec.encode(role, msg)
    assert bytes(frames[0]) == codec.SIGNATURES[role]
    assert len(frames) == 2 + _large_payloads(msg)  # large payloads and only they as frames
    assert all(len(f) >= LARGE for f in frames[2:])
    assert not _inline_large(msgpack.unpackb(frames[1]))  # and nothing large stayed inline
    wire = [bytes(f) for f in frames]  # what a copying recv_multipart hands over
    for received in (wire, [memoryview(f) for f in wire]):  # ... and a zero-copy one
        got_role, got = codec.decode(received)
        assert got_role is role
        assert type(got) is type(msg)
        assert norm(got) == norm(_once_each(role, msg))


def _once_each(role: Role, msg: Any) -> Any:
    """msg as the master decodes it: a peer's id lists keep each id once (PROTOCOL.md §7)."""
    fields = {m.Credit: "returned", m.Bye: "returned", m.Watch: "ids", m.Cancel: "ids"}
    field = fields.get(type(msg))
    if field is None or role is Role.MASTER:
        return msg
    return dataclasses.replace(msg, **{field: list(dict.fromkeys(getattr(msg, field)))})


# --- garbage in, ProtocolError out --------------------------------------------------------

_junk_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(MIN_I64, MAX_U64), st.floats(),  # NaN, inf
    st.floats(width=32), st.text(max_size=10), st.binary(max_size=10),
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=8)),
    st.builds(msgpack.Timestamp, st.integers(0, 2**34), st.integers(0, 999_999_999)),
    st.sampled_from(list(Cmd)).map(int), st.integers(-2, 8))
_junk_keys = st.one_of(st.text(max_size=8), st.binary(max_size=4), st.integers(-5, 5),
                       st.none(), st.booleans(), st.floats())
junk = st.recursive(
    _junk_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.tuples(inner, inner),
        st.dictionaries(_junk_keys, inner, max_size=4),
        st.builds(lambda i, rest: [i, *rest], ids, st.lists(inner, max_size=6))),  # entry-like
    max_leaves=10)


@FUZZ
@given(st.lists(st.one_of(st.sampled_from(SIGNATURES), st.binary(max_size=40)), max_size=8))
def test_random_frames(frames: list[bytes]) -> None:
    decode_or_reject(frames)


@FUZZ
@given(st.sampled_from(SIGNATURES), st.binary(max_size=200), few(st.binary(max_size=16)))
def test_random_header_bytes(sig: bytes, header: bytes, extra: list[bytes]) -> None:
    decode_or_reject([sig, header, *extra])


@FUZZ
@given(st.sampled_from(SIGNATURES), junk, few(st.binary(max_size=16)))
def test_random_msgpack_header(sig: bytes, header: Any, extra: list[bytes]) -> None:
    decode_or_reject([sig, PACK(header), *extra])


@FUZZ
@given(st.sampled_from(SIGNATURES), st.sampled_from(list(Cmd)), st.lists(junk, max_size=9),
       few(st.binary(max_size=16)))
def test_known_command_random_fields(sig: bytes, cmd: Cmd, fields: list[Any],
                                     extra: list[bytes]) -> None:
    decode_or_reject([sig, PACK([int(cmd), *fields]), *extra])


# Field kinds of docs/PROTOCOL.md §3, to make values of the wrong kind for each field.
# ("str", limit) ("id",) ("int", lo, hi) ("num",) ("opt", kind) ("payload",) ("list", kind)
# ("entries", (kind, ...)) ("ids_map",) ("map",) ("options",) ("any",)
STR = ("str", codec.MAX_NAME)
ID, NUM, PAYLOAD, MAP, ANY = ("id",), ("num",), ("payload",), ("map",), ("any",)
REASON = ("str", 1 << 16)
IDS = ("list", ID)
BIG = ("int", 0, 2**62)


def _entries(*kinds: Any) -> tuple[Any, ...]:
    return ("entries", kinds)


SCHEMA: dict[Cmd, list[Any]] = {
    Cmd.HELLO: [STR, STR, BIG, ("list", STR), ("int", 0, 1 << 20), STR, ("int", 0, 1 << 24),
                IDS, ("session",), ("catalogue",), ("bool",), ("bool",)],
    Cmd.WELCOME: [NUM, ("int", 1, 1000), BIG, STR, ("bool",)],
    Cmd.CREDIT: [("int", 0, 1 << 24), IDS],
    Cmd.TASK: [_entries(ID, BIG, STR, PAYLOAD, ("opt", NUM), ("opt", ("list", STR)))],
    Cmd.PARTIAL: [_entries(ID, BIG, BIG, PAYLOAD)],
    Cmd.ACK: [IDS],
    Cmd.CANCEL: [IDS],
    Cmd.HEARTBEAT: [],
    Cmd.BYE: [IDS],
    Cmd.DISCONNECT: [REASON],
    Cmd.SUBMIT: [_entries(ID, STR, PAYLOAD, ("options",))],
    Cmd.ACCEPTED: [IDS, ("ids_map",)],
    Cmd.REJECTED: [_entries(ID, REASON)],
    Cmd.BUSY: [IDS, NUM],
    Cmd.WATCH: [IDS],
    Cmd.QUERY: [BIG, STR, MAP],
    Cmd.REPLY: [BIG, ANY, ANY],  # ok is read as a truth value; body is opaque
    Cmd.ERROR: [REASON],
    Cmd.PROGRESS: [_entries(ID, BIG, NUM, NUM)],
    Cmd.EVENTS: [BIG, ("events",), BIG],
    Cmd.STANDBY: [("str", 1024)],
    Cmd.STARTED: [_entries(ID, BIG)],
}
RESULT_SCHEMA = {Role.WORKER: [_entries(ID, BIG, ("int", 0, max(m.Outcome)), PAYLOAD)],
                 Role.MASTER: [_entries(ID, ("int", 0, max(m.State)), PAYLOAD)]}


def schema(role: Role, cmd: Cmd) -> list[Any]:
    return RESULT_SCHEMA[role] if cmd is Cmd.RESULT else SCHEMA[cmd]


_ints = st.integers(MIN_I64, MAX_U64)
_not_str = st.one_of(st.none(), st.booleans(), _ints, st.floats(),
                     st.binary(max_size=8), st.lists(st.text(max_size=3), max_size=2),
                     st.dictionaries(st.text(max_size=3), _ints, max_size=2))
_not_int = st.one_of(st.none(), st.booleans(), st.floats(), st.text(max_size=5),
                     st.binary(max_size=5), st.lists(_ints, max_size=2))
_not_num = st.one_of(st.none(), st.booleans(), st.just(math.nan), st.text(max_size=5),
                     st.binary(max_size=5), st.lists(st.floats(), max_size=2),
                     st.dictionaries(st.text(max_size=3), st.floats(), max_size=2))
_not_list = st.one_of(st.none(), st.booleans(), _ints, st.floats(), st.text(max_size=5),
                      st.binary(max_size=5), st.dictionaries(st.text(max_size=3), _ints,
                                                             max_size=2))
_not_map = st.one_of(st.none(), _ints, st.text(max_size=5), st.binary(max_size=5),
                     st.lists(_ints, max_size=2))


def wrong(draw: Callable[..., Any], kind: Any, current: Any, n_extra: int) -> Any:
    """A value that is not a valid `kind`, often a small change of the valid `current`."""
    tag = kind[0]
    if tag == "str":
        return draw(_not_str | st.just("s" * (kind[1] + 1)))
    if tag == "id":
        return draw(_not_str | st.sampled_from(["", "i" * (codec.MAX_ID + 1)]))
    if tag == "int":
        out = [v for v in (kind[1] - 1, kind[2] + 1) if MIN_I64 <= v <= MAX_U64]
        return draw(_not_int | st.sampled_from(out))
    if tag == "num":
        return draw(_not_num)
    if tag == "bool":  # true or false only: not 0, 1 or nil
        return draw(st.one_of(st.none(), _ints, st.floats(), st.text(max_size=5)))
    if tag == "catalogue":
        return draw(_not_map | st.sampled_from([
            {"": {}}, {"m:f": None}, {"m:f": {"eta": 1.0}}, {"m:f": {"key": "k"}},
            {"m:f": {"retries": "3"}}, {"m:f": {"queue": 1}}, {"m:f": {"retry_on": [1]}},
            {"x" * (codec.MAX_NAME + 1): {}}]))
    if tag == "session":
        return draw(_not_str | st.sampled_from(
            ["", "a" * (codec.SESSION_MIN - 1), "a" * (codec.SESSION_MAX + 1),
             "0123456789abcdef-0123", "0123456789abcdéf"]))
    if tag == "opt":  # nil is valid here, so anything wrong but nil
        bad = wrong(draw, kind[1], current, n_extra)
        return "not nil" if bad is None else bad
    if tag == "payload":
        return draw(st.one_of(st.none(), st.booleans(), st.floats(), st.text(max_size=5),
                              st.lists(st.binary(max_size=3), max_size=2),
                              st.integers(MIN_I64, -1), st.integers(n_extra, MAX_U64)))
    if tag == "list":
        if current and draw(st.booleans()):
            i = draw(st.integers(0, len(current) - 1))
            return [*current[:i], wrong(draw, kind[1], current[i], n_extra), *current[i + 1:]]
        return draw(_not_list)
    if tag == "entries":
        return _wrong_entries(draw, kind[1], current, n_extra)
    if tag == "ids_map":
        bad_ids = st.sampled_from(["", "i" * (codec.MAX_ID + 1)])
        return draw(_not_map | st.builds(lambda k, v: {k: v}, ids, _not_str)
                    | st.builds(lambda v: {v: "x"}, bad_ids))
    if tag == "events":  # maps, each with a str kind and a numeric time (1.3)
        return draw(_not_list | st.sampled_from([
            [7], [{}], [{"kind": 1, "time": 1.0}], [{"kind": "started", "time": "now"}],
            [{"kind": "k" * 33, "time": 1.0}], [{"kind": "started"}]]))
    if tag == "map":
        return draw(_not_map)
    if tag == "options":
        return _wrong_options(draw, current)
    raise AssertionError(f"no wrong value for {kind}")


def _wrong_entries(draw: Callable[..., Any], kinds: tuple[Any, ...], current: list[Any],
                   n_extra: int) -> Any:
    if not current or draw(st.integers(0, 4)) == 0:
        return draw(_not_list)
    i = draw(st.integers(0, len(current) - 1))
    entry = list(current[i])
    how = draw(st.sampled_from(["not a list", "too short", "field"]))
    if how == "not a list":
        bad: Any = draw(_not_list)
    elif how == "too short":
        bad = entry[:draw(st.integers(0, len(kinds) - 1))]
    else:
        j = draw(st.integers(0, len(kinds) - 1))
        bad = [*entry[:j], wrong(draw, kinds[j], entry[j], n_extra), *entry[j + 1:]]
    return [*current[:i], bad, *current[i + 1:]]


def _wrong_options(draw: Callable[..., Any], current: dict[str, Any]) -> Any:
    how = draw(st.sampled_from(["not a map", "unknown key", "wrong type"]))
    if how == "not a map":
        return draw(_not_map)
    if how == "unknown key":
        key = draw(st.text(max_size=10).filter(lambda k: k not in m.SUBMIT_OPTIONS)
                   | st.binary(max_size=5))
        return {**current, key: draw(values)}
    key = draw(st.sampled_from(sorted(m.SUBMIT_OPTIONS)))
    want = m.SUBMIT_OPTIONS[key]
    if want is float:
        bad = draw(_not_num)
    elif want is list:  # after: [task_id], retry_on: [str]
        bad = draw(_not_list | st.lists(_not_str, min_size=1, max_size=2)
                   | (st.just([""]) if key in ("after", "inputs") else st.nothing()))
    else:
        bad = draw(_not_str if want is str else _not_int)
    return {**current, key: bad}


def mutated(draw: Callable[..., Any], role: Role, cmd: Cmd) -> list[Any]:
    """Frames of a valid message with one field made invalid, or with fields missing."""
    frames = codec.encode(role, draw(messages(role, cmd)))
    fields = msgpack.unpackb(frames[1], raw=False)[1:]
    kinds = schema(role, cmd)
    assert len(fields) == len(kinds)
    if draw(st.integers(0, 9)) == 0:  # fewer than the decoder needs (later ones are optional)
        fields = fields[:draw(st.integers(0, codec._DECODERS[cmd].arity - 1))]
    else:
        i = draw(st.sampled_from([i for i, k in enumerate(kinds) if k is not ANY]))
        fields[i] = wrong(draw, kinds[i], fields[i], len(frames) - 2)
    return [frames[0], PACK([int(cmd), *fields]), *frames[2:]]


_WITH_FIELDS = [(r, c) for r, c in PAIRS if c is not Cmd.HEARTBEAT]


@pytest.mark.parametrize("role,cmd", _WITH_FIELDS,
                         ids=[f"{r.name}-{c.name}" for r, c in _WITH_FIELDS])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_wrong_field_is_rejected(role: Role, cmd: Cmd, data: st.DataObject) -> None:
    rejects(mutated(data.draw, role, cmd))


# The same, by hand: one case per kind of mistake, so each is tried on every run.
_P = b"p"  # an inline payload
_WRONG = [
    (Role.WORKER, [Cmd.HELLO, "w", "h", -1, [], 1, "p", 1, []]),
    (Role.WORKER, [Cmd.HELLO, "w", "h", 1, ["q", 1], 1, "p", 1, []]),
    (Role.WORKER, [Cmd.HELLO, "w", "h", 1, [], (1 << 20) + 1, "p", 1, []]),
    (Role.WORKER, [Cmd.HELLO, "w", "h", 1, [], 1, "p", (1 << 24) + 1, []]),
    (Role.WORKER, [Cmd.HELLO, "w" * (codec.MAX_NAME + 1), "h", 1, [], 1, "p", 1, []]),
    (Role.WORKER, [Cmd.HELLO, "w", "h", 1, [], 1, "p", 1, [""]]),
    (Role.WORKER, [Cmd.HELLO, "w", "h", 1, [], 1, "p", 1]),  # a field missing
    (Role.WORKER, [Cmd.CREDIT, -1, []]),
    (Role.WORKER, [Cmd.CREDIT, True, []]),
    (Role.WORKER, [Cmd.CREDIT, 1, "t"]),
    (Role.WORKER, [Cmd.RESULT, [["t", 1, max(m.Outcome) + 1, _P]]]),
    (Role.WORKER, [Cmd.RESULT, [["t", 1, -1, _P]]]),
    (Role.WORKER, [Cmd.RESULT, [["t", 1, 0, -1]]], [b"x" * LARGE]),  # no negative index
    (Role.WORKER, [Cmd.RESULT, [["t", 1, 0, 1]]], [b"x" * LARGE]),
    (Role.WORKER, [Cmd.RESULT, [["t", 1, 0, True]]], [b"x" * LARGE]),
    (Role.WORKER, [Cmd.RESULT, [["t", 1, 0, MAX_U64]]], [b"x" * LARGE]),
    (Role.WORKER, [Cmd.RESULT, [["t", 1, 0, "p"]]]),
    (Role.WORKER, [Cmd.RESULT, [["t", 1, 0]]]),
    (Role.WORKER, [Cmd.RESULT, [[1, 1, 0, _P]]]),
    (Role.WORKER, [Cmd.RESULT, [["i" * (codec.MAX_ID + 1), 1, 0, _P]]]),
    (Role.WORKER, [Cmd.PARTIAL, [["t", 1, -1, _P]]]),
    (Role.WORKER, [Cmd.PROGRESS, [["t", 1, "half", 1.0]]]),
    (Role.WORKER, [Cmd.BYE, [None]]),
    (Role.MASTER, [Cmd.RESULT, [["t", max(m.State) + 1, _P]]]),
    (Role.MASTER, [Cmd.WELCOME, 1.0, 0, 1, "m"]),
    (Role.MASTER, [Cmd.WELCOME, 1.0, 1001, 1, "m"]),
    (Role.MASTER, [Cmd.WELCOME, "1", 3, 1, "m"]),
    (Role.MASTER, [Cmd.TASK, [["t", 1, "n", _P, None]]]),
    (Role.MASTER, [Cmd.TASK, [["t", 1, "n", _P, "1", None]]]),
    (Role.MASTER, [Cmd.TASK, [["t", 1, "n", _P, None, "ValueError"]]]),
    (Role.MASTER, [Cmd.TASK, [["t", 1, "n", _P, None, [1]]]]),
    (Role.MASTER, [Cmd.TASK, [["t", 0.0, "n", _P, None, None]]]),
    (Role.MASTER, [Cmd.ACCEPTED, ["t"], {"t": 1}]),
    (Role.MASTER, [Cmd.ACCEPTED, ["t"], {"t": ""}]),
    (Role.MASTER, [Cmd.ACCEPTED, ["t"], {"": "t"}]),
    (Role.MASTER, [Cmd.ACCEPTED, ["t"], {b"t": "u"}]),
    (Role.MASTER, [Cmd.ACCEPTED, ["t"], ["t"]]),
    (Role.MASTER, [Cmd.REJECTED, [["t", "r" * ((1 << 16) + 1)]]]),
    (Role.MASTER, [Cmd.BUSY, ["t"], None]),
    (Role.MASTER, [Cmd.REPLY, "1", True, None]),
    (Role.MASTER, [Cmd.ERROR, None]),
    (Role.CLIENT, [Cmd.QUERY, -1, "status", {}]),
    (Role.CLIENT, [Cmd.QUERY, 1, None, {}]),
    (Role.CLIENT, [Cmd.QUERY, 1, "status", []]),
    (Role.CLIENT, [Cmd.WATCH, "t"]),
    (Role.CLIENT, [Cmd.CANCEL, [""]]),
    (Role.CLIENT, [Cmd.SUBMIT, [["t", None, _P, {}]]]),
    (Role.CLIENT, [Cmd.SUBMIT, [["t", "n", _P, []]]]),
    (Role.CLIENT, [Cmd.SUBMIT, [["t", "n", _P]]]),
] + [(Role.CLIENT, [Cmd.SUBMIT, [["t", "n", _P, {key: bad}]]]) for key, bad in [
    ("nope", 1), (b"queue", "q"), ("queue", 1), ("priority", 1.5), ("priority", True),
    ("retries", "1"), ("timeout", "1"), ("timeout", None), ("eta", True), ("key", 1),
    ("after", "t"), ("after", [1]), ("after", [""]), ("after", ["i" * (codec.MAX_ID + 1)]),
    ("after", [{}]), ("after", [["t"]]), ("inputs", "t"), ("inputs", [1]), ("inputs", [""]),
    ("retry_on", "ValueError"), ("retry_on", [None]),
    ("retry_on", [1]), ("retry_on", ["E" * (codec.MAX_NAME + 1)]), ("result_ttl", [1]),
]]


@pytest.mark.parametrize("case", _WRONG, ids=lambda c: f"{c[0].name}-{c[1][0].name}")
def test_wrong_field_is_rejected_by_hand(case: tuple[Any, ...]) -> None:
    role, header, extra = (*case, [])[:3]  # extra: payload frames, when the case has them
    rejects([codec.SIGNATURES[role], PACK([int(header[0]), *header[1:]]), *extra])


@FAST
@given(pairs_and_messages, st.data())
def test_truncated_or_padded_header_is_rejected(case: Any, data: st.DataObject) -> None:
    role, _, msg = case
    sig, header, *extra = codec.encode(role, msg)
    cut = data.draw(st.integers(0, len(header) - 1))
    rejects([sig, header[:cut], *extra])
    rejects([sig, header + data.draw(st.binary(min_size=1, max_size=4)), *extra])


@FAST
@given(pairs_and_messages.filter(lambda x: _large_payloads(x[2]) > 0), st.data())
def test_payload_frame_out_of_range_is_rejected(case: Any, data: st.DataObject) -> None:
    role, _, msg = case
    frames = codec.encode(role, msg)
    keep = data.draw(st.integers(2, len(frames) - 1))  # drop at least the last payload frame
    rejects(frames[:keep])


@FAST
@given(pairs_and_messages, st.sampled_from(list(Role)))
def test_command_the_role_may_not_send_is_rejected(case: Any, sender: Role) -> None:
    role, cmd, msg = case
    frames = codec.encode(sender, msg)  # signed by another role
    if cmd not in codec.ALLOWED[sender]:
        rejects(frames)
    elif cmd is not Cmd.RESULT or sender is role:  # RESULT entries differ by sender
        assert codec.decode(frames)[0] is sender


_known_codes = {int(c) for c in Cmd}


@FUZZ
@given(st.sampled_from(SIGNATURES),
       st.one_of(st.integers(MIN_I64, MAX_U64).filter(lambda c: c not in _known_codes),
                 st.sampled_from([0, -1, max(_known_codes) + 1, MAX_U64, MIN_I64]),
                 st.floats(), st.booleans(), st.none(), st.text(max_size=4),
                 st.binary(max_size=4), st.lists(st.integers(1, 20), max_size=2)),
       st.lists(_leaves, max_size=4))
def test_unknown_command_is_rejected(sig: bytes, code: Any, fields: list[Any]) -> None:
    rejects([sig, PACK([code, *fields])])


@pytest.mark.parametrize("header", [[], {}, {"cmd": 9}, 9, "HEARTBEAT", None, b"\x09", [True]])
def test_header_that_is_not_a_command_array_is_rejected(header: Any) -> None:
    rejects([codec.SIGNATURES[Role.WORKER], PACK(header)])


@pytest.mark.parametrize("sig", [b"", b"ZQW", b"ZQW2", b"ZQX1", b"zqw1", b"ZQW1\x00", b"MDPW01"])
def test_foreign_signature_is_rejected(sig: bytes) -> None:
    rejects([sig, PACK([int(Cmd.HEARTBEAT)])])


def test_frame_count_limits() -> None:
    sig, hb = codec.SIGNATURES[Role.WORKER], PACK([int(Cmd.HEARTBEAT)])
    rejects([])
    rejects([sig])
    assert codec.decode([sig, hb, *[b""] * (codec.MAX_FRAMES - 2)])[1] == m.Heartbeat()
    rejects([sig, hb, *[b""] * (codec.MAX_FRAMES - 1)])
    rejects([sig, hb, *[b"x"] * 100_000])


DEEP = 100_000


@pytest.mark.parametrize("nest", [b"\x91", b"\x81\xa1k", b"\xdc\x00\x01"])  # array, map, array16
def test_deep_nesting_is_rejected(nest: bytes) -> None:
    deep = nest * DEEP + b"\xc0"
    client, master = codec.SIGNATURES[Role.CLIENT], codec.SIGNATURES[Role.MASTER]
    rejects([client, deep])
    # inside a valid QUERY's args, and inside the opaque body of a REPLY
    rejects([client, b"\x94" + PACK(int(Cmd.QUERY)) + PACK(1) + PACK("k") + b"\x81\xa1a" + deep])
    rejects([master, b"\x94" + PACK(int(Cmd.REPLY)) + PACK(1) + PACK(True) + deep])
    # 100k array headers with nothing after them: truncated as well as deep
    rejects([client, nest * DEEP])


@pytest.mark.parametrize("role,header", [
    (Role.CLIENT, [int(Cmd.SUBMIT), [["t", "n", b"", {1: 2}]]]),
    (Role.CLIENT, [int(Cmd.SUBMIT), [["t", "n", b"", {"priority": 1, 7: "x"}]]]),
    (Role.CLIENT, [int(Cmd.QUERY), 1, "status", {0: "x"}]),
    (Role.CLIENT, [int(Cmd.QUERY), 1, "tasks", {"a": {-1: None}}]),
    (Role.MASTER, [int(Cmd.ACCEPTED), ["t"], {5: "t"}]),
    (Role.MASTER, [int(Cmd.REPLY), 1, True, {"workers": [{1.5: 2}]}]),
    (Role.WORKER, [int(Cmd.HEARTBEAT), {None: 1}]),  # even in ignored trailing fields
])
def test_non_string_map_keys_are_rejected(role: Role, header: list[Any]) -> None:
    rejects([codec.SIGNATURES[role], PACK(header)])


MARK = "@MARKER@"  # replaced, in the packed header, by invalid UTF-8 of the same length
_bad_utf8 = st.one_of(
    st.binary(min_size=len(MARK), max_size=len(MARK)).filter(lambda b: not _is_utf8(b)),
    st.sampled_from([b"\xed\xa0\x80xxxxx",  # an encoded surrogate
                     b"\xc0\x80xxxxxx",  # overlong NUL
                     b"\xf4\x90\x80\x80xxxx",  # above U+10FFFF
                     b"xxxxxxx\xe2",  # cut in the middle of a character
                     b"\xff\xfe\xfd\xfcxxxx"]))


def _is_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_UTF8_CASES = [
    (Role.MASTER, [Cmd.ERROR, MARK]),
    (Role.MASTER, [Cmd.DISCONNECT, MARK]),
    (Role.MASTER, [Cmd.ACK, ["ok", MARK]]),
    (Role.MASTER, [Cmd.REPLY, 1, True, {"x": [MARK]}]),
    (Role.MASTER, [Cmd.REPLY, 1, True, {MARK: 1}]),
    (Role.MASTER, [Cmd.TASK, [["t", 1, "n", b"", None, [MARK]]]]),
    (Role.CLIENT, [Cmd.SUBMIT, [[MARK, "n", b"", {}]]]),
    (Role.CLIENT, [Cmd.SUBMIT, [["t", MARK, b"", {}]]]),
    (Role.CLIENT, [Cmd.QUERY, 1, "tasks", {MARK: 1}]),
    (Role.CLIENT, [Cmd.SUBMIT, [["t", "n", b"", {"queue": MARK}]]]),
    (Role.CLIENT, [Cmd.QUERY, 1, MARK, {}]),
    (Role.CLIENT, [Cmd.WATCH, [MARK]]),
    (Role.WORKER, [Cmd.HELLO, MARK, "h", 1, [], 1, "p", 1, []]),
    (Role.WORKER, [Cmd.RESULT, [[MARK, 1, 0, b""]]]),
    (Role.WORKER, [Cmd.HEARTBEAT, MARK]),  # even in ignored trailing fields
]


@settings(max_examples=10, deadline=None)
@pytest.mark.parametrize("role,header", _UTF8_CASES, ids=lambda x: getattr(x, "name", None))
@given(bad=_bad_utf8)
def test_invalid_utf8_is_rejected(role: Role, header: list[Any], bad: bytes) -> None:
    packed = PACK([int(header[0]), *header[1:]])
    assert packed.count(MARK.encode()) == 1
    good = [codec.SIGNATURES[role], packed]
    assert decode_or_reject(good) is not None  # the same message with a valid string decodes
    rejects([good[0], packed.replace(MARK.encode(), bad)])


_NAN_CASES = [
    (Role.MASTER, [Cmd.WELCOME, math.nan, 3, 1000, "m"]),
    (Role.MASTER, [Cmd.TASK, [["t", 1, "n", b"", math.nan, None]]]),
    (Role.MASTER, [Cmd.BUSY, ["t"], math.nan]),
    (Role.MASTER, [Cmd.PROGRESS, [["t", 1, math.nan, 1.0]]]),
    (Role.WORKER, [Cmd.PROGRESS, [["t", 1, 0.5, math.nan]]]),
    (Role.WORKER, [Cmd.PROGRESS, [["t", -math.nan, 0.5, 1.0]]]),
    (Role.WORKER, [Cmd.HELLO, "w", "h", math.nan, [], 1, "p", 1, []]),
    (Role.MASTER, [Cmd.RESULT, [["t", math.nan, b""]]]),
] + [(Role.CLIENT, [Cmd.SUBMIT, [["t", "n", b"", {k: math.nan}]]])
     for k in sorted(m.SUBMIT_OPTIONS)]


@pytest.mark.parametrize("role,header", _NAN_CASES)
@pytest.mark.parametrize("single", [False, True], ids=["float64", "float32"])
def test_nan_is_rejected(role: Role, header: list[Any], single: bool) -> None:
    pack = msgpack.Packer(use_bin_type=True, use_single_float=single).pack
    rejects([codec.SIGNATURES[role], pack([int(header[0]), *header[1:]])])
