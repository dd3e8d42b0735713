"""The ceiling zq is measured against: a minimal raw pyzmq + msgpack relay
client -> master -> worker -> master -> client, three processes on one machine.

The master is a ROUTER bound on a random 127.0.0.1 port that forwards client messages to
the worker and worker messages to the client without looking at them (or, with
track=True, decoding each one and keeping every task id in a dict, as a real master
must). The worker answers each message of no-op tasks with one result message.

    .venv/bin/python bench/relay.py [--n 50000] [--runs 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
import traceback
from typing import Any

import msgpack
import zmq

CLIENT_ID, WORKER_ID = b"client", b"worker"
# Control messages are short ASCII; data messages are msgpack arrays of at least 8 bytes.
HELLO, READY, GO, STOP = b"HELLO", b"READY", b"GO", b"STOP"
ARGS = msgpack.packb([[], {}])  # what zq sends for f(): [args, kwargs]
RESULT = msgpack.packb(None)  # a no-op's return value
NAME = "bench.noop:noop"
IDLE = 10.0  # seconds without a message after which master and worker give up
POLL_MS = 100


def relay_throughput(n: int, batch: int = 1, *, track: bool = False, window: int = 10,
                     timeout: float = 120.0) -> float:
    """Tasks per second seen by the client: n no-op tasks, `batch` per message, at most
    `window` messages in flight, timed from the first send to the last result."""
    if n < 1 or batch < 1 or window < 1:
        raise ValueError("n, batch and window must be at least 1")
    return _run(_throughput, (n, batch, window), track=track, timeout=timeout)


def relay_pingpong(n: int, *, warmup: int = 100, timeout: float = 120.0) -> list[float]:
    """Seconds per round trip of one task, strictly one at a time (n of them, after
    `warmup` untimed ones): pack, send, relay, execute, relay, receive, unpack."""
    if n < 1 or warmup < 0:
        raise ValueError("n must be at least 1 and warmup at least 0")
    return _run(_pingpong, (n, warmup), track=False, timeout=timeout)


def relay_payload(n: int, size: int, batch: int = 1, *, window: int = 4,
                  timeout: float = 300.0) -> float:
    """Tasks per second of n tasks whose arguments carry `size` bytes, `batch` per
    message, at most `window` messages in flight, timed from the first send to the last
    result (a small one): the raw ceiling bench/payload.py compares zq with."""
    if n < 1 or size < 0 or batch < 1 or window < 1:
        raise ValueError("n, batch and window must be at least 1, size at least 0")
    return _run(_payload, (n, size, batch, window), track=False, timeout=timeout)


# --- the three processes ------------------------------------------------------------------

def _master_main(conn: Any, track: bool) -> None:
    """Relay until the client says STOP; exit 3 if a tracked task never got its result."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.ROUTER_MANDATORY, 1)  # fail loudly rather than drop a message
    router.linger = 1000
    try:
        conn.send(router.bind_to_random_port("tcp://127.0.0.1"))
        conn.close()
        left = _relay(router, track)
    finally:
        router.close()
        ctx.term()
    sys.exit(3 if left else 0)


def _relay(router: zmq.Socket, track: bool) -> int:
    """The hot loop. Returns how many tracked tasks are still without a result."""
    tasks: dict[str, Any] = {}
    unpackb = msgpack.unpackb
    recv, send = router.recv_multipart, router.send_multipart
    ready = waiting = False
    last = time.monotonic()
    while time.monotonic() - last < IDLE:
        if not router.poll(POLL_MS):
            continue
        last = time.monotonic()
        while True:
            try:
                peer, data = recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if len(data) < 8:  # control
                if data == STOP:
                    send([WORKER_ID, STOP])
                    return len(tasks)
                ready = ready or data == READY
                waiting = waiting or data == HELLO
                if ready and waiting:
                    send([CLIENT_ID, GO])
                    waiting = False
            elif peer == CLIENT_ID:
                if track:
                    for entry in unpackb(data):
                        tasks[entry[0]] = entry
                send([WORKER_ID, data])
            else:
                if track:
                    for entry in unpackb(data):
                        del tasks[entry[0]]
                send([CLIENT_ID, data])
    raise TimeoutError(f"master: nothing received for {IDLE} s")


def _worker_main(port: int) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.routing_id = WORKER_ID
    sock.linger = 1000
    try:
        sock.connect(f"tcp://127.0.0.1:{port}")
        sock.send(READY)
        packb, unpackb = msgpack.Packer().pack, msgpack.unpackb
        last = time.monotonic()
        while time.monotonic() - last < IDLE:
            if not sock.poll(POLL_MS):
                continue
            last = time.monotonic()
            while True:
                try:
                    data = sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if data == STOP:
                    return
                sock.send(packb([[entry[0], 0, RESULT] for entry in unpackb(data)]))
        raise TimeoutError(f"worker: nothing received for {IDLE} s")
    finally:
        sock.close()
        ctx.term()


def _client_main(conn: Any, port: int, fn: Any, args: tuple[Any, ...]) -> None:
    """Run fn(socket, *args) once the master says GO; send ("ok", value) or ("error", text)."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.routing_id = CLIENT_ID
    sock.linger = 1000
    try:
        sock.connect(f"tcp://127.0.0.1:{port}")
        sock.send(HELLO)
        if not sock.poll(IDLE * 1000) or sock.recv() != GO:
            raise TimeoutError("client: no GO from the master")
        value = fn(sock, *args)
        sock.send(STOP)
        conn.send(("ok", value))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()
        sock.close()
        ctx.term()


def _recv(sock: zmq.Socket, flags: int = 0) -> bytes:
    if flags == 0 and not sock.poll(IDLE * 1000):
        raise TimeoutError(f"client: no result for {IDLE} s")
    return sock.recv(flags)


def _throughput(sock: zmq.Socket, n: int, batch: int, window: int) -> float:
    prefix = os.urandom(8).hex()  # ids as zq's client makes them: a prefix and a counter
    packb, unpackb = msgpack.Packer().pack, msgpack.unpackb
    sent = done = in_flight = 0
    start = time.perf_counter()
    while done < n:
        while in_flight < window and sent < n:
            k = min(batch, n - sent)
            sock.send(packb([[prefix + str(i), NAME, ARGS] for i in range(sent, sent + k)]))
            sent += k
            in_flight += 1
        done += len(unpackb(_recv(sock)))
        in_flight -= 1
        while True:  # everything else that is already here
            try:
                data = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            done += len(unpackb(data))
            in_flight -= 1
    return n / (time.perf_counter() - start)


def _payload(sock: zmq.Socket, n: int, size: int, batch: int, window: int) -> float:
    prefix = os.urandom(8).hex()
    packb, unpackb = msgpack.Packer().pack, msgpack.unpackb
    data = os.urandom(size)
    sent = done = in_flight = 0
    start = time.perf_counter()
    while done < n:
        while in_flight < window and sent < n:
            k = min(batch, n - sent)
            # as zq's client does: each task's arguments packed, then the message around them
            sock.send(packb([[prefix + str(i), NAME, packb([[data], {}])]
                             for i in range(sent, sent + k)]))
            sent += k
            in_flight += 1
        done += len(unpackb(_recv(sock)))
        in_flight -= 1
    return n / (time.perf_counter() - start)


def _pingpong(sock: zmq.Socket, n: int, warmup: int) -> list[float]:
    prefix = os.urandom(8).hex()
    packb, unpackb = msgpack.Packer().pack, msgpack.unpackb
    clock = time.perf_counter
    out = []
    for i in range(warmup + n):
        start = clock()
        sock.send(packb([[prefix + str(i), NAME, ARGS]]))
        unpackb(_recv(sock))
        if i >= warmup:
            out.append(clock() - start)
    return out


# --- running them -------------------------------------------------------------------------

def _run(fn: Any, args: tuple[Any, ...], *, track: bool, timeout: float) -> Any:
    """Start master, worker and client; return the client's value. Every process is gone
    when this returns or raises."""
    ctx = mp.get_context("spawn")
    procs: list[Any] = []
    try:
        port_in, port_out = ctx.Pipe(duplex=False)
        master = ctx.Process(target=_master_main, args=(port_out, track), daemon=True,
                             name="relay-master")
        procs.append(master)
        master.start()
        port_out.close()
        if not port_in.poll(30):
            raise RuntimeError("relay: the master did not start")
        port = port_in.recv()
        result_in, result_out = ctx.Pipe(duplex=False)
        procs.append(ctx.Process(target=_worker_main, args=(port,), daemon=True,
                                 name="relay-worker"))
        procs.append(ctx.Process(target=_client_main, args=(result_out, port, fn, args),
                                 daemon=True, name="relay-client"))
        for p in procs[1:]:
            p.start()
        result_out.close()
        status, value = _wait_result(result_in, procs, timeout)
        if status != "ok":
            raise RuntimeError(f"relay client failed:\n{value}")
        for p in procs:
            p.join(10)
        if master.exitcode != 0:
            raise RuntimeError(f"relay master exited with {master.exitcode}"
                               + (" (tracked tasks left without a result)"
                                  if master.exitcode == 3 else ""))
        return value
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
            p.join(5)


def _wait_result(conn: Any, procs: list[Any], timeout: float) -> tuple[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if conn.poll(0.2):
            try:
                return conn.recv()
            except EOFError:  # the client died without a word
                break
        dead = [p for p in procs if p.exitcode not in (None, 0)]
        if dead:
            raise RuntimeError(f"relay: {dead[0].name} exited with {dead[0].exitcode}")
    raise RuntimeError(f"relay: no result from the client within {timeout} s")


# --- command line -------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    try:
        from common import Progress, median_of, percentiles, print_table
    except ImportError:  # run as `python -m bench.relay`
        from bench.common import Progress, median_of, percentiles, print_table

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50_000,
                        help="tasks for one task per message; x10 for batches, /25 round trips")
    parser.add_argument("--runs", type=int, default=3, help="median of this many runs")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--window", type=int, default=10, help="messages in flight")
    a = parser.parse_args(argv)
    n_batch, n_ping = a.n * 10, max(a.n // 25, 100)
    cases = [
        (f"1 task/message, window {a.window}", a.n,
         lambda: relay_throughput(a.n, 1, window=a.window), "tasks/s"),
        (f"batch={a.batch}", n_batch,
         lambda: relay_throughput(n_batch, a.batch, window=a.window), "tasks/s"),
        (f"batch={a.batch} + master tracks ids", n_batch,
         lambda: relay_throughput(n_batch, a.batch, track=True, window=a.window), "tasks/s"),
    ]
    rows = []
    with Progress(total=a.runs * (len(cases) + 1), label="relay runs") as bar:
        for label, n, fn, unit in cases:
            rows.append([label, n, median_of(a.runs, fn, bar), unit])
        p50, p99 = median_of(a.runs, lambda: percentiles(relay_pingpong(n_ping), (50, 99)), bar)
    rows.append(["ping-pong p50", n_ping, p50 * 1e6, "µs"])
    rows.append(["ping-pong p99", n_ping, p99 * 1e6, "µs"])
    print(f"raw pyzmq {zmq.__version__} (libzmq {zmq.zmq_version()}) + msgpack relay, "
          f"3 processes on {os.cpu_count()} cores, median of {a.runs} runs")
    print_table(["case", "tasks", "median", "unit"], rows)


if __name__ == "__main__":
    main()
