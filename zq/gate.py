"""The master's doorkeeper: it answers libzmq's ZAP requests (RFC 27) for every new
connection, on its own thread, and counts the open connections from a monitor of the
master's ROUTER. Its cost is per connection, never per message.

Who gets in (ZAP status 200), checked in this order:
1. With keys (CURVE): a peer whose public key is in one of the master's key folders; its
   key becomes the connection's User-Id, and the master checks per message that the key
   acts only in its role. Any other key: 400.
2. Without keys (NULL): a peer on loopback (127.0.0.0/8, ::1), unless the master was
   started with --insecure; masters bound to ipc:// are local by nature. Others: 400.
3. Past the connection cap (MasterConfig.max_connections): 500, a temporary refusal the
   peer retries later; the connections already open are served on.
Every refusal is logged with the peer's address, at most once per address and reason per
LogThrottle.every seconds. A refused peer sees the status code in its handshake (see
zq.transport.LinkWatch); libzmq closes the connection.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import resource
import socket
import threading
from typing import Callable

import zmq
from zmq.utils import z85

from zq.errors import ConfigError
from zq.security import MasterKeys
from zq.transport import LogThrottle, read_event

log = logging.getLogger(__name__)

ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # where libzmq asks (RFC 27)
# ZAP status codes. libzmq answers a 300 by stalling the handshake until it times out,
# which would hold the connection's file descriptor: a busy master says 500 (the
# handler cannot take it now) and peers retry on 500, and give up only on 400.
ADMITTED, REFUSED, BUSY = b"200", b"400", b"500"
NEAR_LIMIT = 0.9  # share of the cap at which the master warns once...
BACK_UNDER = 0.8  # ...and under which it may warn again
MAX_ANSWERS = 1000  # ZAP requests answered per wake-up before the monitor is read again
MAX_EVENTS = 10_000  # monitor events read at once (a flood must not starve ZAP requests)


FD_RESERVE = 64  # open files kept for the store, zmq's own sockets, logs, and bursts
FD_SHARE = 0.9  # at most this share of the open-file limit goes to connections


def raise_fd_limit() -> int:
    """Raise this process's soft open-file limit to its hard limit (each connection takes
    one file descriptor) and return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as e:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, e)
            return soft
        log.info("open-file limit raised from %d to %d", soft, target)
        return target
    return soft


def fd_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connection_cap(wanted: int, limit: int) -> int:
    """The connections the master admits at once: what was asked (--max-connections),
    lowered to leave room under the open-file limit, so libzmq never meets EMFILE (it
    would retry accept() in a loop, a core at 100% and new peers locked out)."""
    room = min(limit - FD_RESERVE, int(limit * FD_SHARE))
    cap = max(1, min(wanted, room))
    if cap < wanted:
        log.warning("accepting at most %d connections, not %d: the open-file limit is %d "
                    "(raise it with ulimit -n, or in the service's LimitNOFILE)",
                    cap, wanted, limit)
    return cap


def is_loopback(address: str) -> bool:
    """A ZAP request's peer address: an IPv4 or IPv6 address, perhaps with a %scope."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def local_only_transport(bind: str) -> bool:
    """True when every peer of this endpoint is on this host whatever its address says
    (ipc://, inproc://)."""
    return not bind.startswith("tcp://")


def _peer_address(fd: int) -> str:
    """The peer of a connection libzmq just accepted, for log lines only (the fd is
    libzmq's: looked at through a duplicate, never closed here)."""
    try:
        dup = socket.socket(fileno=os.dup(fd))
    except OSError:
        return "?"
    try:
        name = dup.getpeername()
    except OSError:
        return "?"
    finally:
        dup.close()
    return str(name[0]) if isinstance(name, tuple) else "local"


class Gate:
    """``Gate(ctx, keys, loopback_only=..., max_connections=...)`` binds the ZAP endpoint
    of ctx at once (before the master's ROUTER binds, so no connection slips past it);
    ``start(monitor)`` runs it on a thread with the ROUTER's monitor socket (see
    zq.transport.master_socket); ``stop()`` ends it. ``keys`` may be replaced from any
    thread (SIGHUP): the next handshake sees the new ones."""

    def __init__(self, ctx: zmq.Context, keys: MasterKeys | None, *, loopback_only: bool,
                 max_connections: int, fd_limit: int = 0,
                 throttle: Callable[[], LogThrottle] = LogThrottle) -> None:
        self.keys = keys
        self.loopback_only = loopback_only
        self.max_connections = max_connections
        self.fd_limit = fd_limit
        self.refused = 0  # connections refused so far (read by tests and status)
        self._open: dict[int, str] = {}  # fd -> peer address, connections open now
        # Of those, refused ones libzmq has not closed yet: a burst of connections is all
        # open before the first is answered, and only the admitted ones count for the cap.
        self._refusing = 0
        self._auth_failed = 0  # refusals the monitor reported, their close not yet seen
        self._near = False  # warned that the cap is near, not yet back under it
        self._protocol_failure: int | None = None  # from the monitor, until its DISCONNECTED
        self._throttle = throttle()
        self._zap = ctx.socket(zmq.REP)
        self._zap.setsockopt(zmq.LINGER, 0)
        try:
            self._zap.bind(ZAP_ENDPOINT)
        except zmq.ZMQError as e:
            self._zap.close()
            raise ConfigError(f"cannot start the master's ZAP handler: {e} (one master per "
                              "zmq context)") from e
        wake = f"inproc://zq-gate-{id(self)}"
        self._wake_in = ctx.socket(zmq.PAIR)
        self._wake_in.bind(wake)
        self._wake_out = ctx.socket(zmq.PAIR)
        self._wake_out.connect(wake)
        self._monitor: zmq.Socket | None = None
        self._thread: threading.Thread | None = None

    @property
    def connections(self) -> int:
        """Connections open now and not refused (admitted, or in their handshake)."""
        return max(0, len(self._open) - self._refusing)

    def start(self, monitor: zmq.Socket | None) -> None:
        self._monitor = monitor
        self._thread = threading.Thread(target=self._run, name="zq-gate", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close every socket it used. Call after the ROUTER closed."""
        if self._thread is not None:
            self._wake_out.send(b"")
            self._thread.join(10)
            self._thread = None
        else:
            self._close_thread_sockets()
        self._wake_out.close(0)

    # --- the thread -------------------------------------------------------------------

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._zap, zmq.POLLIN)
        poller.register(self._wake_in, zmq.POLLIN)
        if self._monitor is not None:
            poller.register(self._monitor, zmq.POLLIN)
        try:
            while True:
                ready = dict(poller.poll())
                if self._wake_in in ready:
                    return
                self._read_monitor()
                if self._zap in ready:
                    self._answer_all()
        except zmq.ContextTerminated:
            return
        finally:
            self._close_thread_sockets()

    def _close_thread_sockets(self) -> None:
        for sock in (self._zap, self._wake_in, self._monitor):
            if sock is not None:
                sock.close(0)

    def _answer_all(self) -> None:
        for _ in range(MAX_ANSWERS):
            try:
                request = self._zap.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                reply = self._answer(request)
            except Exception:  # a bug here must not leave a handshake waiting forever
                log.exception("the ZAP handler failed on a request; refusing it")
                reply = [b"1.0", request[1] if len(request) > 1 else b"", BUSY,
                         b"internal error", b"", b""]
            self._zap.send_multipart(reply)
            self._read_monitor()  # count what was accepted meanwhile before the next

    def _answer(self, request: list[bytes]) -> list[bytes]:
        """One ZAP request: [version, request id, domain, address, identity, mechanism,
        credentials...] -> [version, request id, status, text, user id, metadata]."""
        request_id = request[1] if len(request) > 1 else b""
        if len(request) < 6:
            return [b"1.0", request_id, BUSY, b"malformed ZAP request", b"", b""]
        address = request[3].decode("utf-8", "replace")
        status, user = self._decide(address, request[5], request[6:])
        if status != ADMITTED:
            self.refused += 1
            self._refusing += 1
        return [b"1.0", request_id, status, b"", user.encode("ascii"), b""]

    def _decide(self, address: str, mechanism: bytes,
                credentials: list[bytes]) -> tuple[bytes, str]:
        user = ""
        if mechanism == b"CURVE":
            key = z85.encode(credentials[0]).decode("ascii") if (
                credentials and len(credentials[0]) == 32) else ""
            keys = self.keys
            if keys is None or key not in keys.known:
                self._note(("key", address, key), logging.WARNING,
                           "refused a connection from %s with an unknown key %s: to admit "
                           "it, put its public NAME.key in one of the master's key folders "
                           "(workers, clients, admins) and send the master SIGHUP",
                           address, key)
                return REFUSED, ""
            user = key
        elif mechanism == b"NULL":
            if self.loopback_only and not is_loopback(address):
                self._note(("address", address), logging.WARNING,
                           "refused a connection from %s: without keys this master admits "
                           "only peers on its own host (loopback). Give it keys (zq keys "
                           "init DIR; zq master --keys DIR), or start it with --insecure on "
                           "a trusted network", address)
                return REFUSED, ""
        else:
            self._note(("mechanism", mechanism), logging.WARNING,
                       "refused a connection from %s: security mechanism %s is not "
                       "supported", address, mechanism.decode("ascii", "replace"))
            return REFUSED, ""
        if self.connections > self.max_connections:  # this one is counted too
            self._note(("cap",), logging.WARNING,
                       "refused a connection from %s: %d connections are open, the limit is "
                       "%d (zq master --max-connections; open-file limit %d). The peer "
                       "retries; the connections already open are served on",
                       address, self.connections - 1, self.max_connections, self.fd_limit)
            return BUSY, ""
        return ADMITTED, user

    def _note(self, key: object, level: int, fmt: str, *args: object) -> None:
        left_out = self._throttle.allow(key)
        if left_out is None:
            return
        if left_out:
            fmt += " (%d more like it not logged)"
            args = (*args, left_out)
        log.log(level, fmt, *args)

    # --- connections ----------------------------------------------------------------

    def _read_monitor(self) -> None:
        monitor = self._monitor
        if monitor is None:
            return
        for _ in range(MAX_EVENTS):
            got = read_event(monitor)
            if got is None:
                return
            self._on_event(*got)

    def _on_event(self, event: int, value: int) -> None:
        if event == zmq.EVENT_ACCEPTED:
            self._open[value] = _peer_address(value)
            self._check_near()
        elif event == zmq.EVENT_DISCONNECTED:
            address = self._open.pop(value, "?")
            if self._auth_failed:  # a refused connection closing (each follows its refusal)
                self._auth_failed -= 1
                self._refusing = max(0, self._refusing - 1)
            if not self._open:  # nothing open: nothing can be refused-but-open either
                self._refusing = self._auth_failed = 0
            failure, self._protocol_failure = self._protocol_failure, None
            if failure is not None:
                self._log_protocol_failure(address, failure)
            self._check_near()
        elif event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            self._auth_failed += 1
        elif event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
            self._protocol_failure = value  # logged with its address at the DISCONNECTED
        elif event == zmq.EVENT_ACCEPT_FAILED:
            self._note(("accept", value), logging.ERROR,
                       "cannot accept a connection: %s (%d connections open, open-file "
                       "limit %d). Lower --max-connections or raise the limit (ulimit -n)",
                       os.strerror(value), len(self._open), self.fd_limit)

    def _log_protocol_failure(self, address: str, code: int) -> None:
        if code == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
            why = ("it uses keys and this master does not" if self.keys is None
                   else "this master uses keys and the peer does not")
        elif code == zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
            why = "the peer's master key is not this master's public key"
        else:
            why = f"ZMTP protocol error {code:#x}"
        self._note(("protocol", address, code), logging.WARNING,
                   "refused a connection from %s at the handshake: %s", address, why)

    def _check_near(self) -> None:
        n, cap = self.connections, self.max_connections
        if not self._near and n >= NEAR_LIMIT * cap:
            self._near = True
            log.warning("%d connections open, near the limit of %d (zq master "
                        "--max-connections; open-file limit %d): past it new peers are "
                        "turned away until others leave", n, cap, self.fd_limit)
        elif self._near and n < BACK_UNDER * cap:
            self._near = False
            log.info("%d connections open, under %d%% of the limit again", n,
                     int(BACK_UNDER * 100))
