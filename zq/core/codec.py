"""The only place that knows zq's bytes: frames <-> typed messages (docs/PROTOCOL.md).

Every message is ``[signature][header][large payload frames...]``. The signature names
the protocol, its major version and the sender's role; the header is one msgpack array
``[command, fields...]``. Payloads (task arguments, results, chunks) are opaque bytes:
small ones ride inside the header as msgpack bin, those of LARGE_PAYLOAD bytes or more
travel as frames of their own (the header then holds their index), so they can be sent
without a copy. A payload with frames of its own (a Parts: a task value's large numpy
arrays, 1.4) travels as an array [body, frame indexes...] in the header. Anything
malformed raises ProtocolError and nothing else.

About 650 lines: the decoder of every message kind with the checks of each of its fields,
side by side, so what a peer may send is read in one place (PROTOCOL.md is its prose).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import msgpack

from zq.core import messages as m
from zq.core.messages import Cmd, Role
from zq.core.parts import MAX_PAYLOAD_FRAMES, Parts, Refs
from zq.errors import ProtocolError

PROTOCOL_VERSION = "1.5"
SIGNATURES = {Role.WORKER: b"ZQW1", Role.CLIENT: b"ZQC1", Role.MASTER: b"ZQM1"}
ROLE_OF_SIGNATURE = {sig: role for role, sig in SIGNATURES.items()}
_CMD_OF = {int(c): c for c in Cmd}  # command code -> Cmd, for decode
_HEARTBEAT = m.Heartbeat()  # no fields: one decoded HEARTBEAT serves every peer
_HEARTBEAT_HEADER = msgpack.packb([int(Cmd.HEARTBEAT)])  # as encode writes it

LARGE_PAYLOAD = 64 * 1024  # below this a payload is inlined; above, a frame of its own
MAX_FRAMES = 1026  # signature + header + at most 1024 large payload frames
# The header: payloads of 64 KiB and more travel as frames of their own, so a header
# is ids, names, numbers and small payloads. Senders keep theirs under HEADER_BUDGET.
MAX_HEADER = 16 * 1024 * 1024
HEADER_BUDGET = 8 * 1024 * 1024  # inline payload bytes a sender puts in one message
MAX_ENTRIES = 100_000  # elements of any array in a header (and entries of a map)
MAX_STR = 4 * 1024 * 1024  # characters of a string in a header
# A header over BIG_HEADER bytes is decoded counting its arrays and maps: more than one
# per CONTAINER_BYTES bytes (a real entry takes more) is refused before it is built, so
# a header of empty arrays cannot make the master allocate 64 bytes per byte.
BIG_HEADER = 256 * 1024
CONTAINER_BYTES = 6
_LIMITS = dict(raw=False, strict_map_key=True, use_list=True, max_str_len=MAX_STR,
               max_bin_len=MAX_HEADER, max_array_len=MAX_ENTRIES, max_map_len=MAX_ENTRIES,
               max_ext_len=0)
MAX_ID = 128  # characters in a task id
MAX_NAME = 512
MAX_QUEUES = 256  # queue names in one HELLO
# A worker's session token (HELLO, 1.1): 16 to 64 ASCII letters and digits; zq's worker
# sends 32 hex digits (16 random bytes), made once per process.
SESSION_MIN, SESSION_MAX = 16, 64
MAX_IDS = 10_000  # ids in one WATCH, CANCEL, CREDIT or BYE (the client sends at most this)
MAX_ENDPOINT = 1024  # characters of an endpoint (STANDBY's active master)
MAX_CATALOGUE = 10_000  # task names in one HELLO's catalogue
MAX_CATALOGUE_CHARS = 1 << 20  # characters of its names and option strings, all told

# Which commands each role may send.
ALLOWED = {
    Role.WORKER: frozenset({Cmd.HELLO, Cmd.CREDIT, Cmd.RESULT, Cmd.PARTIAL, Cmd.PROGRESS,
                            Cmd.HEARTBEAT, Cmd.BYE, Cmd.STARTED}),
    Role.CLIENT: frozenset({Cmd.SUBMIT, Cmd.WATCH, Cmd.CANCEL, Cmd.QUERY, Cmd.HEARTBEAT}),
    Role.MASTER: frozenset({Cmd.WELCOME, Cmd.TASK, Cmd.ACK, Cmd.CANCEL, Cmd.HEARTBEAT,
                            Cmd.DISCONNECT, Cmd.ACCEPTED, Cmd.REJECTED, Cmd.BUSY, Cmd.RESULT,
                            Cmd.PARTIAL, Cmd.PROGRESS, Cmd.REPLY, Cmd.ERROR, Cmd.EVENTS,
                            Cmd.STANDBY}),
}

_packb = msgpack.Packer(use_bin_type=True).pack


class _TooManyContainers(Exception):
    pass


def _unpack(header: bytes) -> Any:
    n = len(header)
    if n > MAX_HEADER:
        raise ProtocolError(f"header of {n} bytes is over the {MAX_HEADER} limit")
    try:  # lengths bounded (_LIMITS); nesting by msgpack's own stack (1,024 levels)
        if n <= BIG_HEADER:
            return msgpack.unpackb(header, **_LIMITS)
        left = [n // CONTAINER_BYTES + 1024]

        def count(x: Any) -> Any:
            left[0] -= 1
            if left[0] < 0:
                raise _TooManyContainers
            return x
        return msgpack.unpackb(header, list_hook=count, object_hook=count, **_LIMITS)
    except _TooManyContainers:
        raise ProtocolError(f"header of {n} bytes holds more than one array or map per "
                            f"{CONTAINER_BYTES} bytes: refused") from None
    except Exception as e:  # msgpack raises many types: ExtraData, ValueError, StackError...
        raise ProtocolError(f"header is not valid msgpack: {type(e).__name__}: {e}") from e


# --- encoding -------------------------------------------------------------------------

def encode(role: Role, msg: m.Message) -> list[Any]:
    """Frames for msg sent by role. Large payloads go out as frames of their own."""
    extra: list[Any] = []
    fields = _FIELDS_OUT[msg.cmd](msg, extra)
    return [SIGNATURES[role], _packb([int(msg.cmd), *fields]), *extra]


def _out_payload(payload: Any, extra: list[Any]) -> Any:
    if type(payload) is Parts:  # [body, frame indexes...]: its frames always go as frames
        out = [_out_payload(payload.body, extra)]
        for f in payload.frames:
            extra.append(f)
            out.append(len(extra) - 1)
        return out
    if len(payload) < LARGE_PAYLOAD:
        return payload
    extra.append(payload)
    return len(extra) - 1


def _out_entries(entries: Sequence[Sequence[Any]], at: int, extra: list[Any]) -> list[Any]:
    """Entries with the payload at index `at` moved to a frame when it is large, and a
    Parts payload's frames always."""
    out = []
    for e in entries:
        p = e[at]
        if type(p) is not bytes or len(p) >= LARGE_PAYLOAD:
            e = list(e)
            if type(p) is Refs:  # a TASK whose arguments refer to results (1.4): the
                e[at] = _out_payload(p.payload, extra)  # results in a 7th field
                e.append([[tid, _out_payload(r, extra)] for tid, r in p.refs])
            else:
                e[at] = _out_payload(p, extra)
        out.append(e)
    return out


def _hello_fields(x: m.Hello) -> list[Any]:
    fields = [x.name, x.host, x.pid, x.queues, x.concurrency, x.pool, x.credit, x.running]
    if x.session:  # without one it is a 1.0 HELLO
        fields += [x.session, x.catalogue]
        if x.allow_code or x.started:  # 1.4, sent only when set
            fields += [x.allow_code, x.started]
    return fields


_FIELDS_OUT: dict[Cmd, Callable[[Any, list[Any]], list[Any]]] = {
    Cmd.HELLO: lambda x, _: _hello_fields(x),
    Cmd.WELCOME: lambda x, _: [x.heartbeat_interval, x.liveness, x.max_message, x.master_id,
                               x.started],
    Cmd.CREDIT: lambda x, _: [x.credit, x.returned],
    Cmd.TASK: lambda x, extra: [_out_entries(x.entries, 3, extra)],
    Cmd.PARTIAL: lambda x, extra: [_out_entries(x.entries, 3, extra)],
    Cmd.PROGRESS: lambda x, _: [x.entries],
    Cmd.RESULT: lambda x, extra: [_out_entries(x.entries, len(x.entries[0]) - 1, extra)
                                  if x.entries else []],
    Cmd.ACK: lambda x, _: [x.ids],
    Cmd.CANCEL: lambda x, _: [x.ids],
    Cmd.HEARTBEAT: lambda x, _: [],
    Cmd.BYE: lambda x, _: [x.returned],
    Cmd.DISCONNECT: lambda x, _: [x.reason, True] if x.final else [x.reason],
    Cmd.SUBMIT: lambda x, extra: [_out_entries(x.entries, 2, extra)],
    Cmd.ACCEPTED: lambda x, _: [x.ids, x.same_as],
    Cmd.REJECTED: lambda x, _: [x.entries],
    Cmd.BUSY: lambda x, _: [x.ids, x.retry_after],
    Cmd.WATCH: lambda x, _: [x.ids],
    Cmd.QUERY: lambda x, _: [x.request_id, x.kind, x.args],
    Cmd.REPLY: lambda x, _: [x.request_id, x.ok, x.body],
    Cmd.ERROR: lambda x, _: [x.reason],
    Cmd.EVENTS: lambda x, _: [x.first, x.events, x.dropped],
    Cmd.STANDBY: lambda x, _: [x.active],
    Cmd.STARTED: lambda x, _: [x.entries],
}


# --- decoding -------------------------------------------------------------------------

def decode(frames: Sequence[Any]) -> tuple[Role, m.Message]:
    """The sender's role and its message; ProtocolError for anything malformed."""
    if len(frames) < 2:
        raise ProtocolError(f"expected at least 2 frames, got {len(frames)}")
    if len(frames) > MAX_FRAMES:
        raise ProtocolError(f"too many frames: {len(frames)} > {MAX_FRAMES}")
    role = ROLE_OF_SIGNATURE.get(bytes(frames[0]))
    if role is None:
        raise ProtocolError(f"unknown signature {bytes(frames[0][:8])!r}: not a zq v1 peer")
    if len(frames) == 2 and frames[1] == _HEARTBEAT_HEADER:  # every role may send it
        return role, _HEARTBEAT  # idle, most of what a master reads: no unpacking
    header = _unpack(frames[1])
    if type(header) is not list or not header or type(header[0]) is not int:
        raise ProtocolError("header must be an array starting with a command code")
    cmd = _CMD_OF.get(header[0])  # a dict: Cmd(code) costs an enum call per message
    if cmd is None:
        raise ProtocolError(f"unknown command {header[0]}")
    if cmd not in ALLOWED[role]:
        raise ProtocolError(f"a {role.name.lower()} may not send {cmd.name}")
    decoder = _DECODERS[cmd]
    fields = header[1:]
    if len(fields) < decoder.arity:
        raise ProtocolError(f"{cmd.name} needs {decoder.arity} fields, got {len(fields)}")
    try:
        return role, decoder(role, fields, _Frames(frames) if len(frames) > 2 else _NO_FRAMES)
    except ProtocolError:
        raise
    except (TypeError, ValueError, IndexError, KeyError, AttributeError) as e:
        raise ProtocolError(f"malformed {cmd.name}: {e}") from e


class _Frames:
    """A message's payload frames (after signature and header), each of which one
    payload of the message may take, once: a frame referred to twice would make the
    master keep (and store) its bytes twice for a header of a few bytes."""

    __slots__ = ("frames", "taken")

    def __init__(self, frames: Sequence[Any]) -> None:
        self.frames = frames
        self.taken: set[int] = set()

    def take(self, v: Any) -> Any:
        """Frame v (an index from the header: 0 is the message's third frame)."""
        if type(v) is not int or not 0 <= v < len(self.frames) - 2:
            raise _bad(f"payload frame index {str(v)[:20]} is not one of the message's "
                       f"{max(len(self.frames) - 2, 0)} payload frames")
        if v in self.taken:
            raise _bad(f"payload frame {v} is referred to twice")
        self.taken.add(v)
        return self.frames[v + 2]


_NO_FRAMES = _Frames(())


class _Decoder:
    def __init__(self, arity: int, fn: Callable[[Role, list[Any], _Frames], m.Message]):
        self.arity = arity
        self.fn = fn

    def __call__(self, role: Role, fields: list[Any], extra: _Frames) -> m.Message:
        return self.fn(role, fields, extra)


def _bad(what: str) -> ProtocolError:
    return ProtocolError(what)


def _str(v: Any, what: str, limit: int = MAX_NAME) -> str:
    if type(v) is not str or len(v) > limit:
        raise _bad(f"{what} must be a string of at most {limit} characters")
    return v


def _int(v: Any, what: str, lo: int = 0, hi: int = 2**62) -> int:
    if type(v) is not int or not lo <= v <= hi:
        raise _bad(f"{what} must be an integer in [{lo}, {hi}]")
    return v


def _num(v: Any, what: str) -> float:
    if type(v) not in (int, float) or v != v:  # reject NaN
        raise _bad(f"{what} must be a number")
    return float(v)


def _bool(v: Any, what: str) -> bool:
    if type(v) is not bool:
        raise _bad(f"{what} must be true or false")
    return v


def _list(v: Any, what: str) -> list[Any]:
    if type(v) is not list:
        raise _bad(f"{what} must be an array")
    return v


def _events(v: Any) -> list[dict[str, Any]]:
    """EVENTS entries: maps with a string kind and a numeric time (1.3). Their other
    fields are only shown to a person, never acted on."""
    out = _list(v, "EVENTS events")
    for e in out:
        if type(e) is not dict:
            raise _bad("EVENTS: each event must be a map")
        _str(e.get("kind"), "EVENTS kind", 32)
        _num(e.get("time"), "EVENTS time")
    return out


def _ids(v: Any, what: str = "ids") -> list[str]:
    ids = _list(v, what)
    for i in ids:
        if type(i) is not str or not 0 < len(i) <= MAX_ID:
            raise _bad(f"{what}: a task id must be a non-empty string of at most {MAX_ID}")
    return ids


def _refused(e: Any, index: int, err: ProtocolError) -> m.BadEntry:
    """A refused entry: its task id if it has a valid one (else None, and the reason
    says which entry it was), and why."""
    tid = e[0] if type(e) is list and e else None
    if type(tid) is str and 0 < len(tid) <= MAX_ID:
        return tid, str(err)
    return None, f"entry #{index}: {err}"


def _split_ids(v: Any, what: str, limit: int = MAX_IDS) -> tuple[list[str], list[m.BadEntry]]:
    """Task ids from a peer, each checked alone: (the good ones, once each, in order;
    the refused ones). Over `limit` ids the whole message is refused."""
    ids = _list(v, what)
    if len(ids) > limit:
        raise _bad(f"{what}: {len(ids)} ids in one message, over the limit of {limit}")
    good: list[str] = []
    bad: list[m.BadEntry] = []
    for i, tid in enumerate(ids):
        if type(tid) is str and 0 < len(tid) <= MAX_ID:
            good.append(tid)
        else:
            bad.append((None, f"{what} entry #{i}: a task id must be a non-empty string "
                        f"of at most {MAX_ID} characters"))
    if len(good) > 1:
        good = list(dict.fromkeys(good))  # once each: a repeated id is answered once
    return good, bad


def _payload(v: Any, extra: _Frames) -> Any:
    """A payload field: bin, the index of a frame, or (1.4) [body, frame indexes...]
    where body is bin or an index. A frame is bytes, or a buffer from the transport
    (a plain payload's is copied into bytes here, as it always was; a Parts frame is
    kept as the buffer it is, so a numpy array can be rebuilt over it)."""
    if type(v) is bytes:
        return v
    if type(v) is int:
        f = extra.take(v)
        return f if type(f) is bytes else bytes(f)
    if type(v) is list:
        return _parts(v, extra)
    raise _bad("payload must be bin, the index of a payload frame, or an array "
               "[body, frame indexes...]")


def _parts(v: list[Any], extra: _Frames) -> Parts:
    if not 2 <= len(v) <= MAX_PAYLOAD_FRAMES + 1:
        raise _bad(f"a payload with frames must be [body, 1 to {MAX_PAYLOAD_FRAMES} frame "
                   f"indexes], not an array of {len(v)}")
    body = v[0]
    if type(body) is not bytes:
        if type(body) is not int:
            raise _bad("a payload's body must be bin or the index of a payload frame")
        f = extra.take(body)
        body = f if type(f) is bytes else bytes(f)
    frames = []
    for k in v[1:]:
        if type(k) is not int:
            raise _bad("a payload's frames must be given by their indexes")
        frames.append(extra.take(k))
    return Parts(body, frames)


def _entries(v: Any, width: int, what: str) -> list[Any]:
    entries = _list(v, what)
    for e in entries:
        if type(e) is not list or len(e) < width:
            raise _bad(f"{what}: each entry must be an array of {width}")
        if type(e[0]) is not str or not 0 < len(e[0]) <= MAX_ID:
            raise _bad(f"{what}: a task id must be a non-empty string of at most {MAX_ID}")
    return entries


def _label(v: Any, what: str) -> str:
    """A name a peer gives itself, shown in logs and `zq status`: printable, so it
    cannot forge a log line."""
    if type(v) is not str or not 0 < len(v) <= MAX_NAME or not v.isprintable():
        raise _bad(f"{what} must be a non-empty printable string of at most {MAX_NAME} "
                   "characters")
    return v


def is_session_token(v: Any) -> bool:
    return (type(v) is str and SESSION_MIN <= len(v) <= SESSION_MAX and v.isascii()
            and v.isalnum())


def _hello(role: Role, f: list[Any], extra: _Frames) -> m.Hello:
    queues = _list(f[3], "queues")
    if len(queues) > MAX_QUEUES:
        raise _bad(f"HELLO: at most {MAX_QUEUES} queues")
    for q in queues:
        _str(q, "queue")
    session = ""
    if len(f) > 8:  # 1.1; a 1.0 worker sends none and is known by its name
        session = f[8]
        if not is_session_token(session):
            raise _bad(f"HELLO: the session token must be {SESSION_MIN} to {SESSION_MAX} "
                       "ASCII letters and digits")
    catalogue = _catalogue(f[9]) if len(f) > 9 else {}
    allow_code = f[10] if len(f) > 10 else False  # 1.4
    if type(allow_code) is not bool:
        raise _bad("HELLO: allow_code must be a boolean")
    started = _bool(f[11], "HELLO started") if len(f) > 11 else False  # 1.4
    return m.Hello(name=_label(f[0], "name"), host=_label(f[1], "host"),
                   pid=_int(f[2], "pid"), queues=queues,
                   concurrency=_int(f[4], "concurrency", 0, 1 << 20), pool=_label(f[5], "pool"),
                   credit=_int(f[6], "credit", 0, 1 << 24), running=_ids(f[7], "running"),
                   session=session, catalogue=catalogue, allow_code=allow_code,
                   started=started)


def _catalogue(v: Any) -> dict[str, dict[str, Any]]:
    if type(v) is not dict:
        raise _bad("HELLO: the catalogue must be a map of task name to options")
    if len(v) > MAX_CATALOGUE:
        raise _bad(f"HELLO: at most {MAX_CATALOGUE} task names in the catalogue")
    size = 0
    for name, opts in v.items():
        size += check_catalogue_entry(name, opts)
        if size > MAX_CATALOGUE_CHARS:
            raise _bad(f"HELLO: the catalogue is over {MAX_CATALOGUE_CHARS} characters")
    return v


def fit_catalogue(catalogue: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """What of a worker's catalogue a HELLO can carry: its valid entries, in name order,
    within MAX_CATALOGUE and MAX_CATALOGUE_CHARS; and why the others were left out."""
    out: dict[str, Any] = {}
    problems: list[str] = []
    size = 0
    for name in sorted(catalogue):
        try:
            n = check_catalogue_entry(name, catalogue[name])
        except ProtocolError as e:
            problems.append(str(e))
            continue
        if len(out) >= MAX_CATALOGUE or size + n > MAX_CATALOGUE_CHARS:
            problems.append(f"{len(catalogue) - len(out)} task names are over the HELLO "
                            f"limits ({MAX_CATALOGUE} names, {MAX_CATALOGUE_CHARS} characters)")
            break
        out[name] = catalogue[name]
        size += n
    return out, problems


def check_catalogue_entry(name: Any, opts: Any) -> int:
    """ProtocolError unless name is a task name and opts options it may declare; else
    the entry's size in characters (what MAX_CATALOGUE_CHARS counts)."""
    if type(name) is not str or not 0 < len(name) <= MAX_NAME:
        raise _bad(f"catalogue: a task name must be a string of 1 to {MAX_NAME} characters")
    if type(opts) is not dict:
        raise _bad(f"catalogue: the options of {name} must be a map")
    size = len(name)
    for k, v in opts.items():
        if k not in m.DECLARABLE:
            raise _bad(f"catalogue: {name} declares {k!r}, which a task cannot declare "
                       f"(only {', '.join(sorted(m.DECLARABLE))})")
        _check_option(k, v)
        size += len(k) + (len(v) if type(v) is str else
                          sum(len(n) + 1 for n in v) if type(v) is list else 8)
    return size


def _task(role: Role, f: list[Any], extra: _Frames) -> m.Task:
    out = []
    for e in _entries(f[0], 6, "TASK"):
        timeout = None if e[4] is None else _num(e[4], "timeout")
        retry_on = None if e[5] is None else [_str(n, "retry_on") for n in _list(e[5], "retry_on")]
        payload = _payload(e[3], extra)
        if len(e) > 6 and e[6] is not None:
            payload = Refs(payload, _inputs(e[6], extra))
        out.append((e[0], _int(e[1], "attempt"), _str(e[2], "task name"), payload,
                    timeout, retry_on))
    return m.Task(out)


def _inputs(v: Any, extra: _Frames) -> list[tuple[str, Any]]:
    """A TASK entry's inputs (1.4): [[task id, result payload], ...]."""
    out = []
    for pair in _list(v, "TASK inputs"):
        if type(pair) is not list or len(pair) != 2:
            raise _bad("TASK inputs: each must be [task id, payload]")
        out.append((_str(pair[0], "input task id", MAX_ID), _payload(pair[1], extra)))
    return out


_MAX_INT = 2**62
_MAX_OUTCOME = max(m.Outcome)  # hoisted: iterating an Enum per entry cost ~6 us
_MAX_STATE = max(m.State)


def _result(role: Role, f: list[Any], extra: _Frames) -> m.Result:
    # One fused check per entry on the hot path; an entry that fails it is checked
    # again field by field, and refused alone (m.Result.bad) if it is bad.
    out: list[Any] = []
    bad: list[m.BadEntry] = []
    append = out.append
    if role is Role.WORKER:  # (task_id, attempt, outcome, payload)
        for e in _list(f[0], "RESULT"):
            if (type(e) is list and len(e) >= 4 and type(e[0]) is str and 0 < len(e[0]) <= MAX_ID
                    and type(e[1]) is int and 0 <= e[1] <= _MAX_INT and type(e[2]) is int
                    and 0 <= e[2] <= _MAX_OUTCOME and type(e[3]) is bytes):
                append((e[0], e[1], e[2], e[3]))
                continue
            try:
                _entries([e], 4, "RESULT")
                append((e[0], _int(e[1], "attempt"), _int(e[2], "outcome", 0, _MAX_OUTCOME),
                        _payload(e[3], extra)))
            except ProtocolError as err:
                bad.append(_refused(e, len(out) + len(bad), err))
    else:  # (task_id, state, payload): from the master, which sends good entries only
        for e in _list(f[0], "RESULT"):
            if (type(e) is list and len(e) >= 3 and type(e[0]) is str and 0 < len(e[0]) <= MAX_ID
                    and type(e[1]) is int and 0 <= e[1] <= _MAX_STATE and type(e[2]) is bytes):
                append((e[0], e[1], e[2]))
            else:
                _entries([e], 3, "RESULT")
                append((e[0], _int(e[1], "state", 0, _MAX_STATE), _payload(e[2], extra)))
    return m.Result(out, bad)


def _each(entries: Any, width: int, what: str,
          check: Callable[[list[Any]], Any]) -> tuple[list[Any], list[m.BadEntry]]:
    """Entries checked one by one: (the checked ones, the refused ones)."""
    out: list[Any] = []
    bad: list[m.BadEntry] = []
    for i, e in enumerate(_list(entries, what)):
        try:
            _entries([e], width, what)
            out.append(check(e))
        except ProtocolError as err:
            bad.append(_refused(e, i, err))
    return out, bad


def _partial(role: Role, f: list[Any], extra: _Frames) -> m.Partial:
    out, bad = _each(f[0], 4, "PARTIAL", lambda e: (
        e[0], _int(e[1], "attempt"), _int(e[2], "seq"), _payload(e[3], extra)))
    return m.Partial(out, bad)


def _progress(role: Role, f: list[Any], extra: _Frames) -> m.Progress:
    out, bad = _each(f[0], 4, "PROGRESS", lambda e: (
        e[0], _int(e[1], "attempt"), _num(e[2], "done"), _num(e[3], "total")))
    return m.Progress(out, bad)


def _started(role: Role, f: list[Any], extra: _Frames) -> m.Started:
    entries = _list(f[0], "STARTED")
    if len(entries) > MAX_IDS:
        raise _bad(f"STARTED: {len(entries)} entries in one message, over the limit of "
                   f"{MAX_IDS}")
    out, bad = _each(entries, 2, "STARTED", lambda e: (e[0], _int(e[1], "attempt")))
    return m.Started(out, bad)


def _submit(role: Role, f: list[Any], extra: _Frames) -> m.Submit:
    out: list[Any] = []
    bad: list[m.BadEntry] = []
    append = out.append
    for e in _list(f[0], "SUBMIT"):
        if (type(e) is list and len(e) >= 4 and type(e[0]) is str and 0 < len(e[0]) <= MAX_ID
                and type(e[1]) is str and len(e[1]) <= MAX_NAME and type(e[2]) is bytes
                and type(e[3]) is dict and not e[3]):  # the hot path: no options
            append((e[0], e[1], e[2], e[3]))
            continue
        try:
            append(_submit_entry(e, extra))
        except ProtocolError as err:
            bad.append(_refused(e, len(out) + len(bad), err))
    return m.Submit(out, bad)


def _submit_entry(e: Any, extra: _Frames) -> m.SubmitEntry:
    _entries([e], 4, "SUBMIT")
    opts = e[3]
    if type(opts) is not dict:
        raise _bad("SUBMIT: options must be a map")
    for k, v in opts.items():
        _check_option(k, v)
    return (e[0], _str(e[1], "task name"), _payload(e[2], extra), opts)


def _check_option(k: Any, v: Any) -> None:
    want = m.SUBMIT_OPTIONS.get(k)
    if want is None:
        raise _bad(f"SUBMIT: unknown option {str(k)[:64]!r} (this master knows "
                   f"{', '.join(m.SUBMIT_OPTIONS)})")
    if want is float:
        if _num(v, k) in (_INF, -_INF):
            raise _bad(f"SUBMIT: option {k!r} must be a finite number")
    elif type(v) is not want:
        raise _bad(f"SUBMIT: option {k!r} must be {want.__name__}")
    elif k == "after" or k == "inputs":  # ids the scheduler looks up (hashable)
        _ids(v, k)
    elif k == "retry_on":  # forwarded in TASK, where a worker checks it is [str]
        for n in _list(v, "retry_on"):
            _str(n, "retry_on")
    elif want is str:
        _str(v, k)


_INF = float("inf")


def _rejected(role: Role, f: list[Any], extra: _Frames) -> m.RejectedEntries:
    entries = _entries(f[0], 2, "REJECTED")
    return m.RejectedEntries([(e[0], _str(e[1], "reason", 1 << 16)) for e in entries])


def _query(role: Role, f: list[Any], extra: _Frames) -> m.Query:
    if type(f[2]) is not dict:
        raise _bad("QUERY: args must be a map")
    return m.Query(_int(f[0], "request id"), _str(f[1], "kind"), f[2])


def _disconnect(role: Role, f: list[Any], extra: _Frames) -> m.Disconnect:
    final = f[1] if len(f) > 1 else False  # 1.4
    if type(final) is not bool:
        raise _bad("DISCONNECT: final must be a boolean")
    return m.Disconnect(_str(f[0], "reason", 1 << 16), final)


def _accepted(role: Role, f: list[Any], extra: _Frames) -> m.Accepted:
    if type(f[1]) is not dict:
        raise _bad("ACCEPTED: same_as must be a map")
    _ids(list(f[1]), "same_as")
    _ids(list(f[1].values()), "same_as")
    return m.Accepted(_ids(f[0]), f[1])


_DECODERS: dict[Cmd, _Decoder] = {
    Cmd.HELLO: _Decoder(8, _hello),
    Cmd.WELCOME: _Decoder(4, lambda r, f, x: m.Welcome(
        _num(f[0], "interval"), _int(f[1], "liveness", 1, 1000), _int(f[2], "max_message"),
        _str(f[3], "master_id"), _bool(f[4], "WELCOME started") if len(f) > 4 else False)),
    Cmd.CREDIT: _Decoder(2, lambda r, f, x: m.Credit(_int(f[0], "credit", 0, 1 << 24),
                                                      *_split_ids(f[1], "CREDIT returned"))),
    Cmd.TASK: _Decoder(1, _task),
    Cmd.PARTIAL: _Decoder(1, _partial),
    Cmd.PROGRESS: _Decoder(1, _progress),
    Cmd.RESULT: _Decoder(1, _result),
    Cmd.ACK: _Decoder(1, lambda r, f, x: m.Ack(_ids(f[0]))),
    Cmd.CANCEL: _Decoder(1, lambda r, f, x: m.Cancel(*_split_ids(f[0], "CANCEL"))
                         if r is not Role.MASTER else m.Cancel(_ids(f[0]))),
    Cmd.HEARTBEAT: _Decoder(0, lambda r, f, x: m.Heartbeat()),
    Cmd.BYE: _Decoder(1, lambda r, f, x: m.Bye(*_split_ids(f[0], "BYE returned"))),
    Cmd.DISCONNECT: _Decoder(1, _disconnect),
    Cmd.SUBMIT: _Decoder(1, _submit),
    Cmd.ACCEPTED: _Decoder(2, _accepted),
    Cmd.REJECTED: _Decoder(1, _rejected),
    Cmd.BUSY: _Decoder(2, lambda r, f, x: m.Busy(_ids(f[0]), _num(f[1], "retry_after"))),
    Cmd.WATCH: _Decoder(1, lambda r, f, x: m.Watch(*_split_ids(f[0], "WATCH"))),
    Cmd.QUERY: _Decoder(3, _query),
    Cmd.REPLY: _Decoder(3, lambda r, f, x: m.Reply(_int(f[0], "request id"), bool(f[1]), f[2])),
    Cmd.ERROR: _Decoder(1, lambda r, f, x: m.Error(_str(f[0], "reason", 1 << 16))),
    Cmd.EVENTS: _Decoder(3, lambda r, f, x: m.Events(
        _int(f[0], "EVENTS first"), _events(f[1]), _int(f[2], "EVENTS dropped"))),
    Cmd.STANDBY: _Decoder(1, lambda r, f, x: m.Standby(_str(f[0], "STANDBY active",
                                                            MAX_ENDPOINT))),
    Cmd.STARTED: _Decoder(1, _started),
}
