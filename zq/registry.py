"""Task names and the worker's allow-list: @task, name <-> callable, --app modules.

A task's name is ``module:qualname``. A worker imports only its --app modules and runs
only callables found in them; nothing else is ever imported because a message said so.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from typing import Any, Callable

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

    def to_wire(self) -> dict[str, Any]:
        """The SUBMIT options map: only what differs from the protocol's defaults."""
        out: dict[str, Any] = {}
        if self.queue != "default":
            out["queue"] = self.queue
        if self.priority:
            out["priority"] = self.priority
        if self.retries:
            out["retries"] = self.retries
        if self.timeout is not None:
            out["timeout"] = float(self.timeout)
        if self.retry_backoff != 1.0:
            out["retry_backoff"] = float(self.retry_backoff)
        if self.retry_backoff_max != 600.0:
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
        return f

    return mark(fn) if fn is not None else mark


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
    opts = getattr(fn, _ATTR, None)
    if opts is not None and opts.name:
        return opts.name
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module or not qualname or "<locals>" in qualname or "<lambda>" in qualname:
        raise ConfigError(f"{fn!r} is not a module-level function; workers find tasks by "
                          "'module:name', so define it at the top level of a module")
    if module == "__main__":
        raise ConfigError(f"{qualname} is defined in __main__, which workers cannot import; "
                          "move it to a module and start workers with --app MODULE")
    return f"{module}:{qualname}"


class Registry:
    """The callables a worker may run: those of its --app modules, found by name."""

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
                if opts is not None and opts.name and callable(value):
                    self._by_custom_name[opts.name] = value

    def resolve(self, name: str) -> Callable:
        """The callable for name; LookupError with a message saying why not."""
        if name in self._by_custom_name:
            return self._by_custom_name[name]
        module_name, _, qualname = name.partition(":")
        module = self._modules.get(module_name)
        if module is None or not qualname:
            raise LookupError(f"unknown task {name!r}: this worker runs tasks of "
                              f"{', '.join(self.apps)} only (start it with --app {module_name})")
        obj: Any = module
        for part in qualname.split("."):
            if part.startswith("_") and part != qualname:
                raise LookupError(f"unknown task {name!r}: private names are not tasks")
            obj = getattr(obj, part, None)
            if obj is None:
                raise LookupError(f"unknown task {name!r}: {module_name} has no {qualname}")
        if not callable(obj) or isinstance(obj, type):
            raise LookupError(f"unknown task {name!r}: not a function")
        return obj

    def options(self, fn: Callable) -> TaskOptions:
        return options_of(fn)
