"""Every zq message a process sends or receives, timed: for bench/round_trip_trace.py.

    python bench/trace_hook.py OUT_DIR master --bind ...   # `zq master --bind ...`, traced

`install(out_dir)` wraps zq.transport's `send_frames` (timed as it is called, after the
message was encoded) and `drain` (timed as each message comes out decoded, before anything
acts on it), and writes `trace-PID.txt` to out_dir at exit: one line per message,
`MONOTONIC_NS send|recv CMD`. CLOCK_MONOTONIC is one clock for every process of the
machine, so the lines of a client, a master and a worker line up. Recording costs about
a microsecond a message; nothing else in zq changes.
"""

from __future__ import annotations

import atexit
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import msgpack

SEND, RECV = "send", "recv"


def install(out_dir: str | None) -> Callable[[], dict[tuple[str, int], list[int]]]:
    """Trace this process from now; returns what reads its trace so far, as
    {(send|recv, command): [monotonic ns, ...]} (the same as `load` of its file), which
    is written to out_dir at exit (None: not written)."""
    from zq import transport

    trace: list[tuple[int, str, Any]] = []
    clock = time.monotonic_ns
    send_frames, drain = transport.send_frames, transport.drain

    def traced_send(sock: Any, frames: list[Any], peer: bytes | None = None) -> None:
        trace.append((clock(), SEND, frames[1]))  # the header; its command read at exit
        send_frames(sock, frames, peer)

    def traced_drain(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for got in drain(*args, **kwargs):
            trace.append((clock(), RECV, int(got.message.cmd) if got.message else -1))
            yield got

    def lines() -> list[tuple[int, str, int]]:
        return [(t, what, cmd if what == RECV else _command(cmd)) for t, what, cmd in trace]

    def dump() -> None:
        assert out_dir is not None
        text = "".join(f"{t} {what} {cmd}\n" for t, what, cmd in lines())
        (Path(out_dir) / f"trace-{os.getpid()}.txt").write_text(text)

    transport.send_frames, transport.drain = traced_send, traced_drain  # type: ignore[assignment]
    if out_dir is not None:
        atexit.register(dump)
    return lambda: _series(lines())


def load(path: Path) -> dict[tuple[str, int], list[int]]:
    """A process's trace file, as install()'s reader returns it."""
    rows = [line.split() for line in path.read_text().splitlines()]
    return _series([(int(t), what, int(cmd)) for t, what, cmd in rows])


def _series(lines: list[tuple[int, str, int]]) -> dict[tuple[str, int], list[int]]:
    series: dict[tuple[str, int], list[int]] = {}
    for t, what, cmd in lines:
        series.setdefault((what, cmd), []).append(t)
    return series


def _command(header: Any) -> int:
    try:
        return int(msgpack.unpackb(bytes(header))[0])
    except Exception:  # noqa: BLE001 - a trace line, not a decoder
        return -1


if __name__ == "__main__":
    install(sys.argv[1])
    sys.argv = ["zq", *sys.argv[2:]]
    from zq.cli import main

    main()
