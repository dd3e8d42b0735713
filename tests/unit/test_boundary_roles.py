"""Roles in the core (issue 9, "Roles"): with keys, a client key submits, watches and
cancels its own tasks and reads any; only an admin purges, retries, cancels any
task and changes schedules or a rate limit already set. Rate limits are kept in the
store. Without keys every peer is an admin (Caller(rid) has admin=True)."""

from __future__ import annotations

from zq.core import messages as m
from zq.core.access import Caller
from zq.core.master_core import MasterCore

K1 = Caller(b"r1", key="key-one", admin=False)
K2 = Caller(b"r2", key="key-two", admin=False)
ADMIN = Caller(b"ra", key="key-admin", admin=True)
NO_KEYS = Caller(b"rn")


def core() -> MasterCore:
    s = MasterCore(master_id="m", durable=True)
    s.advance(1.0, 1_000_000.0)
    return s


def sent(s: MasterCore) -> list[tuple[bytes, str, list]]:
    out = []
    for rid, msg in s.flush().messages:
        ids = getattr(msg, "ids", None) or [e[0] for e in getattr(msg, "entries", [])]
        out.append((rid, type(msg).__name__, ids))
    return out


def submit(s: MasterCore, caller: Caller, tid: str, **opts) -> None:
    s.on_submit(caller.rid, [(tid, "app:f", b"", opts)], caller)
    s.validate()


def test_a_client_key_cancels_its_own_tasks_only_and_reads_any() -> None:
    s = core()
    submit(s, K1, "a")
    submit(s, K1, "b", priority=1)  # through the slow path too
    sent(s)
    s.on_cancel(K2.rid, ["a"], K2)
    s.on_cancel(K2.rid, ["b"], K2)
    out = sent(s)
    assert out == [(b"r2", "RejectedEntries", ["a", "b"])]
    s.on_watch(K2.rid, ["b"], K2)  # reading a result is every client's
    assert sent(s) == []  # watched: its result will be pushed, nothing refused
    assert K2.rid in (s.watcher.get("b"), *s.more_watchers.get("b", ()))
    assert s.tasks["a"].state is m.State.QUEUED
    s.on_cancel(K1.rid, ["a"], K1)  # its own
    s.on_cancel(ADMIN.rid, ["b"], ADMIN)  # an admin: any
    assert s.tasks["a"].state is m.State.CANCELLED and s.tasks["b"].state is m.State.CANCELLED
    s.validate()


def test_without_keys_everyone_is_admin_and_nothing_is_recorded() -> None:
    s = core()
    submit(s, NO_KEYS, "a")
    assert s.tasks["a"].owner is None
    s.on_cancel(b"other", ["a"], Caller(b"other"))
    assert s.tasks["a"].state is m.State.CANCELLED


def test_only_an_admin_changes_a_rate_limit_already_set_and_it_is_stored() -> None:
    s = core()
    submit(s, K1, "a", rate_limit="10/s")  # not set before: any client sets it
    assert s.flush().meta["rates"] == {"app:f": 10.0}
    submit(s, K2, "b", rate_limit="1000/s")  # a change: refused, the entry REJECTED
    submit(s, K2, "c", rate_limit="10/s")  # the same value: fine
    out = s.flush()
    rejected = [msg for rid, msg in out.messages if isinstance(msg, m.RejectedEntries)]
    assert [e[0] for e in rejected[0].entries] == ["b"] and "admin" in rejected[0].entries[0][1]
    assert "rates" not in out.meta and s.rates.per_second("app:f") == 10.0
    submit(s, ADMIN, "d", rate_limit="5/s")
    assert s.flush().meta["rates"] == {"app:f": 5.0}
    again = core()  # a restart: the store gives them back
    assert again.load_rates({"app:f": 5.0, "bad": "x", 3: 1.0})
    assert again.rates.per_second("app:f") == 5.0
    assert set(again.rates.dump()) == {"app:f"}
