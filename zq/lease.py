"""The master's side of a shared store's lease (PostgreSQL): wait as a standby until the
lease is free, renew it while serving, and fence this master (serve nothing) when a
renewal is overdue. The store keeps the lease row and its epoch (zq.store.postgres);
the master's loop (zq.master) asks this class whether it may serve and gives it the two
things it needs from the loop: a way to wait for peers' messages and a way to answer
them all with STANDBY.

The timings, as fractions of the lease, which lasts one liveness window (heartbeat
interval x liveness) without renewal:
- RENEW: the serving master renews every quarter of it;
- POLL: a standby tries to take it every fifth of it, so it takes over within POLL of a
  master killed -9 (the server ends that session) and within 1 + POLL of one cut off;
- FENCE_AT: a master that has not renewed for three quarters of it stops serving until
  a renewal succeeds. Measured by its own monotonic clock from before the last good
  renewal was sent, so the lease, dated by the server's clock when the renewal arrived,
  outlives the fence by (1 - FENCE_AT) of a lease less the clocks' drift: no standby can
  take over while this master still serves.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any, Callable

from zq.errors import StoreUnavailable

log = logging.getLogger("zq.master")  # the master's log: these lines are its story

RENEW = 0.25
POLL = 0.2
FENCE_AT = 0.75
LOST_EXIT = 3  # the exit code of a master whose lease another master took
HOLD = 2  # liveness windows a master that took the lease holds restored tasks
RETRY = 1.0  # seconds between renewals tried while the store is out of reach
RETRY_NOTE = 10.0  # seconds between log lines about a store out of reach

# Waits up to ms milliseconds for a peer's message; True when one is there.
Poll = Callable[[int], bool]


class Lease:
    """One master's hold on a shared store's lease. epoch is the lease this master
    serves under (None until taken); hint, while standby, is the active master's
    endpoint if known (peers are sent there)."""

    def __init__(self, store: Any, ttl: float, master_id: str) -> None:
        self.store = store
        self.ttl = ttl
        self.holder = f"master {master_id} on {socket.gethostname()} (pid {os.getpid()})"
        self.epoch: int | None = None
        self.hint = ""
        self.lost = False  # another master took it: this one must stop at once
        self.due: float | None = None  # monotonic time of the next renewal
        self._renewed: float | None = None  # monotonic time the last good renewal was sent
        self._noted = 0.0  # monotonic time a store out of reach was last logged

    def wait_until_taken(self, advertised: str, poll: Poll, answer_standby: Callable[[], None],
                         stopped: Callable[[], bool]) -> bool:
        """Standby: try to take the lease every POLL of it, answering every peer
        meanwhile with STANDBY (and hint). True once taken, False when stopped first."""
        seen: tuple | None = None  # the holder last logged
        next_try = noted = 0.0
        while not stopped():
            now = time.monotonic()
            if now >= next_try:
                next_try = now + self.ttl * POLL
                try:
                    lease = self.store.take_lease(self.holder, advertised, self.ttl)
                except StoreUnavailable as e:
                    self.hint = ""
                    if now - noted >= RETRY_NOTE:
                        noted = now
                        log.error("standby: %s; trying again", e)
                    lease = None
                if lease is not None and lease.ours:
                    self.epoch, self._renewed = lease.epoch, now
                    self.due = time.monotonic() + self.ttl * RENEW
                    log.info("took the store's lease (epoch %d), as %s at %s: this master "
                             "serves", lease.epoch, self.holder, advertised)
                    return True
                if lease is not None:
                    self.hint = lease.endpoint if lease.live else ""
                    if (lease.epoch, lease.holder, lease.live) != seen:
                        seen = (lease.epoch, lease.holder, lease.live)
                        log.info("standby: %s (epoch %d) holds the store's lease%s; this "
                                 "master takes over when it goes", lease.holder or "nobody",
                                 lease.epoch, f", serving at {self.hint}" if self.hint else "")
            if poll(_ms_until(next_try)):
                answer_standby()
        return False

    def renew_if_due(self, now: float) -> None:
        """LeaseLost (another master took it) ends the loop; a store out of reach is
        tried again soon (meanwhile commits fail too: nothing is acknowledged)."""
        if self.due is None or now < self.due:
            return
        try:
            self.store.renew_lease()
        except StoreUnavailable as e:
            self.due = now + min(RETRY, self.ttl * RENEW)
            if now - self._noted >= RETRY_NOTE:
                self._noted = now
                log.error("%s; the lease is renewed again in %.2f s", e, self.due - now)
            return
        self.due = now + self.ttl * RENEW
        self._renewed = now

    def overdue(self) -> bool:
        """Whether the last good renewal is FENCE_AT of the lease old: the lease may
        expire any moment and a standby take it."""
        return self._renewed is not None and time.monotonic() >= (
            self._renewed + self.ttl * FENCE_AT)

    def fence(self, poll: Poll, answer_standby: Callable[[], None],
              stopped: Callable[[], bool]) -> float | None:
        """Serve nothing until a renewal succeeds: every peer gets STANDBY naming nobody,
        so workers and clients go round their lists of masters (to the standby that
        takes over); the renewal is tried every POLL of the lease. Returns the seconds
        spent fenced once renewed (the epoch is still ours: no master served meanwhile),
        None when stopped first. LeaseLost when the lease moved."""
        fenced_at = time.monotonic()
        log.error("the store's lease (epoch %s) was not renewed for %.2f s (it lasts %.2f s): "
                  "stopped serving; every peer hears STANDBY until a renewal succeeds",
                  self.epoch, fenced_at - (self._renewed or fenced_at), self.ttl)
        self.hint = ""
        next_try = noted = fenced_at
        while not stopped():
            now = time.monotonic()
            if now >= next_try:
                next_try = now + self.ttl * POLL
                try:
                    self.store.renew_lease()  # LeaseLost: another master took it
                except StoreUnavailable as e:
                    if now - noted >= RETRY_NOTE:
                        noted = now
                        log.error("fenced: %s; trying again", e)
                else:
                    self._renewed = now
                    self.due = now + self.ttl * RENEW
                    log.warning("the store's lease is still ours (epoch %s), renewed after "
                                "%.1f s fenced: serving again", self.epoch, now - fenced_at)
                    return now - fenced_at
            if poll(_ms_until(next_try)):
                answer_standby()
        return None


def _ms_until(when: float) -> int:
    """Whole milliseconds to wait for `when` (pyzmq truncates), at least 1."""
    return max(0, int((when - time.monotonic()) * 1000)) + 1
