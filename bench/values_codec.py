"""The codec calls every task makes, timed alone: zq's value encoding (zq/core/serde.py,
with extension types) against plain msgpack as zq used it before protocol 1.2.

Interleaved in one process, the minimum of many short rounds (the least disturbed run
of each call on a shared machine). No processes, no sockets: CPU per call only.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zq.core import serde  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--calls", type=int, default=2000, help="calls per round")
    opts = parser.parse_args()
    call = ((1, 2), {})
    args_payload = msgpack.packb([[1, 2], {}])
    native = msgpack.Packer(use_bin_type=True).pack

    def old_decode_call(payload: bytes) -> tuple:
        args, kwargs = msgpack.unpackb(payload, raw=False, strict_map_key=False)
        return args, kwargs

    cases = {
        "client: pack the arguments": (lambda: native(call), lambda: serde.pack_call(call)),
        "worker: decode the arguments": (lambda: old_decode_call(args_payload),
                                         lambda: serde.decode_call(args_payload)),
        "worker: encode the result": (lambda: native(None), lambda: serde.encode_value(None)),
        "client: decode the result": (
            lambda: msgpack.unpackb(b"\xc0", raw=False, strict_map_key=False),
            lambda: serde.decode_value(b"\xc0")),
    }
    best = {(name, side): float("inf") for name in cases for side in (0, 1)}
    for _ in range(opts.rounds):
        for name, fns in cases.items():
            for side, fn in enumerate(fns):
                t = timeit.timeit(fn, number=opts.calls) / opts.calls * 1e9
                best[name, side] = min(best[name, side], t)
    print(f"{'call (a no-op task: (1, 2) arguments, None result)':52s} {'msgpack ns':>10s} "
          f"{'zq ns':>8s}")
    for name in cases:
        print(f"{name:52s} {best[name, 0]:10.0f} {best[name, 1]:8.0f}")


if __name__ == "__main__":
    main()
