"""A peer's list of masters (zq.masters, issue 16): parsing `--connect a,b` (or a list),
and which master a worker or client connects to next: round the list after each lost
connection, and first to the active master a standby named."""

from __future__ import annotations

import pytest

from zq.config import ClientConfig, WorkerConfig
from zq.errors import ConfigError
from zq.masters import MasterList, join_connect, parse_connect

A, B, C = "tcp://a:5555", "tcp://b:5555", "tcp://c:5555"


def test_one_endpoint_several_or_a_list() -> None:
    assert parse_connect(A) == [A]
    assert parse_connect(f"{A}, {B} ,{C}") == [A, B, C]
    assert parse_connect([A, B]) == [A, B]
    assert join_connect([A, B]) == f"{A},{B}"


@pytest.mark.parametrize("bad", ["", "a:5555", f"{A},", f"{A},,{B}", f"{A},b:1", [], [A, 5]])
def test_what_is_not_a_list_of_endpoints_is_refused(bad: object) -> None:
    with pytest.raises(ConfigError, match="not an endpoint like tcp://host:5555"):
        parse_connect(bad)  # type: ignore[arg-type]


def test_configs_refuse_a_bad_list() -> None:
    with pytest.raises(ConfigError):
        ClientConfig(connect=f"{A},oops").validate()
    with pytest.raises(ConfigError):
        WorkerConfig(connect=f"{A},oops", apps=("m",)).validate()
    assert ClientConfig(connect=f"{A},{B}").validate().connect == f"{A},{B}"


def test_one_master_is_always_the_same() -> None:
    masters = MasterList(A)
    assert [masters.next() for _ in range(3)] == [A, A, A]


def test_each_reconnect_goes_round_the_list() -> None:
    masters = MasterList([A, B, C])
    assert [masters.next() for _ in range(5)] == [A, B, C, A, B]


def test_a_standby_hint_goes_first_once_and_the_list_goes_on_after_it() -> None:
    masters = MasterList([A, B, C])
    assert masters.next() == A
    masters.follow(C)  # A is a standby: C is active
    assert masters.next() == C
    assert masters.next() == A  # C lost: the one after C in the list, not C again


def test_a_hint_outside_the_list_is_tried_once() -> None:
    masters = MasterList([A, B])
    masters.next()
    masters.follow("tcp://elsewhere:5555")
    assert [masters.next() for _ in range(3)] == ["tcp://elsewhere:5555", B, A]


def test_a_hint_back_to_the_master_just_lost_is_not_followed() -> None:
    """A was lost (killed); B, not knowing yet, names A: B is tried again (it may be
    taking over), once; then the list goes on."""
    masters = MasterList([A, B])
    assert masters.next() == A
    assert masters.next() == B  # A lost
    masters.follow(A)
    assert masters.next() == B
    masters.follow(A)
    assert masters.next() == A


@pytest.mark.parametrize("hint", ["", "not an endpoint", "tcp://" + "x" * 2000])
def test_without_a_usable_hint_the_standby_is_tried_once_more(hint: str) -> None:
    masters = MasterList([A, B])
    masters.next()
    masters.follow(hint)
    assert masters.next() == A
    masters.follow(hint)
    assert [masters.next(), masters.next()] == [B, A]
