"""Test hosts in network namespaces (for tests and bench/soak.py; tests skip through
tests/integration/netns.py): a master host, worker hosts, and a link from the
test process to the master host. Each link is a veth pair with its own /30 subnet, so
traffic only ever goes between namespaces this test made.

    root (test, client) 10.N.0.1 ── 10.N.0.2  master host
    worker host k       10.N.k.2 ── 10.N.k.1  master host

N is picked per Hosts, under a machine-wide lock, among the second octets no address or
route of the root namespace uses yet, so test runs sharing the machine never collide.
"""

from __future__ import annotations

import fcntl
import functools
import itertools
import os
import re
import subprocess
import tempfile
from pathlib import Path


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


_LOCK = Path(tempfile.gettempdir()) / "zq-test-netns.lock"
_made_here = itertools.count()  # tells apart the Hosts of one process
_TEN = re.compile(r"\b10\.(\d{1,3})\.\d{1,3}\.\d{1,3}")
_LEGACY = 231  # the fixed octet of earlier versions of this file, maybe still running


def _octets_in_use() -> set[int]:
    """Second octets of every 10.x.x.x address or route in the root namespace."""
    shown = [subprocess.run(["ip", "-4", "-o", *what], check=True, capture_output=True,
                            text=True, timeout=10).stdout
             for what in (["addr", "show"], ["route", "show", "table", "all"])]
    return {int(octet) for octet in _TEN.findall("\n".join(shown))}


def _free_octet() -> int:
    """A second octet for 10.N.0.0/16 that nothing here uses; start from the pid so two
    runs are unlikely to try the same one first. Call it holding _LOCK."""
    used = _octets_in_use() | {0, 255, _LEGACY}
    start = os.getpid() * 7 + next(_made_here) * 53
    for step in range(256):
        octet = (start + step) % 256
        if octet not in used:
            return octet
    raise RuntimeError("every 10.N.0.0/16 of the root namespace is in use")


@functools.cache
def unavailable_reason() -> str | None:
    """None if namespaces can be made here, else why not. Probes once per run, when a
    test first needs it (never at import: collecting tests makes no namespace)."""
    probe = f"zqprobe{os.getpid() % 100000}"
    try:
        _ip("netns", "add", probe)
    except FileNotFoundError:
        return "the `ip` command (iproute2) is not installed"
    except subprocess.CalledProcessError as e:
        return f"network namespaces are not permitted here: {e.stderr.decode().strip()}"
    _ip("netns", "del", probe)
    return None


class Hosts:
    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.net = ""  # "10.N", chosen on __enter__
        self.tag = ""
        self.master_ns = ""
        self.worker_ns: list[str] = []
        self._links: list[str] = []
        self._made: list[str] = []

    def _name(self, octet: int) -> None:
        """Names unique on this machine while the octet is ours: interface names stay
        within Linux's 15 characters."""
        self.net = f"10.{octet}"
        self.tag = f"{octet:03d}{os.getpid() % 100:02d}"
        self.master_ns = f"zq{self.tag}m"
        self.worker_ns = [f"zq{self.tag}w{k}" for k in range(1, self.workers + 1)]

    @property
    def master_addr(self) -> str:
        """The master host's address as the test process reaches it."""
        return f"{self.net}.0.2"

    def master_addr_for(self, k: int) -> str:
        """The master host's address as worker host k (from 1) reaches it."""
        return f"{self.net}.{k}.1"

    def worker_addr(self, k: int) -> str:
        """Worker host k's own address."""
        return f"{self.net}.{k}.2"

    @property
    def test_addr(self) -> str:
        """The test process's address, as the master host reaches it."""
        return f"{self.net}.0.1"

    def exec_prefix(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]

    def link_name(self, k: int) -> str:
        """The master-side interface of worker host k: set it down to cut that host off."""
        return f"zq{self.tag}m{k}"

    def __enter__(self) -> Hosts:
        # Choosing the octet and claiming it (the root end's address) under one lock.
        with open(_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._name(_free_octet())
                for ns in [self.master_ns, *self.worker_ns]:
                    _ip("netns", "add", ns)
                    self._made.append(ns)
                    _ip("-n", ns, "link", "set", "lo", "up")
                self._veth(f"zq{self.tag}r0", None, self.test_addr, f"zq{self.tag}m0",
                           self.master_addr)
                for k, ns in enumerate(self.worker_ns, start=1):
                    self._veth(f"zq{self.tag}w{k}e", ns, self.worker_addr(k),
                               self.link_name(k), self.master_addr_for(k))
            except Exception:
                self.__exit__()
                raise
        return self

    def _veth(self, a: str, a_ns: str | None, a_addr: str, b: str, b_addr: str) -> None:
        _ip("link", "add", a, "type", "veth", "peer", "name", b)
        self._links.append(a)
        _ip("link", "set", b, "netns", self.master_ns)
        if a_ns is not None:
            _ip("link", "set", a, "netns", a_ns)
        pre = ["-n", a_ns] if a_ns else []
        _ip(*pre, "addr", "add", f"{a_addr}/30", "dev", a)
        _ip(*pre, "link", "set", a, "up")
        _ip("-n", self.master_ns, "addr", "add", f"{b_addr}/30", "dev", b)
        _ip("-n", self.master_ns, "link", "set", b, "up")

    def set_link(self, k: int, up: bool) -> None:
        _ip("-n", self.master_ns, "link", "set", self.link_name(k), "up" if up else "down")

    def drop_to_test(self, on: bool = True) -> None:
        """Make the master host's packets to this test process (its client) vanish."""
        _ip("-n", self.master_ns, "route", "add" if on else "del", "blackhole",
            f"{self.test_addr}/32")

    def drop_one_way(self, k: int, *, to_master: bool, on: bool = True) -> None:
        """A one-way partition: a blackhole route makes worker host k's packets to the
        master (to_master) or the master's packets to it vanish, while the other way
        still works (TCP acknowledgements included: they go the cut way too)."""
        ns, dest = ((self.worker_ns[k - 1], self.master_addr_for(k)) if to_master
                    else (self.master_ns, self.worker_addr(k)))
        _ip("-n", ns, "route", "add" if on else "del", "blackhole", f"{dest}/32")

    def __exit__(self, *exc: object) -> None:
        for ns in self._made:  # deleting a namespace deletes the veth ends inside it
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        for link in self._links:  # the root end, if its peer did not take it along
            subprocess.run(["ip", "link", "del", link], capture_output=True, timeout=10)


class Lan:
    """Hosts on one switch, for a test where every host must reach every other (two
    masters, their workers and a database): a namespace per named host, each with one
    address on 10.N.1.0/24, plugged into a bridge in a namespace of its own (the
    switch); the root namespace (the test, its client, a database server) is plugged in
    too, as 10.N.1.1. cut(host) unplugs a host: every link it has goes dead at once,
    with no reset sent either way, as when a host's cable is pulled.

        root 10.N.1.1 ─┐
        host 1 10.N.1.2 ─┤ switch (a bridge in its own namespace)
        host 2 10.N.1.3 ─┘ ...
    """

    def __init__(self, hosts: list[str]) -> None:
        self.hosts = list(hosts)
        self.net = ""  # "10.N", chosen on __enter__
        self.tag = ""
        self._made: list[str] = []
        self._links: list[str] = []

    @property
    def root_addr(self) -> str:
        """The root namespace's address (the test process, a database it runs)."""
        return f"{self.net}.1.1"

    @property
    def subnet(self) -> str:
        return f"{self.net}.1.0/24"

    def addr(self, host: str) -> str:
        return f"{self.net}.1.{self.hosts.index(host) + 2}"

    def ns(self, host: str) -> str:
        return f"zq{self.tag}h{self.hosts.index(host)}"

    def exec_prefix(self, host: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns(host)]

    def _port(self, index: int | str) -> str:
        """The switch's interface for a host (its index) or for the root ("r")."""
        return f"zq{self.tag}p{index}"

    @property
    def _switch(self) -> str:
        return f"zq{self.tag}sw"

    def cut(self, host: str, off: bool = True) -> None:
        """Unplug the host from the switch (off=False: plug it back in)."""
        _ip("-n", self._switch, "link", "set", self._port(self.hosts.index(host)),
            "down" if off else "up")

    def __enter__(self) -> Lan:
        with open(_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                octet = _free_octet()
                self.net, self.tag = f"10.{octet}", f"{octet:03d}{os.getpid() % 100:02d}"
                _ip("netns", "add", self._switch)
                self._made.append(self._switch)
                _ip("-n", self._switch, "link", "add", "bridge0", "type", "bridge")
                _ip("-n", self._switch, "link", "set", "bridge0", "up")
                self._plug(f"zq{self.tag}r", None, self.root_addr, self._port("r"))
                for k, host in enumerate(self.hosts):
                    ns = self.ns(host)
                    _ip("netns", "add", ns)
                    self._made.append(ns)
                    _ip("-n", ns, "link", "set", "lo", "up")
                    self._plug(f"zq{self.tag}e{k}", ns, self.addr(host), self._port(k))
            except Exception:
                self.__exit__()
                raise
        return self

    def _plug(self, end: str, ns: str | None, addr: str, port: str) -> None:
        """A veth pair: `end` in `ns` (None: the root) with `addr`, `port` on the switch."""
        _ip("link", "add", end, "type", "veth", "peer", "name", port)
        self._links.append(end)
        _ip("link", "set", port, "netns", self._switch)
        _ip("-n", self._switch, "link", "set", port, "master", "bridge0")
        _ip("-n", self._switch, "link", "set", port, "up")
        if ns is not None:
            _ip("link", "set", end, "netns", ns)
        pre = ["-n", ns] if ns else []
        _ip(*pre, "addr", "add", f"{addr}/24", "dev", end)
        _ip(*pre, "link", "set", end, "up")

    def __exit__(self, *exc: object) -> None:
        for ns in self._made:  # deleting a namespace deletes the veth ends inside it
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        for link in self._links:  # the root end, if its peer did not take it along
            subprocess.run(["ip", "link", "del", link], capture_output=True, timeout=10)
