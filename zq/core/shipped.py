"""Shipped code (opt-in, docs/TASKS.md "Code shipping"): the task names that mark a
callable sent by value, and the ready-queue key under which the master files such a task
so that only workers started with --allow-code are offered it. The payload itself
(cloudpickle) is zq.shipping's; the master never reads it.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet

from zq.core.codec import MAX_NAME

# A shipped task is named "<code>:" + the callable's module.qualname, for people to read
# (zq tasks, events, metrics). "<code>" is no Python module, so no worker's --app
# allow-list can ever resolve such a name to a function of its own.
PREFIX = "<code>:"

# What the master files a shipped task of queue Q under: ("code", Q), a key no plain queue
# (a str) can equal. While some registered worker of Q said allow_code in HELLO, only
# such workers take from it; while none does, every worker of Q does, and one without
# --allow-code fails the task at once saying how to run it (a task no worker can run
# fails rather than waits, as an unknown task name does: docs/TASKS.md).
CODE = "code"
ReadyKey = str | tuple[str, str]


def is_shipped(name: str) -> bool:
    return name.startswith(PREFIX)


def task_name(label: str) -> str:
    """The wire name of a shipped callable labelled `label` (its module.qualname),
    within the protocol's limit on task names and printable."""
    label = "".join(c if c.isprintable() else "?" for c in label) or "?"
    return (PREFIX + label)[:MAX_NAME]


def ready_key(queue: str, name: str) -> ReadyKey:
    """The ready queue a QUEUED task waits in: its queue, or ("code", queue) if shipped."""
    return (CODE, queue) if name.startswith(PREFIX) else queue


def serves(queues: tuple[str, ...], allow_code: bool, key: ReadyKey,
           code_served: AbstractSet[str]) -> bool:
    """Whether a worker of these queues (and allow_code) takes tasks filed under key,
    where code_served holds the queues some allow_code worker serves."""
    if type(key) is str:
        return key in queues
    return key[1] in queues and (allow_code or key[1] not in code_served)
