"""HEARTBEAT, most of what an idle master with 1,000 workers reads, is decoded without
unpacking its header when it comes as zq encodes it; any other valid encoding (or a
HEARTBEAT with payload frames) takes the general path with its checks."""

from __future__ import annotations

import pytest

from zq.core import codec
from zq.core import messages as m
from zq.core.messages import Role
from zq.errors import ProtocolError


@pytest.mark.parametrize("role", list(Role))
def test_a_heartbeat_decodes_for_every_role(role: Role) -> None:
    frames = codec.encode(role, m.Heartbeat())
    assert codec.decode(frames) == (role, m.Heartbeat())
    assert codec.decode([frames[0], memoryview(frames[1])]) == (role, m.Heartbeat())


def test_another_encoding_of_the_same_header_still_decodes() -> None:
    # [9] with the code as a uint8 (0xcc 0x09), not a positive fixint: valid msgpack
    assert codec.decode([b"ZQW1", b"\x91\xcc\x09"]) == (Role.WORKER, m.Heartbeat())


def test_a_heartbeat_header_under_a_foreign_signature_is_refused() -> None:
    with pytest.raises(ProtocolError, match="unknown signature"):
        codec.decode([b"XXXX", codec._HEARTBEAT_HEADER])
