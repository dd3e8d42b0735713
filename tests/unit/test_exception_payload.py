"""Error payloads keep an exception's meaning (issue 13): args as values, OSError's
errno/strerror/filename, the class by module and qualname; the client rebuilds built-in
and already-imported app classes, anything else (or anything malformed) is TaskError."""

from __future__ import annotations

import builtins

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.apps import futures_tasks as t
from zq.core import serde, values
from zq.errors import RemoteTraceback, TaskError, TaskTimeout
from zq.pools.runner import error_payload


def caught(fn, *args) -> BaseException:
    try:
        fn(*args)
    except BaseException as e:  # noqa: BLE001 - the point is to keep it
        return e
    raise AssertionError("did not raise")


def round_trip(exc: BaseException) -> BaseException:
    return serde.exception_from_error(serde.decode_error(error_payload(exc)))


def test_value_error_keeps_its_args_with_their_types():
    got = round_trip(caught(t.raise_value_error, 123, (1, 2), 2**70))
    assert type(got) is ValueError and got.args == (123, (1, 2), 2**70)
    assert type(got.args[1]) is tuple
    assert isinstance(got.__cause__, RemoteTraceback)
    assert "raise_value_error" in got.__cause__.traceback


def test_file_not_found_keeps_errno_strerror_and_filename(tmp_path):
    missing = str(tmp_path / "nope")
    got = round_trip(caught(t.open_missing, missing))
    assert type(got) is FileNotFoundError
    assert (got.errno, got.filename) == (2, missing) and got.strerror
    assert got.args == (2, got.strerror) and missing in str(got)
    got = round_trip(caught(t.rename_missing, missing, missing + "2"))
    assert (got.filename, got.filename2) == (missing, missing + "2")


def test_an_imported_app_class_comes_back_as_itself():
    got = round_trip(caught(t.raise_app_error, "bad", 5))
    assert type(got) is t.AppError and got.args == ("bad", 5)
    got = round_trip(caught(t.raise_coded, 7, "why"))
    assert type(got) is t.CodedError and (got.code, got.detail) == (7, "why")


def test_an_arg_that_is_not_a_value_travels_as_its_repr():
    got = round_trip(caught(t.raise_with_object))
    assert type(got) is ValueError
    assert got.args[0].startswith("<object object at") and got.args[1] == 7


@pytest.mark.parametrize("info", [
    # a module the client has not imported: never imported because a peer names it
    {"module": "zq_no_such_module", "qualname": "Boom"},
    {"module": "tests.apps.futures_tasks", "qualname": "MetaError"},  # custom metaclass
    {"module": "tests.apps.futures_tasks", "qualname": "echo"},  # not a class
    {"module": "tests.apps.futures_tasks", "qualname": "_Meta"},  # not an exception
    {"module": "builtins", "qualname": "SystemExit"},  # not an Exception: would end us
    {"module": "builtins", "qualname": "KeyboardInterrupt"},
    {"module": "tests.apps.futures_tasks", "qualname": "CodedError", "args": ["one"]},
    {"module": "tests.apps.futures_tasks", "qualname": "__class__"},
    {"module": "os", "qualname": "path"},
    {"module": "zq.errors", "qualname": "TaskError", "args": [1, 2, 3, 4, 5]},
])
def test_what_cannot_be_rebuilt_is_task_error(info):
    payload = values.pack({"type": "Boom", "message": "m", "traceback": "tb", **info})
    got = serde.exception_from_error(serde.decode_error(payload))
    assert type(got) is TaskError
    assert (got.type_name, got.message, got.traceback) == ("Boom", "m", "tb")


def test_system_exit_in_a_task_is_task_error_in_the_client():
    got = round_trip(caught(t.raise_system_exit))
    assert type(got) is TaskError and got.type_name == "SystemExit"


def test_old_payload_by_type_name_still_works():
    got = serde.exception_from_error(serde.decode_error(serde.encode_error("KeyError", "k")))
    assert type(got) is KeyError and got.args == ("k",)
    got = serde.exception_from_error(serde.decode_error(serde.encode_error(
        "TaskTimeout", "too long")))
    assert type(got) is TaskTimeout


@given(st.binary(max_size=200))
def test_garbage_bytes_are_a_task_error(data):
    got = serde.exception_from_error(serde.decode_error(data))
    assert isinstance(got, BaseException) and not isinstance(got, (SystemExit,
                                                                    KeyboardInterrupt))


junk = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.text(max_size=5)
                    | st.binary(max_size=5),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=10)
fields = st.sampled_from(["type", "message", "traceback", "module", "qualname", "args",
                          "errno", "strerror", "filename", "filename2"])
names = st.sampled_from(sorted(n for n, v in vars(builtins).items() if isinstance(v, type)
                               and issubclass(v, BaseException)) + ["AppError"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(fields, junk | names, max_size=10))
def test_malformed_maps_give_an_exception_never_raise(info):
    """Whatever the fields hold, decoding and rebuilding raise nothing: the client's I/O
    thread settles the future with some exception."""
    got = serde.exception_from_error(serde.decode_error(msgpack.packb(info)))
    assert isinstance(got, Exception)
    if type(info.get("type")) is not str or type(info.get("message")) is not str:
        assert type(got) is TaskError
    kinds = {"module": str, "qualname": str, "args": list, "errno": int, "strerror": str}
    if any(info.get(k) is not None and type(info[k]) is not v for k, v in kinds.items()):
        assert type(got) is TaskError  # a malformed optional field: nothing half-rebuilt
