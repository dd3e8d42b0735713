"""Submission options: user-friendly values turned into what SUBMIT carries, checked
before anything is sent, and the (name, wire options) spec cached per task function."""

from __future__ import annotations

import concurrent.futures as cf
import datetime as _dt
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from zq import canvas, registry, shipping
from zq.client import mapping
from zq.client.future import Future
from zq.client.mailbox import Pack, Spec
from zq.core import codec
from zq.core import messages as m
from zq.errors import ConfigError

if TYPE_CHECKING:
    from zq.client.mailbox import Mailbox
    from zq.config import ClientConfig

MAX_ID = codec.MAX_ID
MAX_NAME = codec.MAX_NAME
TaskRef = Callable[..., Any] | str  # a module-level function or its name "module:function"


def normalize(overrides: dict[str, Any]) -> dict[str, Any]:
    """User-friendly option values turned into what the wire takes (see SUBMIT options)."""
    out = dict(overrides)
    if "eta" in out and out["eta"] is not None:
        eta = out["eta"]
        out["eta"] = float(eta.timestamp() if isinstance(eta, _dt.datetime) else eta)
    if "delay" in out and out["delay"] is not None:
        delay = out["delay"]
        out["delay"] = float(delay.total_seconds() if isinstance(delay, _dt.timedelta) else delay)
    if "after" in out and out["after"] is not None:
        after = out["after"]
        if isinstance(after, (str, cf.Future)):
            after = [after]
        out["after"] = [a.id if isinstance(a, Future) else a for a in after]
    for k in [k for k, v in out.items() if v is None and k in ("eta", "delay", "after", "key")]:
        del out[k]  # None means "not set" for the options that have no default value
    return out


def check_wire(wire: dict[str, Any]) -> None:
    """Fail here, with a clear message, what the master would reject as a malformed
    message (and with it every other task of the same SUBMIT)."""
    for k, v in wire.items():
        want = m.SUBMIT_OPTIONS.get(k)
        if want is None:
            raise ConfigError(f"option {k!r} is not a SUBMIT option")
        if want is float:
            ok = type(v) in (int, float) and v == v
        elif k == "after":
            ok = type(v) is list and all(type(i) is str and 0 < len(i) <= MAX_ID for i in v)
        elif want is list:
            ok = type(v) is list and all(type(i) is str and 0 < len(i) <= MAX_NAME for i in v)
        else:
            ok = type(v) is want
        if not ok:
            raise ConfigError(f"task option {k}={v!r} must be {want.__name__}"
                              + (" of task ids / names" if want is list else ""))


# What submit() adds when it refuses a callable by name (docs/TASKS.md, Code shipping).
SHIP_HINT = ("; or, on a trusted cluster, send it by value: zq.Client(..., ship_code=True) "
             "with workers started with `zq worker --allow-code` and a master with --keys")


def make_spec(fn: TaskRef, overrides: dict[str, Any], shipped: bool = False) -> Spec:
    """(wire name, wire options) of fn with overrides; raises ConfigError early.
    shipped: fn travels by value (zq.shipping), under a shipped task name."""
    if shipped:
        name = shipping.shipped_name(fn)
    else:
        try:
            name = registry.name_of(fn)
        except ConfigError as e:  # submit's other way out for a callable (not a schedule's)
            if isinstance(fn, str):
                raise
            raise ConfigError(f"{e}{SHIP_HINT}") from None
    if len(name) > MAX_NAME:
        raise ConfigError(f"task name {name[:40]!r}... is over {MAX_NAME} characters")
    base = registry.TaskOptions() if isinstance(fn, str) else registry.options_of(fn)
    # Options given here are sent even at their default: they win over the declared ones
    # the master fills in for what a submission leaves unset.
    wire = registry.with_overrides(base, **overrides).to_wire(explicit=overrides)
    check_wire(wire)
    return name, wire


class Submitter:
    """submit() and map() with a fixed set of option overrides; specs cached per function."""

    def __init__(self, mailbox: Mailbox, config: ClientConfig, overrides: dict[str, Any]
                 ) -> None:
        self._mailbox, self._config = mailbox, config
        self._overrides = overrides
        self.specs: dict[Any, Spec] = {}  # Client.submit's fast path reads it directly
        if overrides:  # unknown names and wrong types fail here, not at submit()
            check_wire(registry.with_overrides(registry.TaskOptions(), **overrides).to_wire())

    def spec(self, fn: TaskRef) -> Spec:
        """fn's (name, options), cached. A callable to ship by value has none: see
        shipped_pack()."""
        try:
            return self.specs[fn]
        except KeyError:
            spec = self.specs[fn] = make_spec(fn, self._overrides)
            return spec
        except TypeError:  # an unhashable callable
            return make_spec(fn, self._overrides)

    def shipped_pack(self, fn: TaskRef) -> tuple[Spec, Pack] | None:
        """With config.ship_code, for a callable no worker can find by name: its spec
        and how to pack a call of it (the code pickled now, once: a closure's state as it
        is at this submit or map). None for everything that goes by name."""
        if not (self._config.ship_code and shipping.needs_shipping(fn)):
            return None
        code = shipping.dump_code(fn)  # type: ignore[arg-type]
        return (make_spec(fn, self._overrides, shipped=True),
                lambda call: shipping.pack(code, call[0], call[1]))

    def submit(self, fn: TaskRef, /, *args: Any, **kwargs: Any) -> Future:
        """Send one task; returns at once with its Future. fn is a module-level function
        or its name "module:function" (or, with ship_code=True, any picklable callable)."""
        try:
            spec = self.specs[fn]
        except (KeyError, TypeError):
            if isinstance(fn, canvas.Workflow):  # a signature, chain, group or chord
                if args or kwargs:
                    raise TypeError("submit(workflow) takes no other arguments: give "
                                    "them in the signatures") from None
                return canvas.submit(self, fn)  # type: ignore[return-value]
            shipped = self.shipped_pack(fn)
            if shipped is not None:
                return self._mailbox.submit_packed(shipped[0], shipped[1]((args, kwargs)))
            spec = self.spec(fn)
        return self._mailbox.submit(spec, args, kwargs)

    def map(self, fn: TaskRef, *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int | None = None, progress: bool = False) -> Iterator[Any]:
        """Results of fn(*args) for args in zip(*iterables), in order. Tasks are submitted
        in batches as results come back (the first window at once); no Future per task.
        A failed task raises its error at its position; then, as when the results are
        left (a timeout, a break), the tasks not started yet are cancelled and the
        running ones finish (concurrent.futures' map; before protocol 1.5 the master
        was asked to stop them all).
        progress=True draws a bar on stderr (done/total, rate, ETA, failures) while the
        results are iterated, when stderr is a terminal; nothing otherwise."""
        shipped = self.shipped_pack(fn)
        if shipped is not None:
            return mapping.start(self._mailbox, self._config, shipped[0], iterables, timeout,
                                 chunksize, progress, shipped[1])
        return mapping.start(self._mailbox, self._config, self.spec(fn), iterables, timeout,
                             chunksize, progress)

    def options(self, **overrides: Any) -> Submitter:
        """Another submitter with more option overrides (queue, priority, retries,
        timeout, delay, eta, key, after, retry_on, retry_backoff, result_ttl...)."""
        return Submitter(self._mailbox, self._config,
                         {**self._overrides, **normalize(overrides)})
