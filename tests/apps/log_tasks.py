"""Tasks that log (tests/integration/test_logs.py): from inside a task, in every pool."""

import asyncio
import logging
import os
import time

log = logging.getLogger("myapp.work")


def say(text):
    log.warning("inside: %s", text, extra={"colour": "green"})
    return text


async def say_async(text):
    await asyncio.sleep(0)
    log.warning("inside: %s", text)
    return text


def fail(message):
    raise ValueError(message)


def fail_fatal(message):
    raise KeyError(message)


async def nap(seconds):
    await asyncio.sleep(seconds)


def nap_sync(seconds):
    time.sleep(seconds)


def crash():
    os._exit(13)
