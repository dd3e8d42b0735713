"""One bad entry is refused alone (issue 9, finding 4): the codec checks each entry of
RESULT, SUBMIT, PARTIAL, PROGRESS, CREDIT/BYE returned, WATCH and CANCEL by itself, and
the core answers a refused one (REJECTED for a SUBMIT entry, else ERROR naming its task
id) while the rest of the message is applied."""

from __future__ import annotations

import math

import msgpack
import pytest

from zq.core import codec, queries
from zq.core import messages as m
from zq.core.master_core import MasterCore
from zq.core.messages import Cmd, Role
from zq.errors import ProtocolError

W, C = b"w1", b"c1"


def decode(role: Role, header: list) -> m.Message:
    return codec.decode([codec.SIGNATURES[role], msgpack.packb(header)])[1]


def test_a_result_with_nil_for_an_empty_payload_is_refused_alone() -> None:
    msg = decode(Role.WORKER, [Cmd.RESULT, [["t1", 1, 0, b"r1"], ["t2", 1, 3, None],
                                            ["t3", 1, 0, b"r3"], [7, 1, 0, b""]]])
    assert [e[0] for e in msg.entries] == ["t1", "t3"]
    assert [tid for tid, _ in msg.bad] == ["t2", None]
    assert "payload" in msg.bad[0][1] and "entry #3" in msg.bad[1][1]


def test_submit_entries_are_checked_one_by_one() -> None:
    msg = decode(Role.CLIENT, [Cmd.SUBMIT, [
        ["a", "app:f", b"", {}],
        ["b", "app:f", b"", {"colour": 1}],  # an option this master does not know
        ["c", "app:f", b"", {"timeout": math.inf}],
        ["d", 5, b"", {}],
        [None, "app:f", b"", {}],
        ["e", "app:f", b"", {"priority": 3}],
    ]])
    assert [e[0] for e in msg.entries] == ["a", "e"]
    assert [tid for tid, _ in msg.bad] == ["b", "c", "d", None]
    assert "unknown option 'colour'" in msg.bad[0][1] and "finite" in msg.bad[1][1]


@pytest.mark.parametrize("cmd, header, good", [
    (Cmd.PARTIAL, [[["t1", 1, 0, b"x"], ["t2", "one", 0, b"x"]]], ["t1"]),
    (Cmd.PROGRESS, [[["t1", 1, 0.5, 1], ["t2", 1, math.nan, 1]]], ["t1"]),
])
def test_partial_and_progress_entries_are_checked_one_by_one(cmd, header, good) -> None:
    msg = decode(Role.WORKER, [cmd, *header])
    assert [e[0] for e in msg.entries] == good and [t for t, _ in msg.bad] == ["t2"]


def test_id_lists_keep_each_good_id_once_and_refuse_the_bad_ones() -> None:
    watch = decode(Role.CLIENT, [Cmd.WATCH, ["t1"] * 5000 + ["", "t2", 3]])
    assert watch.ids == ["t1", "t2"] and len(watch.bad) == 2
    credit = decode(Role.WORKER, [Cmd.CREDIT, 4, ["t1", ["t2"]]])
    assert credit.credit == 4 and credit.returned == ["t1"] and len(credit.bad) == 1
    cancel = decode(Role.CLIENT, [Cmd.CANCEL, ["t1", "t1", None]])
    assert cancel.ids == ["t1"] and len(cancel.bad) == 1
    bye = decode(Role.WORKER, [Cmd.BYE, [1.5, "t1"]])
    assert bye.returned == ["t1"] and len(bye.bad) == 1


def test_too_many_ids_in_one_message_refuse_the_message() -> None:
    with pytest.raises(ProtocolError, match="over the limit"):
        decode(Role.CLIENT, [Cmd.WATCH, [f"t{i}" for i in range(codec.MAX_IDS + 1)]])


def core() -> MasterCore:
    s = MasterCore(master_id="m")
    s.advance(1.0, 1_000_000.0)
    return s


def test_the_core_rejects_a_bad_submit_entry_and_accepts_the_rest() -> None:
    s = core()
    msg = decode(Role.CLIENT, [Cmd.SUBMIT, [["a", "app:f", b"", {}],
                                            ["b", "app:f", b"", {"colour": 1}],
                                            [3, "app:f", b"", {}]]])
    s.on_submit(C, msg.entries)
    s.on_bad_entries(C, Cmd.SUBMIT, msg.bad)
    out = s.flush().messages
    assert out[0] == (C, m.Accepted(["a"]))
    assert isinstance(out[1][1], m.RejectedEntries) and out[1][1].entries[0][0] == "b"
    assert isinstance(out[2][1], m.Error) and "entry #2" in out[2][1].reason
    assert set(s.tasks) == {"a"} and queries.status(s)["refused_entries"] == 2
    s.validate()


def test_the_core_applies_the_good_results_and_names_the_bad_one() -> None:
    s = core()
    s.on_hello(W, m.Hello("w1", "h", 1, ["default"], 3, "thread", 3, []))
    s.on_submit(C, [(t, "app:f", b"", {}) for t in ("t1", "t2", "t3")])
    s.dispatch()
    s.flush()
    msg = decode(Role.WORKER, [Cmd.RESULT, [["t1", 1, 0, b"r1"], ["t2", 1, 3, None],
                                            ["t3", 1, 0, b"r3"]]])
    w = s.touch_worker(W)
    s.on_worker_results(w, msg.entries)
    s.on_bad_entries(W, Cmd.RESULT, msg.bad)
    out = dict((type(x).__name__, x) for _, x in s.flush().messages)
    assert out["Ack"].ids == ["t1", "t3"]  # t2 is not acknowledged: it changed nothing
    assert "task t2" in out["Error"].reason
    assert [e[0] for e in out["Result"].entries] == ["t1", "t3"]
    assert s.tasks["t2"].state is m.State.RUNNING
    s.validate()
