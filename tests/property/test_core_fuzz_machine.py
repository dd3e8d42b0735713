"""A hypothesis state machine that throws arbitrary messages at the master core (issue 9,
"Fuzzing"): every command from both roles, fields of random types and sizes, forged and
replayed task ids, results for tasks never leased, huge credits, queries of every kind
with random arguments, and raw garbage. Each message goes the way a real one does:
msgpack bytes through codec.decode (a ProtocolError is a refusal, fine), then to the
core handler the master would call. After every step `validate()` holds, and no
exception ever escapes a handler. Follows tests/property/test_master_core_machine.py.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from zq.core import codec, queries
from zq.core import messages as m
from zq.core.access import Caller
from zq.core.master_core import MasterCore
from zq.core.messages import Cmd, Role
from zq.errors import ProtocolError

WORKERS = [b"w1", b"w2", b"w3"]
CLIENTS = [b"c1", b"c2"]
FIXED_IDS = ["t1", "t2", "t3", "a@1", "x" * 128]

junk = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.floats(),
              st.text(max_size=8), st.binary(max_size=8)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=10)
numbers = st.one_of(st.integers(-5, 2**40), st.floats(), st.just(2**24), st.just(2**63 - 1))
payloads = st.one_of(st.binary(max_size=16), st.none(), st.integers(-1, 3), st.text(max_size=3))


class CoreFuzz(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.s = MasterCore(master_id="fuzz", durable=True, rand=lambda: 0.5, max_finished=5,
                           result_ttl=20.0)
        self.now, self.wall = 0.0, 1_000_000.0
        self.s.advance(self.now, self.wall)
        self.ids: list[str] = list(FIXED_IDS)  # seen on the wire: replayed and forged

    # --- plumbing: bytes -> codec -> the handler the master would call -----------------

    def _id(self, data: st.DataObject) -> Any:
        return data.draw(st.one_of(st.sampled_from(self.ids), st.text(min_size=1, max_size=6),
                                   junk), label="id")

    def _deliver(self, rid: bytes, role: Role, header: list[Any]) -> None:
        try:
            raw = msgpack.packb(header, use_bin_type=True)
        except (TypeError, ValueError, OverflowError):
            return  # not even msgpack: nothing reaches the master
        try:
            _, msg = codec.decode([codec.SIGNATURES[role], raw])
        except ProtocolError:
            self.s.on_bad_message(rid, "refused")
            return
        self._handle(rid, role, msg)

    def _handle(self, rid: bytes, role: Role, msg: m.Message) -> None:
        """Master._handle's dispatch, without sockets."""
        s = self.s
        for tid in getattr(msg, "ids", None) or []:
            if type(tid) is str and tid not in self.ids and len(self.ids) < 200:
                self.ids.append(tid)
        if role is Role.WORKER:
            if isinstance(msg, m.Hello):
                s.on_hello(rid, msg)
            else:
                w = s.touch_worker(rid)
                if w is None:
                    return
                if isinstance(msg, m.Credit):
                    s.on_credit(w, msg)
                elif isinstance(msg, m.Result):
                    s.on_worker_results(w, msg.entries)
                elif isinstance(msg, m.Partial):
                    s.on_partial(w, msg.entries)
                elif isinstance(msg, m.Progress):
                    s.on_progress(w, msg.entries)
                elif isinstance(msg, m.Bye):
                    s.on_bye(w, msg)
        else:
            caller = Caller(rid, None, True) if rid == CLIENTS[0] else Caller(rid, "k", False)
            if isinstance(msg, m.Submit):
                s.on_submit(rid, msg.entries)
                self.ids.extend(e[0] for e in msg.entries if len(self.ids) < 200)
            elif isinstance(msg, m.Watch):
                s.on_watch(rid, msg.ids)
            elif isinstance(msg, m.Cancel):
                s.on_cancel(rid, msg.ids)
            elif isinstance(msg, m.Query):
                s.on_query(caller, msg.request_id, msg.kind, msg.args)
            elif isinstance(msg, m.Heartbeat):
                s.on_client_heartbeat(rid)
        bad = getattr(msg, "bad", None)
        if bad:
            s.on_bad_entries(rid, msg.cmd, bad)

    # --- rules ---------------------------------------------------------------------------

    @rule(rid=st.sampled_from(WORKERS), data=st.data(), credit=numbers, concurrency=numbers,
          name=st.sampled_from(["w", "w1", "other"]))
    def hello(self, rid: bytes, data: st.DataObject, credit: Any, concurrency: Any,
              name: str) -> None:
        running = data.draw(st.lists(st.sampled_from(self.ids), max_size=4))
        self._deliver(rid, Role.WORKER, [Cmd.HELLO, name, "h", 1, ["default"], concurrency,
                                         "thread", credit, running,
                                         data.draw(st.sampled_from([None, "a" * 32, "b" * 32]))])

    @rule(rid=st.sampled_from(WORKERS), data=st.data())
    def results(self, rid: bytes, data: st.DataObject) -> None:
        entries = [[self._id(data), data.draw(numbers), data.draw(st.integers(-1, 4)),
                    data.draw(payloads)] for _ in range(data.draw(st.integers(0, 4)))]
        if data.draw(st.booleans()):  # the attempt the master gave, when it leased one
            for e in entries:
                t = self.s.tasks.get(e[0]) if type(e[0]) is str else None
                if t is not None:
                    e[1] = t.attempt
        self._deliver(rid, Role.WORKER, [Cmd.RESULT, entries])

    @rule(rid=st.sampled_from(WORKERS), data=st.data(),
          cmd=st.sampled_from([Cmd.PARTIAL, Cmd.PROGRESS, Cmd.CREDIT, Cmd.BYE, Cmd.HEARTBEAT]))
    def worker_other(self, rid: bytes, data: st.DataObject, cmd: Cmd) -> None:
        if cmd is Cmd.CREDIT:
            header = [cmd, data.draw(numbers), [self._id(data) for _ in range(2)]]
        elif cmd is Cmd.BYE:
            header = [cmd, [self._id(data)]]
        elif cmd is Cmd.HEARTBEAT:
            header = [cmd]
        else:
            header = [cmd, [[self._id(data), data.draw(numbers), data.draw(numbers),
                             data.draw(payloads)]]]
        self._deliver(rid, Role.WORKER, header)

    @rule(rid=st.sampled_from(CLIENTS), data=st.data())
    def submit(self, rid: bytes, data: st.DataObject) -> None:
        keys = st.one_of(st.sampled_from(sorted(m.SUBMIT_OPTIONS)), st.text(max_size=5))
        values = st.one_of(numbers, st.text(max_size=6), st.lists(st.sampled_from(self.ids),
                                                                  max_size=2), junk,
                           st.sampled_from(["1/s", "5/m", "0/s", "x"]))
        entries = [[data.draw(st.one_of(st.sampled_from(self.ids), st.text(min_size=1,
                                                                           max_size=6))),
                    data.draw(st.sampled_from(["app:f", "app:g", 3])), data.draw(payloads),
                    data.draw(st.dictionaries(keys, values, max_size=3))]
                   for _ in range(data.draw(st.integers(0, 4)))]
        self._deliver(rid, Role.CLIENT, [Cmd.SUBMIT, entries])

    @rule(rid=st.sampled_from(CLIENTS), data=st.data(), cmd=st.sampled_from([Cmd.WATCH,
                                                                              Cmd.CANCEL]))
    def watch_or_cancel(self, rid: bytes, data: st.DataObject, cmd: Cmd) -> None:
        ids = [self._id(data) for _ in range(data.draw(st.integers(0, 4)))]
        self._deliver(rid, Role.CLIENT, [cmd, ids * data.draw(st.integers(1, 3))])

    @rule(rid=st.sampled_from(CLIENTS), data=st.data(),
          kind=st.one_of(st.sampled_from(sorted(queries.KINDS)), st.text(max_size=6)))
    def query(self, rid: bytes, data: st.DataObject, kind: str) -> None:
        args = data.draw(st.dictionaries(
            st.one_of(st.sampled_from(["id", "state", "limit", "name", "task", "every",
                                       "cron", "queue", "priority", "older_than", "anchor",
                                       "args", "kwargs", "timezone"]), st.text(max_size=4)),
            st.one_of(numbers, st.sampled_from(self.ids), st.sampled_from(
                ["queued", "succeeded", "m:f", "* * * * *", "UTC"]), junk), max_size=5))
        self._deliver(rid, Role.CLIENT, [Cmd.QUERY, data.draw(st.integers(0, 9)), kind, args])

    @rule(rid=st.sampled_from(WORKERS + CLIENTS), role=st.sampled_from([Role.WORKER,
                                                                         Role.CLIENT]),
          header=st.lists(junk, max_size=5), cmd=st.integers(-1, 22))
    def garbage(self, rid: bytes, role: Role, header: list[Any], cmd: int) -> None:
        self._deliver(rid, role, [cmd, *header])

    @rule(dt=st.sampled_from([0.0, 0.3, 1.0, 3.5, 8.0, 30.0]), dispatch=st.booleans())
    def time_passes(self, dt: float, dispatch: bool) -> None:
        self.now += dt
        self.wall += dt
        self.s.advance(self.now, self.wall)
        if dispatch:
            self.s.dispatch()
        self.s.housekeeping()
        self.s.dispatch()

    @invariant()
    def consistent(self) -> None:
        self.s.validate()
        out = self.s.flush()
        for _, msg in out.messages:  # everything the master sends must encode
            frames = codec.encode(Role.MASTER, msg)
            assert len(frames[1]) <= codec.MAX_HEADER
        for w in self.s.workers.values():
            assert w.credit <= w.max_credit
        assert not any(math.isnan(t.eta) for t in self.s.tasks.values() if t.eta is not None)


CoreFuzz.TestCase.settings = settings(
    max_examples=60, stateful_step_count=25, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestCoreFuzz = CoreFuzz.TestCase
