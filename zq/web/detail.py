"""One task's detail as the dashboard shows it: the `get` answer with its payload heads
(bytes the master never decoded) turned into bounded previews by zq.preview, so the page
and /api/tasks/ID show text and carry no bytes. A master older than protocol 1.5 sends
no detail: `detail` is then false and the page says so."""

from __future__ import annotations

from typing import Any

from zq.preview import preview_payload

ARGS_SHOWN = 2000  # characters of the arguments' preview
CHUNK_SHOWN = 300  # characters of each streamed chunk's preview
DETAIL_FIELDS = ("args_head", "parents", "children", "chunks", "attempts")


def task_view(info: dict[str, Any]) -> dict[str, Any]:
    """`info` (a `get` answer) with `detail` (did the master send the 1.5 fields),
    `args_preview` (text, or None when the master kept no copy) in place of
    `args_head`, and each chunk's `preview` in place of its `head`."""
    out = dict(info)
    out["detail"] = all(f in info for f in DETAIL_FIELDS)
    if not out["detail"]:
        for f in DETAIL_FIELDS:  # a partial answer is shown as none at all
            out.pop(f, None)
        return out
    head = out.pop("args_head")
    size = out.get("args_size")
    out["args_preview"] = (None if not isinstance(head, bytes) else
                           preview_payload(head, _size(size, head), ARGS_SHOWN))
    out["chunks"] = [_chunk(c) for c in _list(out.get("chunks"))]
    out["parents"] = _list(out.get("parents"))
    out["children"] = _list(out.get("children"))
    out["attempts"] = _list(out.get("attempts"))
    return out


def _chunk(c: dict[str, Any]) -> dict[str, Any]:
    shown = {k: v for k, v in c.items() if k != "head"}
    head = c.get("head")
    shown["preview"] = (preview_payload(head, _size(c.get("size"), head), CHUNK_SHOWN,
                                        call=False)
                        if isinstance(head, bytes) else "(not kept)")
    return shown


def _size(size: Any, head: bytes) -> int:
    return size if type(size) is int and size >= 0 else len(head)


def _list(value: Any) -> list[Any]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
