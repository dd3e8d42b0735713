"""CurveZMQ keys (zq.security) with real processes: the wire is encrypted, admitted
keys are served, unknown keys and plain connections get nothing, a key is admitted in
one role only, and the master keeps serving the admitted peers through all of it."""

from __future__ import annotations

import re
import socket
import threading
from pathlib import Path

import pytest
import zmq

import zq
from tests.apps import e2e_tasks as t
from tests.integration.harness import query, wait_until
from zq.core import codec
from zq.core import messages as m
from zq.core.messages import Role
from zq.security import PeerKeys, configure_peer_socket, create_keys, load_peer_keys

APP = "tests.apps.e2e_tasks"
NAMES = ("master", "worker", "client", "stranger")


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    """One directory per key pair, so a directory admits exactly one public key."""
    for name in NAMES:
        create_keys(tmp_path / "keys" / name, name)
    return tmp_path / "keys"


def files(keys: Path, who: str) -> dict[str, str]:
    return {"secret_key": str(keys / who / f"{who}.key_secret"),
            "master_key": str(keys / "master" / "master.key")}


def peer(keys: Path, who: str) -> PeerKeys:
    loaded = load_peer_keys(**files(keys, who))
    assert loaded is not None
    return loaded


def worker_flags(keys: Path, who: str) -> tuple[str, ...]:
    f = files(keys, who)
    return ("--secret-key", f["secret_key"], "--master-key", f["master_key"])


@pytest.fixture
def secured(cluster, keys):
    cluster.client_keys = peer(keys, "client")
    cluster.start_master("memory", "--secret-key", str(keys / "master" / "master.key_secret"),
                         "--worker-keys", str(keys / "worker"),
                         "--client-keys", str(keys / "client"))
    cluster.start_worker(APP, name="w1", pool="thread", extra=worker_flags(keys, "worker"))
    return cluster


def client(cluster, keys: Path, who: str) -> zq.Client:
    return zq.Client(cluster.endpoint, config=zq.ClientConfig(**files(keys, who)))


def raw_query(endpoint: str, keys: PeerKeys, timeout: float = 3.0) -> m.Message | None:
    """A status QUERY as a client, with these keys; the master's answer, or None."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    configure_peer_socket(sock, keys)
    try:
        sock.connect(endpoint)
        sock.send_multipart(codec.encode(Role.CLIENT, m.Query(1, "status", {})))
        if not sock.poll(timeout * 1000):
            return None
        return codec.decode(sock.recv_multipart())[1]
    finally:
        sock.close(0)


def test_admitted_keys_are_served_and_plain_connections_are_not(secured, keys):
    with client(secured, keys, "client") as c:
        assert c.submit(t.add, 2, 3).result(timeout=20) == 5
        assert list(c.map(t.add, range(50), range(50))) == [2 * i for i in range(50)]
    assert query(secured.endpoint, timeout=1) is None  # no keys: no handshake, no answer
    assert secured.status()["workers"][0]["name"] == "w1"


def test_an_unknown_key_is_refused_and_told_and_the_master_serves_on(secured, keys):
    assert raw_query(secured.endpoint, peer(keys, "stranger"), timeout=1) is None
    wait_until(lambda: "with an unknown key" in secured.master.output(),
               what="the master to log the refused key")
    stranger_key = peer(keys, "stranger").public.decode()
    with client(secured, keys, "stranger") as stranger:
        # Refused at the handshake: submit() raises if the refusal came first (a loaded
        # machine), else the future does.
        with pytest.raises(zq.AccessRefused, match=re.escape(stranger_key)):
            stranger.submit(t.add, 1, 1).result(timeout=10)
    with client(secured, keys, "client") as c:
        assert c.submit(t.add, 4, 4).result(timeout=20) == 8


def test_a_client_key_cannot_register_as_a_worker(secured, keys):
    secured.start_worker(APP, name="impostor", pool="thread",
                         extra=worker_flags(keys, "client"), wait=False)
    wait_until(lambda: "not admitted as a worker" in secured.master.output(), timeout=10,
               what="the master to refuse the client's key as a worker")
    impostor = next(p for p in secured.procs if "impostor" in " ".join(p.args))
    wait_until(lambda: "not admitted as a worker" in impostor.output(), timeout=10,
               what="the impostor to be told why")
    assert secured.workers() == {"w1"}
    with client(secured, keys, "client") as c:
        assert list(c.map(t.add, range(20), range(20))) == [2 * i for i in range(20)]
    assert secured.workers() == {"w1"}


def test_a_worker_key_cannot_act_as_a_client(secured, keys):
    reply = raw_query(secured.endpoint, peer(keys, "worker"))
    assert isinstance(reply, m.Reply) and not reply.ok
    assert "not admitted as a client" in reply.body  # the query itself is answered: no wait
    assert isinstance(raw_query(secured.endpoint, peer(keys, "client")), m.Reply)


class Tap:
    """A TCP relay on 127.0.0.1 that keeps every byte it passes: what an eavesdropper
    on the wire between a client and the master would see."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.seen = bytearray()
        self.lock = threading.Lock()
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.server.settimeout(0.2)
        while not self.stopping:
            try:
                inbound, _ = self.server.accept()
            except (TimeoutError, OSError):
                continue
            outbound = socket.create_connection(self.target, timeout=5)
            for a, b in ((inbound, outbound), (outbound, inbound)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(0.2)
        while not self.stopping:
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            with self.lock:
                self.seen += data
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            s.close()

    def close(self) -> None:
        self.stopping = True
        self.server.close()


@pytest.mark.parametrize("with_keys", [False, True])
def test_with_keys_the_wire_shows_no_task_arguments(cluster, keys, with_keys):
    """The same task through an eavesdropping relay: without keys its argument is
    readable on the wire, with keys it is not (and the task still runs)."""
    flags: tuple[str, ...] = ()
    config = zq.ClientConfig()
    if with_keys:
        cluster.client_keys = peer(keys, "client")
        flags = ("--secret-key", str(keys / "master" / "master.key_secret"),
                 "--worker-keys", str(keys / "worker"), "--client-keys", str(keys / "client"))
        config = zq.ClientConfig(**files(keys, "client"))
    cluster.start_master("memory", *flags)
    cluster.start_worker(APP, name="w1", pool="thread",
                         extra=worker_flags(keys, "worker") if with_keys else ())
    tap = Tap(cluster.port)
    secret = "attack at dawn " * 4
    try:
        with zq.Client(f"tcp://127.0.0.1:{tap.port}", config=config) as c:
            assert c.submit(t.echo, secret).result(timeout=20) == secret
    finally:
        tap.close()
    with tap.lock:
        wire = bytes(tap.seen)
    assert len(wire) > 2 * len(secret)  # the relay did carry the conversation
    assert (secret.encode() in wire) is not with_keys
