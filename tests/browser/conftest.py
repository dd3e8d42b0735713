"""Browser tests (issue 15): Debian's Chromium, headless, driven by playwright against
real `zq master`, `zq worker` and `zq dashboard` processes. Skipped, saying why, only
where Chromium or playwright is missing; .ci/run installs both and sets
ZQ_TESTS_NEED_BROWSER=1, which turns that skip into a failure."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.browser.stack import Stack, chromium


def _unavailable(reason: str) -> None:
    if os.environ.get("ZQ_TESTS_NEED_BROWSER") == "1":
        pytest.fail(f"ZQ_TESTS_NEED_BROWSER=1, but the browser tests cannot run: {reason}")
    pytest.skip(reason)


# Module scope, not session: playwright's sync API keeps its asyncio loop marked running
# in this thread until it stops, and asyncio.run() in any later test would then fail.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        import starlette  # noqa: F401
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        _unavailable(f"playwright or the web extra is not installed ({e}): "
                     "pip install -e '.[test,web]'")
    path = chromium()
    if path is None:
        _unavailable("Chromium is not installed: apt-get install chromium chromium-driver")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, headless=True,
                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context (its own cookies) and page; waits time out in 15 s. A
    failed test prints what the page showed and the processes' logs."""
    context = browser.new_context()
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        yield page
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(f"==== the page at {page.url}:\n{page.content()[-6000:]}")
            if "stack" in request.fixturenames:
                print(request.getfixturevalue("stack").logs())
        context.close()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("stack"))
    try:
        s.start()
        yield s
    except BaseException:
        print(s.logs())
        raise
    finally:
        s.close()


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    return tmp_path
