"""The dashboard's pages in a real browser (issue 15), second part: a worker killed with
-9 turns from connected to lost on the open Workers page, with no reload; a task's page
shows its arguments, links to the task it waits for, whose page shows its streamed
chunks and links back; Pause and Resume on the Schedules page change the schedule at the
master and the page shows it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser.stack import APP, Stack
from tests.integration.harness import wait_until

DETAIL = "tests.apps.e2e_tasks"


def test_a_killed_worker_is_marked_lost_on_the_open_workers_page(stack: Stack,
                                                                 page: Any) -> None:
    doomed = stack.cluster.start_worker(APP, name="doomed", pool="thread", concurrency=1)
    try:
        page.goto(stack.url + "/workers")
        page.wait_for_selector('#live-state[data-live="on"]')
        row = page.locator('#workers tr[data-worker="doomed"]')
        assert row.get_attribute("data-status") == "connected"
        doomed.kill()  # SIGKILL: the master finds out by itself, the page by its events
        page.wait_for_selector('#workers tr[data-worker="doomed"][data-status="lost"]')
        assert row.count() == 1  # the same worker, marked, not listed twice
        assert row.locator("td.state").inner_text().startswith("lost ")
        assert page.locator('#workers tr[data-worker="w1"]').get_attribute(
            "data-status") == "connected"
    finally:
        doomed.kill()  # (already, unless the test failed first; the stack closes its log)


def test_a_task_page_shows_args_dependencies_and_chunks(stack: Stack, page: Any,
                                                         marks: Path) -> None:
    worker = stack.cluster.start_worker(DETAIL, name="detail", pool="thread", concurrency=2,
                                        extra=("--queues", "detail"))
    gate = marks / "gate"
    try:
        with stack.client() as client:
            on = client.options(queue="detail")
            stream = on.submit(f"{DETAIL}:stream_until", 25, str(gate), label="part")
            child = on.submit(f"{DETAIL}:add", stream, "!")  # its result is an argument
            wait_until(lambda: client.get(stream.id).get("chunks_total") == 25, 20,
                       "the master to pass the 25 chunks on")
            page.goto(f"{stack.url}/tasks/{child.id}")
            assert page.locator("#args").inner_text() == f"(<result of task {stream.id}>, '!')"
            assert "its result is an argument" in page.locator("#parents").inner_text()
            page.click(f'#parents a[href="/tasks/{stream.id}"]')
            page.wait_for_url(f"**/tasks/{stream.id}")
            page.wait_for_selector('#live-state[data-live="on"]')
            assert page.locator("#args").inner_text() == f"(25, {str(gate)!r}, label='part')"
            assert "25 streamed" in page.locator("#chunks-total").inner_text()
            values = page.locator("#chunks tbody td code").all_inner_texts()
            assert values == [repr(f"part {i}") for i in range(5, 25)]
            assert page.locator(f'#children a[href="/tasks/{child.id}"]').count() == 1
            assert page.locator("#attempts td.outcome").all_inner_texts() == ["running"]
            gate.touch()  # the stream ends: the open page follows its events
            page.wait_for_selector('#task-state:text("succeeded")')
            assert child.result(timeout=20) == "done!"
            assert page.locator("#attempts td.outcome").all_inner_texts() == ["succeeded"]
    finally:
        gate.touch()
        worker.kill()  # the stack closes its log


def test_pause_and_resume_a_schedule(stack: Stack, page: Any, marks: Path) -> None:
    with stack.client() as client:
        client.schedule("browser-beat", f"{APP}:record", str(marks / "runs"), "tick",
                        every=3600)
        try:
            page.goto(stack.url + "/schedules")
            row = '#schedules tr[data-schedule="browser-beat"]'
            page.wait_for_selector(f'{row}[data-paused="no"]')
            page.once("dialog", lambda dialog: dialog.accept())  # "Pause browser-beat? ..."
            page.click(f"{row} button.pause")
            page.wait_for_selector(f'{row}[data-paused="yes"]')
            assert page.locator(f"{row} td.next").inner_text() == "paused"
            assert page.locator("#flash").inner_text() == "browser-beat is paused"
            beat = next(s for s in client.schedules() if s["name"] == "browser-beat")
            assert beat["paused"] is True and beat["next_run"] is None  # the master's
            page.click(f"{row} button.resume")
            page.wait_for_selector(f'{row}[data-paused="no"]')
            beat = next(s for s in client.schedules() if s["name"] == "browser-beat")
            assert beat["paused"] is False and beat["next_run"] is not None
            assert page.locator(f"{row} td.next").inner_text() != "paused"
            assert page.locator(f"{row} button.pause").count() == 1
        finally:
            client.unschedule("browser-beat")
