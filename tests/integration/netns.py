"""Test hosts in network namespaces: a master host, worker hosts, and a link from the
test process to the master host. Each link is a veth pair with its own /30 subnet, so
traffic only ever goes between namespaces this test made.

    root (test, client) 10.231.0.1 ── 10.231.0.2  master host
    worker host k       10.231.k.2 ── 10.231.k.1  master host
"""

from __future__ import annotations

import os
import subprocess


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def unavailable_reason() -> str | None:
    """None if namespaces can be made here, else why not (for pytest.skip)."""
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
        self.tag = f"{os.getpid() % 10000}"
        self.master_ns = f"zq{self.tag}m"
        self.worker_ns = [f"zq{self.tag}w{k}" for k in range(1, workers + 1)]
        self._links: list[str] = []
        self._made: list[str] = []

    @property
    def master_addr(self) -> str:
        """The master host's address as the test process reaches it."""
        return "10.231.0.2"

    def master_addr_for(self, k: int) -> str:
        """The master host's address as worker host k (from 1) reaches it."""
        return f"10.231.{k}.1"

    def exec_prefix(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]

    def link_name(self, k: int) -> str:
        """The master-side interface of worker host k: set it down to cut that host off."""
        return f"zq{self.tag}m{k}"

    def __enter__(self) -> "Hosts":
        try:
            for ns in [self.master_ns, *self.worker_ns]:
                _ip("netns", "add", ns)
                self._made.append(ns)
                _ip("-n", ns, "link", "set", "lo", "up")
            self._veth(f"zq{self.tag}r0", None, "10.231.0.1", f"zq{self.tag}m0", "10.231.0.2")
            for k, ns in enumerate(self.worker_ns, start=1):
                self._veth(f"zq{self.tag}w{k}e", ns, f"10.231.{k}.2", self.link_name(k),
                           f"10.231.{k}.1")
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
        _ip("-n", self.master_ns, "route", "add" if on else "del", "blackhole", "10.231.0.1/32")

    def drop_one_way(self, k: int, *, to_master: bool, on: bool = True) -> None:
        """A one-way partition: a blackhole route makes worker host k's packets to the
        master (to_master) or the master's packets to it vanish, while the other way
        still works (TCP acknowledgements included: they go the cut way too)."""
        ns, dest = ((self.worker_ns[k - 1], self.master_addr_for(k)) if to_master
                    else (self.master_ns, f"10.231.{k}.2"))
        _ip("-n", ns, "route", "add" if on else "del", "blackhole", f"{dest}/32")

    def __exit__(self, *exc: object) -> None:
        for ns in self._made:  # deleting a namespace deletes the veth ends inside it
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        for link in self._links:  # the root end, if its peer did not take it along
            subprocess.run(["ip", "link", "del", link], capture_output=True, timeout=10)
