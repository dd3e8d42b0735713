"""Code shipping without sockets (docs/TASKS.md, Code shipping): which callables travel by
value, the shipped payload's encoding and what a worker does with one (run it only with
--allow-code; a payload that does not load fails the task, never the pool), the 1.4
HELLO and DISCONNECT fields, the master's refusal of an --allow-code worker without
keys, and its routing of shipped tasks to the workers that run them."""

from __future__ import annotations

import functools
import pickle
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.apps import ship_tasks as apps
from zq import registry, shipping
from zq.client.options import make_spec
from zq.context import TaskContext
from zq.core import codec, queries, serde
from zq.core import master_events as mev
from zq.core import messages as m
from zq.core import worker_core as wc
from zq.core import worker_events as wev
from zq.core.master_core import MasterCore
from zq.core.messages import Outcome, Role
from zq.core.shipped import PREFIX, ready_key, task_name
from zq.errors import ConfigError
from zq.pools.runner import Runner

SESSION = "0123456789abcdef0123456789abcdef"


def _closure() -> Any:
    n = 5

    def inner(x: int) -> int:
        return x + n
    return inner


def _main_function(x: int) -> int:
    return x * 2


_main_function.__module__ = "__main__"  # as a script's own function is


class _CallableThing:
    def __call__(self, x: int) -> int:
        return x - 1


SHIPPED = {
    "lambda": lambda x: x + 1,
    "closure": _closure(),
    "bound method": apps.Scaler(3).scale,
    "function of __main__": _main_function,
    "partial": functools.partial(apps.add, 10),
    "callable instance": _CallableThing(),
}


# --- which callables ship ---------------------------------------------------------------

@pytest.mark.parametrize("fn", SHIPPED.values(), ids=SHIPPED.keys())
def test_what_no_worker_can_find_by_name_ships(fn):
    assert shipping.needs_shipping(fn)
    name, _ = make_spec(fn, {}, shipped=True)
    assert name.startswith(PREFIX) and len(name) <= codec.MAX_NAME


@pytest.mark.parametrize("fn", [apps.add, apps.Scaler, "tests.apps.ship_tasks:add", 42])
def test_what_goes_by_name_does_not_ship(fn):
    assert not shipping.needs_shipping(fn)


@pytest.mark.parametrize("fn", SHIPPED.values(), ids=SHIPPED.keys())
def test_without_ship_code_the_refusal_names_the_way_out(fn):
    with pytest.raises(ConfigError) as caught:
        make_spec(fn, {})  # what submit() and map() raise
    assert "ship_code=True" in str(caught.value)
    assert "--allow-code" in str(caught.value)


def test_a_shipped_name_is_printable_bounded_and_never_an_app_name():
    name = task_name("mod.f\n" + "x" * 2000)
    assert name.isprintable() and len(name) == codec.MAX_NAME
    reg = registry.Registry(["tests.apps.ship_tasks"])
    with pytest.raises(LookupError):
        reg.resolve(task_name("tests.apps.ship_tasks.add"))


# --- the payload ------------------------------------------------------------------------

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
    | st.binary(),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=150, deadline=None)
@given(args=st.lists(values, max_size=4), kwargs=st.dictionaries(
    st.text(min_size=1, max_size=8), values, max_size=3), pickled=st.booleans())
def test_a_call_round_trips_with_values_or_pickled_arguments(args, kwargs, pickled):
    if pickled:  # an argument values cannot carry sends the whole call pickled
        args = [*args, apps.Scaler(7)]
    code = shipping.dump_code(lambda *a, **k: (a, k))
    fn, got_args, got_kwargs = shipping.load(shipping.pack(code, tuple(args), kwargs))
    assert got_kwargs == kwargs
    assert got_args[:len(args) - pickled] == args[:len(args) - pickled]
    if pickled:
        assert type(got_args[-1]) is apps.Scaler and got_args[-1].k == 7
    assert fn(1, b=2) == ((1,), {"b": 2})


def test_values_travel_as_values_not_pickled():
    code = shipping.dump_code(lambda x: x)
    decoded = serde.decode_call(shipping.pack(code, (1, "a"), {"k": (1, 2)}))
    assert decoded == ([code, 1, "a"], {"k": (1, 2)})  # an ordinary call, code first


def _packed(*items: Any) -> bytes:
    return msgpack.packb(list(items), use_bin_type=True)


HOSTILE = {
    "code not a pickle": _packed([b"not a pickle"], {}),
    "code a pickle of no callable": _packed([pickle.dumps(42)], {}),
    "code not bytes": _packed(["text"], {}),
    "no code": _packed([], {}),
    "call not a pickle": _packed(shipping.dump_code(len), b"junk"),
    "call of the wrong shape": _packed(shipping.dump_code(len), pickle.dumps([1])),
    "a pickle that raises SystemExit": _packed([b"csys\nexit\n(I3\ntR."], {}),  # sys.exit(3)
    "not a list": msgpack.packb("x"),
    "not msgpack": b"\xc1",
}


@pytest.mark.parametrize("payload", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_payload_that_does_not_load_is_a_value_error(payload):
    with pytest.raises(ValueError):
        shipping.load(payload)


# --- the worker's runner ----------------------------------------------------------------

def run(payload: bytes, allow_code: bool, name: str = task_name("t.<lambda>")
        ) -> tuple[int, Any]:
    runner = Runner(registry.Registry(["tests.apps.ship_tasks"]), lambda *a: None,
                    allow_code=allow_code)
    outcome, data = runner.run(TaskContext("id", 1, name, lambda *a: None), payload, None)
    return outcome, (serde.decode_value(data) if outcome == Outcome.OK
                     else serde.decode_error(data))


def test_a_worker_with_allow_code_runs_shipped_code():
    payload = shipping.pack(shipping.dump_code(lambda a, b=0: (a * b, "t")), (6,), {"b": 7})
    assert run(payload, allow_code=True) == (Outcome.OK, (42, "t"))


def test_a_worker_without_allow_code_refuses_saying_how_and_runs_nothing():
    ran = []
    payload = shipping.pack(shipping.dump_code(lambda: ran.append(1)), (), {})
    outcome, error = run(payload, allow_code=False)
    assert outcome == Outcome.FATAL and error["type"] == "CodeNotAllowed"
    assert "zq worker --allow-code" in error["message"] and "--keys" in error["message"]
    # by name, the same runner still runs the app's tasks
    assert run(serde.encode_call((1, 2), {}), False, "tests.apps.ship_tasks:add") == \
        (Outcome.OK, 3)


@pytest.mark.parametrize("payload", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_payload_fails_its_task_not_the_worker(payload):
    outcome, error = run(payload, allow_code=True)
    assert outcome == Outcome.FATAL and error["type"] == "SerializationError"
    assert "cannot load the shipped task" in error["message"]


# --- the wire: HELLO allow_code, final DISCONNECT (1.4) ----------------------------------

def hello(allow_code: bool = False, queues: list[str] | None = None,
          session: str = SESSION) -> m.Hello:
    return m.Hello("w", "h", 1, queues or ["default"], 2, "thread", 4, [], session, {},
                   allow_code)


def roundtrip(role: Role, msg: m.Message) -> m.Message:
    return codec.decode(codec.encode(role, msg))[1]


def test_hello_carries_allow_code_only_when_set():
    assert roundtrip(Role.WORKER, hello(True)).allow_code is True
    plain = codec.encode(Role.WORKER, hello(False))
    assert roundtrip(Role.WORKER, hello(False)).allow_code is False
    assert plain == codec.encode(Role.WORKER, m.Hello("w", "h", 1, ["default"], 2, "thread",
                                                      4, [], SESSION, {}))  # a 1.3 HELLO


def test_a_final_disconnect_round_trips_and_a_plain_one_is_as_before():
    assert roundtrip(Role.MASTER, m.Disconnect("why", final=True)).final is True
    assert roundtrip(Role.MASTER, m.Disconnect("why")) == m.Disconnect("why", False)


def test_hello_and_disconnect_refuse_a_flag_that_is_not_a_boolean():
    frames = codec.encode(Role.WORKER, hello(True))
    header = msgpack.unpackb(frames[1], strict_map_key=False)
    header[11] = 1  # allow_code (the command, 10 fields, then allow_code and started)
    with pytest.raises(codec.ProtocolError, match="allow_code"):
        codec.decode([frames[0], msgpack.packb(header, use_bin_type=True), *frames[2:]])
    frames = codec.encode(Role.MASTER, m.Disconnect("why", final=True))
    header = msgpack.unpackb(frames[1], strict_map_key=False)
    header[-1] = "yes"
    with pytest.raises(codec.ProtocolError, match="final"):
        codec.decode([frames[0], msgpack.packb(header, use_bin_type=True), *frames[2:]])


def test_a_worker_told_a_final_disconnect_stops_with_a_nonzero_code():
    core = wc.WorkerCore(name="w", host="h", pid=7, queues=["default"], concurrency=2,
                         pool="thread", credit=4, session=SESSION, allow_code=True,
                         rand=lambda: 0.0)
    sent = [c.message for c in core.handle(wev.Started(1.0)) + core.tick(1.0)
            if isinstance(c, wev.Send)]
    assert [type(x) for x in sent] == [m.Hello] and sent[0].allow_code
    cmds = core.handle(wev.MessageReceived(m.Disconnect("no keys", final=True), 1.1))
    assert wev.Exit(wc.REFUSED_EXIT) in cmds and wc.REFUSED_EXIT != 0


# --- the master: refusal without keys, routing -------------------------------------------

def master() -> MasterCore:
    s = MasterCore(master_id="t")
    s.advance(1.0, 1000.0)
    return s


def register(s: MasterCore, rid: bytes, allow_code: bool, key: str | None = "K",
             queues: list[str] | None = None) -> list[m.Message]:
    session = (rid.hex() * 32)[:32]  # one worker process per rid
    s.handle(mev.MessageReceived(rid, Role.WORKER, hello(allow_code, queues, session), key))
    return [msg for r, msg in s.flush().messages if r == rid]


def test_a_master_without_keys_refuses_an_allow_code_worker_for_good():
    s = master()
    said = register(s, b"w", allow_code=True, key=None)
    assert [type(x) for x in said] == [m.Disconnect] and said[0].final
    assert "start the master with --keys" in said[0].reason
    assert s.workers == {}
    assert [type(x) for x in register(s, b"p", allow_code=False, key=None)] == [m.Welcome]


def test_a_master_with_keys_registers_an_allow_code_worker():
    s = master()
    assert [type(x) for x in register(s, b"w", allow_code=True)] == [m.Welcome]
    assert queries.status(s)["workers"][0]["allow_code"] is True


def leased(s: MasterCore) -> dict[bytes, list[str]]:
    s.dispatch()
    out: dict[bytes, list[str]] = {rid: [] for rid in s.workers}
    for rid, msg in s.flush().messages:
        if isinstance(msg, m.Task):
            out[rid] += [e[0] for e in msg.entries]
    s.validate()
    return out


def submit_shipped(s: MasterCore, ids: list[str], options: dict | None = None) -> None:
    s.on_submit(b"c", [(i, task_name("app.<lambda>"), b"", dict(options or {})) for i in ids])
    s.flush()


def test_shipped_tasks_go_only_to_allow_code_workers_while_one_serves_the_queue():
    s = master()
    register(s, b"plain", allow_code=False)
    submit_shipped(s, ["early"])
    register(s, b"coder", allow_code=True)
    submit_shipped(s, ["a", "b", "c"])
    submit_shipped(s, ["q"], {"queue": "default"})  # the slow path too
    s.on_submit(b"c", [("named", "app:f", b"", {})])
    got = leased(s)
    assert got[b"coder"] == ["early", "a", "b", "c"]  # its credit: 4
    assert got[b"plain"] == ["named"]  # not "q": it waits for the coder's credit
    assert s.tasks["q"].state is m.State.QUEUED


def test_without_an_allow_code_worker_every_worker_of_the_queue_takes_them():
    s = master()
    register(s, b"plain", allow_code=False)
    register(s, b"coder", allow_code=True)
    s.handle(mev.MessageReceived(b"coder", Role.WORKER, m.Bye([]), "K"))  # it leaves
    s.flush()
    submit_shipped(s, ["a"])
    assert leased(s)[b"plain"] == ["a"]  # fails there at once, saying how to run it


def test_a_plain_worker_of_another_queue_still_takes_its_queues_shipped_tasks():
    s = master()
    register(s, b"coder", allow_code=True, queues=["gpu"])
    register(s, b"plain", allow_code=False)
    submit_shipped(s, ["a"])
    got = leased(s)
    assert got == {b"coder": [], b"plain": ["a"]}


def test_the_ready_key_of_a_shipped_task_differs_from_any_queue_name():
    assert ready_key("default", "app:f") == "default"
    assert ready_key("default", task_name("x")) != "default"
    assert type(ready_key("default", task_name("x"))) is tuple


def test_the_flag_and_its_variable_reach_the_worker_config(monkeypatch):
    from typer.testing import CliRunner

    from zq.cli import app
    seen: list[Any] = []
    monkeypatch.setattr("zq.worker.run_worker", lambda config: seen.append(config) or 0)
    monkeypatch.setattr("zq.cli._setup_logging", lambda *a: None)
    runner = CliRunner()
    for args, env in ((["--allow-code"], {}), ([], {"ZQ_ALLOW_CODE": "1"}), ([], {})):
        done = runner.invoke(app, ["worker", "--app", "x", *args], env=env)
        assert done.exit_code == 0, done.output
    assert [c.allow_code for c in seen] == [True, True, False]
