"""Where one submit().result() round trip's time goes, step by step.

A master (memory store), one thread-pool worker and a client, each with every message it
sends or receives timed on the machine's one monotonic clock (bench/trace_hook.py), then
N round trips one at a time. Each round trip is the same nine steps: the client's
submit() until its SUBMIT is sent, the SUBMIT in flight, the master's turn until the TASK
is sent, the TASK in flight, the worker until the RESULT is sent, the RESULT in flight,
the master's turn until the client's RESULT is sent, that RESULT in flight, and the
client until result() returns. "In flight" is everything between one process's send
call and the other's decoded message: libzmq's I/O threads on both ends, loopback TCP,
the receiver waking from poll, receiving and decoding. The raw relay's ping-pong of the
same run (four such hops with next to no work between them) is the floor.

    .venv/bin/python bench/round_trip_trace.py [--n 2000] [--inline-under 1ms]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import zmq  # noqa: E402
from common import percentiles, print_table  # noqa: E402
from harness import Cluster, base_parser, cpu_seconds, machine, self_cpu_seconds, write_markdown  # noqa: E402
from relay import relay_pingpong  # noqa: E402
from tasks import NOOP  # noqa: E402
from trace_hook import install, load  # noqa: E402

from zq.core.messages import Cmd  # noqa: E402

SCRIPT = "round_trip_trace"
HOOK = str(Path(__file__).with_name("trace_hook.py"))
SUBMIT, ACCEPTED, TASK, RESULT, ACK = Cmd.SUBMIT, Cmd.ACCEPTED, Cmd.TASK, Cmd.RESULT, Cmd.ACK

# (step, who, from (process, send|recv, command), to (process, send|recv, command));
# "call" and "return" are the client's own marks around submit() and result().
STEPS = [
    ("submit() until its SUBMIT is sent", "client", ("client", "call", 0),
     ("client", "send", SUBMIT)),
    ("SUBMIT in flight", "wire", ("client", "send", SUBMIT), ("master", "recv", SUBMIT)),
    ("master: SUBMIT in, until TASK sent", "master", ("master", "recv", SUBMIT),
     ("master", "send", TASK)),
    ("TASK in flight", "wire", ("master", "send", TASK), ("worker", "recv", TASK)),
    ("worker: TASK in, until RESULT sent", "worker", ("worker", "recv", TASK),
     ("worker", "send", RESULT)),
    ("RESULT in flight (worker to master)", "wire", ("worker", "send", RESULT),
     ("master", "recv", RESULT)),
    ("master: RESULT in, until RESULT sent", "master", ("master", "recv", RESULT),
     ("master", "send", RESULT)),
    ("RESULT in flight (master to client)", "wire", ("master", "send", RESULT),
     ("client", "recv", RESULT)),
    ("client: RESULT in, until result() returns", "client", ("client", "recv", RESULT),
     ("client", "return", 0)),
]


def trace(n: int, warmup: int, inline_under: str | None, out: Path
          ) -> tuple[dict[str, list[int]], dict[str, float]]:
    """Run the round trips; returns each step's endpoints' times (ns), n of each, and the
    CPU seconds per timed round trip of the master, the worker and the client."""
    client_trace = install(None)  # this process is the client: read in memory
    extra = ["--inline-under", inline_under] if inline_under else []
    marks: dict[str, list[int]] = {"call": [], "return": []}
    clock = time.monotonic_ns
    with Cluster(store="memory", program=[sys.executable, HOOK, str(out)]) as cluster:
        cluster.start_master()
        cluster.start_workers(1, pool="thread", concurrency=1, prefetch=1000, extra=extra)
        pids = {"master": cluster.master.pid, "worker": cluster.workers[0].pid}  # type: ignore[union-attr]
        cpu: dict[str, float] = {}
        with cluster.client() as client:
            for i in range(warmup + n):
                if i == warmup:
                    cpu = _cpu(pids)
                start = clock()
                client.submit(NOOP, i).result(timeout=30)
                if i >= warmup:
                    marks["call"].append(start)
                    marks["return"].append(clock())
            cpu = {who: (t - cpu[who]) / n for who, t in _cpu(pids).items()}
        for proc in (cluster.workers[0], cluster.master):  # a clean exit writes the trace
            proc.signal(15)  # SIGTERM
            proc.popen.wait(30)  # type: ignore[union-attr]
    series = {who: load(out / f"trace-{pid}.txt") for who, pid in pids.items()}
    series["client"] = client_trace()
    return _align(series, marks, n), cpu


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    return {**{who: cpu_seconds(pid) for who, pid in pids.items()},
            "client": self_cpu_seconds()}


def _align(series: dict[str, dict[tuple[str, int], list[int]]], marks: dict[str, list[int]],
           n: int) -> dict[str, list[int]]:
    """The last n of each endpoint: each round trip sends each of these messages once."""
    out: dict[str, list[int]] = {}
    for _, _, *ends in STEPS:
        for who, what, cmd in ends:
            key = f"{who} {what} {int(cmd)}"
            if what in ("call", "return"):
                out[key] = marks[what]
                continue
            times = series[who].get((what, int(cmd)), [])
            if len(times) < n:
                raise SystemExit(f"{who} {what} {Cmd(cmd).name}: {len(times)} in the trace, "
                                 f"fewer than the {n} round trips: a resend or a lost "
                                 "message; run again")
            out[key] = times[-n:]
    return out


# The echo peer of send_cost, in a process of its own (as a worker is).
_ECHO = """
import sys, zmq
ctx = zmq.Context(); s = ctx.socket(zmq.DEALER); s.connect(sys.argv[1]); s.send(b"hello")
while True:
    m = s.recv()
    if m == b"stop":
        break
    s.send(m)
s.close(0); ctx.term()
"""


def send_cost(n: int) -> tuple[float, float]:
    """p50 seconds of one send call on a ROUTER, for a frame with SNDMORE and for a
    message's last frame (the one that hands the message to libzmq's I/O thread and, when
    that thread sleeps, wakes it), one message at a time, each echoed by a peer process
    before the next."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    echo = None
    try:
        port = router.bind_to_random_port("tcp://127.0.0.1")
        echo = subprocess.Popen([sys.executable, "-c", _ECHO, f"tcp://127.0.0.1:{port}"])
        if not router.poll(30_000):
            raise SystemExit("send_cost: the echo peer did not connect within 30 s")
        peer, _ = router.recv_multipart()
        more, last = [], []
        clock = time.perf_counter
        for _ in range(n):
            a = clock()
            router.send(peer, zmq.SNDMORE)
            b = clock()
            router.send(b"x" * 16)
            c = clock()
            more.append(b - a)
            last.append(c - b)
            if not router.poll(5000):
                raise SystemExit("send_cost: no echo within 5 s")
            router.recv_multipart()
        router.send_multipart([peer, b"stop"])
        echo.wait(10)
        return percentiles(more, (50,))[0], percentiles(last, (50,))[0]
    finally:
        if echo is not None and echo.poll() is None:
            echo.kill()
            echo.wait()
        router.close(0)
        ctx.term()


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--n", type=int, default=2000, help="timed round trips")
    parser.add_argument("--warmup", type=int, default=200, help="untimed round trips first")
    parser.add_argument("--inline-under", default=None,
                        help="the worker's --inline-under (default: off, as zq's default)")
    a = parser.parse_args(argv)
    n, warmup = (200, 20) if a.quick else (a.n, a.warmup)
    with tempfile.TemporaryDirectory(prefix="zq-trace-") as tmp:
        ends, cpu = trace(n, warmup, a.inline_under, Path(tmp))
    relay = relay_pingpong(n, warmup=warmup)
    more, last = send_cost(n)
    relay_p50 = percentiles(relay, (50,))[0]
    rows, steps = [], []
    for name, who, start, end in STEPS:
        a_key = f"{start[0]} {start[1]} {int(start[2])}"
        b_key = f"{end[0]} {end[1]} {int(end[2])}"
        spans = [(b - s) / 1e3 for s, b in zip(ends[a_key], ends[b_key])]
        steps.append((name, who, spans))
    whole = [(b - s) / 1e3 for s, b in zip(ends["client call 0"], ends["client return 0"])]
    for name, who, spans in steps:
        p50 = percentiles(spans, (50,))[0]
        mean = statistics.fmean(spans)
        rows.append([name, who, p50, mean, f"{mean / statistics.fmean(whole):.0%}"])
    by_who = {}
    for _, who, spans in steps:
        by_who[who] = by_who.get(who, 0.0) + statistics.fmean(spans)
    w50 = percentiles(whole, (50,))[0]
    rows.append(["[the whole round trip]", "", w50, statistics.fmean(whole), "100%"])
    rows.append(["[raw relay ping-pong: four hops, no work]", "", relay_p50 * 1e6,
                 statistics.fmean(relay) * 1e6, ""])
    headers = ["step", "where", "p50 µs", "mean µs", "share of the mean"]
    notes = [
        f"{n:,} sequential submit(noop).result() after {warmup} untimed; memory store; "
        "zq worker --pool thread --concurrency 1 --prefetch 1000"
        + (f" --inline-under {a.inline_under}" if a.inline_under else ""),
        "means by where: " + ", ".join(f"{who} {t:,.0f} µs" for who, t in by_who.items())
        + f"; round trip p50 {w50 / (relay_p50 * 1e6):.2f}× the relay's",
        "CPU per round trip (/proc, 10 ms ticks; all threads): "
        + ", ".join(f"{who} {t * 1e6:,.0f} µs" for who, t in cpu.items()),
        f"one send call (p50): {more * 1e6:.1f} µs for a frame with SNDMORE, "
        f"{last * 1e6:.1f} µs for a message's last frame (it wakes libzmq's I/O thread). "
        f"{machine()}",
    ]
    print(f"zq round trip, step by step: {notes[0]}")
    print_table(headers, rows)
    print("\n".join(notes[1:]))
    write_markdown(SCRIPT, headers, rows, notes)


if __name__ == "__main__":
    main()
