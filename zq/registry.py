"""Task names and the worker's allow-list: @task, name <-> callable, --app modules.

A task's name is ``module:qualname``. A worker imports only its --app modules and runs
only callables found in them; nothing else is ever imported because a message said so.
"""

from __future__ import annotations

import importlib
import inspect
import types
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Callable

from zq.canvas import Signature
from zq.core.messages import DECLARABLE
from zq.errors import ConfigError

_ATTR = "__zq_task__"


@dataclass(frozen=True)
class TaskOptions:
    """Defaults a task carries; client.options(...) overrides them per submission."""

    name: str | None = None
    queue: str = "default"
    priority: int = 0
    retries: int = 0
    timeout: float | None = None
    retry_backoff: float = 1.0
    retry_backoff_max: float = 600.0
    retry_on: tuple[str, ...] = ()  # exception type names; empty means every exception
    rate_limit: str | None = None
    result_ttl: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_wire(self, explicit: Any = ()) -> dict[str, Any]:
        """The SUBMIT options map: what differs from the protocol's defaults, and the
        options named in `explicit` (given for this submission) even at their default,
        so that they win over what the task declares (docs/TASKS.md)."""
        out: dict[str, Any] = {}
        if self.queue != "default" or "queue" in explicit:
            out["queue"] = self.queue
        if self.priority or "priority" in explicit:
            out["priority"] = self.priority
        if self.retries or "retries" in explicit:
            out["retries"] = self.retries
        if self.timeout is not None:
            out["timeout"] = float(self.timeout)
        if self.retry_backoff != 1.0 or "retry_backoff" in explicit:
            out["retry_backoff"] = float(self.retry_backoff)
        if self.retry_backoff_max != 600.0 or "retry_backoff_max" in explicit:
            out["retry_backoff_max"] = float(self.retry_backoff_max)
        if self.retry_on:
            out["retry_on"] = list(self.retry_on)
        if self.result_ttl is not None:
            out["result_ttl"] = float(self.result_ttl)
        if self.rate_limit is not None:
            out["rate_limit"] = self.rate_limit
        out.update(self.extra)
        return out


def _exc_names(retry_on: Any) -> tuple[str, ...]:
    return tuple(c if isinstance(c, str) else c.__name__ for c in (retry_on or ()))


def task(fn: Callable | None = None, *, name: str | None = None, queue: str = "default",
         priority: int = 0, retries: int = 0, timeout: float | None = None,
         retry_backoff: float = 1.0, retry_backoff_max: float = 600.0,
         retry_on: tuple = (), rate_limit: str | None = None,
         result_ttl: float | None = None) -> Any:
    """Mark a function as a zq task and set its defaults. The function stays callable
    as it is; usable bare (``@task``) or with options (``@task(retries=3)``)."""
    opts = TaskOptions(name=name, queue=queue, priority=priority, retries=retries,
                       timeout=timeout, retry_backoff=retry_backoff,
                       retry_backoff_max=retry_backoff_max, retry_on=_exc_names(retry_on),
                       rate_limit=rate_limit, result_ttl=result_ttl)

    def mark(f: Callable) -> Callable:
        setattr(f, _ATTR, opts)
        # f.s(*args, **kwargs): a signature of this call, for chains, groups and chords
        f.s = partial(_signature, f)  # type: ignore[attr-defined]
        return f

    return mark(fn) if fn is not None else mark


def _signature(fn: Callable, /, *args: Any, **kwargs: Any) -> Signature:
    return Signature(fn, args, kwargs)


def options_of(fn: Callable) -> TaskOptions:
    return getattr(fn, _ATTR, None) or TaskOptions()


def with_overrides(opts: TaskOptions, **overrides: Any) -> TaskOptions:
    """opts with the given fields replaced; unknown option names are a ConfigError."""
    known = {f for f in TaskOptions.__dataclass_fields__ if f not in ("name", "extra")}
    extra = dict(opts.extra)
    fields: dict[str, Any] = {}
    for k, v in overrides.items():
        if k == "retry_on":
            fields[k] = _exc_names(v)
        elif k in known:
            fields[k] = v
        elif k in ("eta", "delay", "key", "after"):
            extra[k] = v
        else:
            raise ConfigError(f"unknown task option {k!r}; known: {', '.join(sorted(known))}, "
                              "eta, delay, key, after")
    return replace(opts, extra=extra, **fields)


def name_of(fn: Callable | str) -> str:
    """The wire name of a task: its @task(name=...) or ``module:qualname``."""
    if isinstance(fn, str):
        if ":" not in fn:
            raise ConfigError(f"task name {fn!r} must look like 'module:function'")
        return fn
    if inspect.ismethod(fn):  # bound to an object (or a class) the worker cannot rebuild
        raise ConfigError(f"{fn.__qualname__} is a bound method: a worker calls tasks by "
                          "name and has no object to bind it to; submit a module-level "
                          "function (or a staticmethod) that takes what it needs as "
                          "arguments")
    opts = getattr(fn, _ATTR, None)
    if opts is not None and opts.name:
        return opts.name
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module or not qualname or "<locals>" in qualname or "<lambda>" in qualname:
        raise ConfigError(f"{fn!r} is not a module-level function (a lambda, a closure or "
                          "a function defined inside another); workers find tasks by "
                          "'module:name', so define it at the top level of a module")
    if module == "__main__":
        raise ConfigError(f"{qualname} is defined in __main__, which workers cannot import; "
                          "move it to a module and start workers with --app MODULE")
    return f"{module}:{qualname}"


class Registry:
    """The callables a worker may run, found by name: a function or class *defined in*
    one of its --app modules (its ``__module__`` is that module and its ``__qualname__``
    is the name asked for), or one registered there with ``@zq.task(name=...)``.

    Nothing is reached through another object: not through a module the app imported
    (``app:os.system``), not through a function's or class's attributes
    (``app:f.__globals__``), never a name with a ``_``-prefixed part. A task name comes
    off the wire, so this is the worker's allow-list (DESIGN §6).
    """

    def __init__(self, apps: list[str] | tuple[str, ...]) -> None:
        self.apps = tuple(apps)
        self._modules: dict[str, Any] = {}
        self._by_custom_name: dict[str, Callable] = {}
        for app in self.apps:
            try:
                module = importlib.import_module(app)
            except Exception as e:
                raise ConfigError(f"cannot import --app {app!r}: {type(e).__name__}: {e}. "
                                  "Is it on PYTHONPATH (run the worker from its folder)?") from e
            self._modules[app] = module
            for value in vars(module).values():
                opts = getattr(value, _ATTR, None)
                if opts is not None and opts.name and _is_task_object(value):
                    self._by_custom_name[opts.name] = value

    def resolve(self, name: str) -> Callable:
        """The callable for name; LookupError with a message saying why not and which
        names this worker has."""
        fn = self._by_custom_name.get(name)
        if fn is not None:
            return fn
        module_name, _, qualname = name.partition(":")
        module = self._modules.get(module_name)
        if module is None:
            raise LookupError(f"unknown task {name!r}: this worker runs tasks of "
                              f"{', '.join(self.apps)} only (start one with --app "
                              f"{module_name or 'MODULE'}). {self._known()}")
        obj = _defined_in(module, module_name, qualname)
        if obj is None:
            raise LookupError(f"unknown task {name!r}: {module_name} defines no public "
                              f"function or class {qualname!r}. {self._known()}")
        return obj

    def names(self) -> list[str]:
        """Every task name this worker resolves: its apps' public top-level functions and
        classes, and the custom @zq.task names, sorted."""
        out = set(self._by_custom_name)
        for module_name, module in self._modules.items():
            for attr, value in vars(module).items():
                if not attr.startswith("_") and _defined_in(module, module_name, attr) is value:
                    out.add(f"{module_name}:{attr}")
        return sorted(out)

    def catalogue(self) -> dict[str, dict[str, Any]]:
        """What a worker announces in HELLO: each name it resolves -> the options its
        @zq.task declares (the SUBMIT options map, without the defaults)."""
        out = {}
        for name in self.names():
            declared = options_of(self.resolve(name)).to_wire()
            out[name] = {k: v for k, v in declared.items() if k in DECLARABLE}
        return out

    def _known(self) -> str:
        names = self.names()
        shown = ", ".join(names[:KNOWN_SHOWN])
        more = f" and {len(names) - KNOWN_SHOWN} more" if len(names) > KNOWN_SHOWN else ""
        return f"This worker has: {shown or 'no tasks'}{more}."

    def options(self, fn: Callable) -> TaskOptions:
        return options_of(fn)


KNOWN_SHOWN = 20  # names listed in an unknown-task error at most


def _is_task_object(obj: Any) -> bool:
    """A plain Python function (sync, async, generator) or a class: what a task may be.
    Not a builtin, a bound method, a module, or an arbitrary callable instance."""
    return isinstance(obj, (types.FunctionType, type))


def _defined_in(module: Any, module_name: str, qualname: str) -> Any:
    """The function or class at ``module.qualname`` if it was defined there, else None.

    Each step is read with ``inspect.getattr_static`` from the module's or a class's own
    namespace (no ``__getattr__``, no descriptors run), and the object found must say it
    was defined at exactly this place: ``__module__ == module_name`` and
    ``__qualname__ == qualname``. So an import (``os``, ``system`` from os, another
    module's function), a dunder, or a path through attributes never resolves. Dotted
    names reach classes nested in classes and static methods of app-defined classes;
    plain methods are not tasks (they need an instance)."""
    parts = qualname.split(".")
    if not qualname or any(not p.isidentifier() or p.startswith("_") for p in parts):
        return None
    obj: Any = module
    for i, part in enumerate(parts):
        if i and not isinstance(obj, type):
            return None  # only classes are walked into
        try:
            found = inspect.getattr_static(obj, part) if i else vars(module).get(part)
        except AttributeError:
            return None
        if isinstance(found, staticmethod) and i:
            found = found.__func__
        elif i and isinstance(found, types.FunctionType):
            return None  # an instance method: calling it would need `self`
        if not _is_task_object(found):
            return None
        obj = found
    if getattr(obj, "__module__", None) != module_name or \
            getattr(obj, "__qualname__", None) != qualname:
        return None
    return obj
