"""Where a numpy array should stop riding inside the payload and travel as a frame of
its own (protocol 1.4, zq.core.values.ARRAY_FRAME): one SUBMIT of one task whose argument
is a float64 array of 1 to 256 KiB, packed (values.pack_parts), encoded (codec), sent over
a ZeroMQ DEALER -> ROUTER pair on 127.0.0.1, received as zq's transport receives
(zq.transport._recv), decoded and unpacked into an array: CPU µs per round (both ends are
this one process, so ZeroMQ's I/O thread is counted too), inline (code 14,
the bytes copied into the payload) against as a frame (code 15, no copy), interleaved.
No master, no worker: the path of the bytes only.

Then the copies: the peak of Python-heap bytes allocated (tracemalloc) while one 10 MB
array is packed and encoded (sender), and while the frames as the transport hands them
over are decoded and unpacked (receiver), in units of the array's size. Inline, the
receiver also copies each payload frame out of ZeroMQ's memory (counted here).

    .venv/bin/python bench/array_frames.py [--rounds 2000] [--runs 5]
"""

from __future__ import annotations

import os
import sys
import time
import tracemalloc
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import zmq  # noqa: E402
from common import print_table  # noqa: E402
from harness import base_parser, interleaved, machine, write_markdown  # noqa: E402

from zq import transport  # noqa: E402
from zq.core import codec, values  # noqa: E402
from zq.core import messages as m  # noqa: E402
from zq.core.messages import Role  # noqa: E402

SCRIPT = "array_frames"
KIB = [1, 2, 4, 8, 16, 32, 64, 256]
NEVER, ALWAYS = 1 << 62, 0


def case(kib: int, threshold: int, rounds: int, pair: tuple[zmq.Socket, zmq.Socket]):
    def run() -> float:
        out, into = pair
        a = np.random.default_rng(kib).random(kib * 1024 // 8)
        saved = values.ARRAY_FRAME
        values.ARRAY_FRAME = threshold
        try:
            start = time.process_time()  # CPU: the machine's other load does not count
            for i in range(rounds):
                payload = values.pack_parts([[a], {}])
                out.send_multipart(codec.encode(Role.CLIENT, m.Submit(
                    [(str(i), "t", payload, {})])), copy=False)
                into.poll(5000)
                frames = transport._recv(into, 3)
                _, msg = codec.decode(frames[1:])
                got = values.unpack(msg.entries[0][2])[0][0]
            elapsed = time.process_time() - start
        finally:
            values.ARRAY_FRAME = saved
        if got.nbytes != a.nbytes:
            raise RuntimeError("the array did not arrive whole")
        return elapsed / rounds * 1e6
    return run


def _peak(fn: Any) -> tuple[Any, int]:
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def copies(threshold: int) -> tuple[float, float]:
    """(sender, receiver) peak bytes allocated over the array's size, for a 10 MB array."""
    a = np.random.default_rng(0).random(10_000_000 // 8)
    saved = values.ARRAY_FRAME
    values.ARRAY_FRAME = threshold
    try:
        frames, sent = _peak(lambda: codec.encode(Role.CLIENT, m.Submit(
            [("t", "f", values.pack_parts([[a], {}]), {})])))
    finally:
        values.ARRAY_FRAME = saved
    # as transport._recv gives them: payload frames as writable buffers of ZeroMQ's
    wire = [bytes(frames[0]), bytes(frames[1]), *(memoryview(bytearray(f)) for f in frames[2:])]

    def receive() -> Any:
        return values.unpack(codec.decode(wire)[1].entries[0][2])[0][0]
    got, received = _peak(receive)
    if not (got == a).all():
        raise RuntimeError("the array did not arrive whole")
    return sent / a.nbytes, received / a.nbytes


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=2000, help="messages per case and run")
    a = parser.parse_args(argv)
    rounds = 100 if a.quick else a.rounds
    ctx = zmq.Context()
    into = ctx.socket(zmq.ROUTER)
    port = into.bind_to_random_port("tcp://127.0.0.1")
    out = ctx.socket(zmq.DEALER)
    out.connect(f"tcp://127.0.0.1:{port}")
    try:
        cases = {}
        for kib in KIB:
            cases[f"{kib} inline"] = case(kib, NEVER, rounds, (out, into))
            cases[f"{kib} frame"] = case(kib, ALWAYS, rounds, (out, into))
        med = interleaved(a.runs, cases)
    finally:
        out.close(0)
        into.close(0)
        ctx.term()
    headers = ["array", "inline µs", "frame µs", "frame / inline", "inline MB/s", "frame MB/s"]
    rows = []
    for kib in KIB:
        inline, frame = med[f"{kib} inline"], med[f"{kib} frame"]
        size = kib * 1024
        rows.append([f"{kib} KiB", inline, frame, frame / inline, size / inline,
                     size / frame])
    notes = [f"CPU µs per round (pack, encode, send, receive, decode, unpack) of one SUBMIT "
             f"holding one float64 array, median of {a.runs} runs of {rounds} rounds, "
             f"inline and frame cases interleaved; {machine()}"]
    copied = {"inline (code 14)": copies(NEVER), "frame (code 15)": copies(ALWAYS)}
    for how, (sent, received) in copied.items():
        rows.append([f"10 MB {how}: peak allocated, x the array", sent, received, "", "", ""])
    notes.append("the last rows: the peak of Python-heap bytes allocated (tracemalloc) while "
                 "one 10 MB array is packed and encoded (first column) and decoded and "
                 "unpacked (second), over the array's size")
    print(notes[0])
    print_table(headers, rows)
    print(notes[1])
    write_markdown(SCRIPT, headers, rows, notes)


if __name__ == "__main__":
    main()
