"""Who may use the dashboard: the access token (every request, the event stream too),
the Host header on loopback (against DNS rebinding), and cross-site request forgery
(every state-changing request is a POST carrying the session's CSRF token, from our own
origin). An ASGI middleware, so a refusal never reaches a page or the master."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

TOKEN_COOKIE = "zq_token"
CSRF_COOKIE = "zq_csrf"
CSRF_HEADER = "x-zq-csrf"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_loopback(host: str) -> bool:
    """Whether an address to bind (or a Host header's name) is this machine only."""
    host = host.strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def same(given: str | None, expected: str) -> bool:
    """A constant-time comparison (the time taken says nothing about the token)."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def token_cookie(token: str) -> str:
    """What the token cookie holds: a digest of the token (always cookie-safe text)."""
    return hashlib.sha256(b"zq-dashboard:" + token.encode()).hexdigest()


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


class Guard:
    """token: required on every request when set (a bearer header, the cookie, or
    `?token=` once, which sets the cookie). Without a token the dashboard is on
    loopback, and only loopback Host names are served."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        cookies = _cookies(headers.get("cookie", ""))
        refusal = self._refusal(scope, headers, cookies)
        if refusal is not None:
            await _plain(send, *refusal)
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if self.token and "token" in query and scope["method"] in SAFE_METHODS:
            # Trade the token in the address for a cookie, and take it out of the address
            # (history, logs, Referer) at once.
            del query["token"]
            target = scope["path"] + (f"?{urlencode(query)}" if query else "")
            await _redirect(send, target, _cookie(TOKEN_COOKIE, token_cookie(self.token)))
            return
        scope.setdefault("state", {})["csrf"] = cookies.get(CSRF_COOKIE) or new_csrf()
        scope["state"]["csrf_new"] = CSRF_COOKIE not in cookies
        await self.app(scope, receive, send)

    def _refusal(self, scope: dict, headers: dict[str, str],
                 cookies: dict[str, str]) -> tuple[int, str] | None:
        bearer = headers.get("authorization", "")
        bearer_ok = bool(self.token) and bearer.startswith("Bearer ") and same(
            bearer[len("Bearer "):], self.token or "")
        if self.token:
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            if not (bearer_ok or same(cookies.get(TOKEN_COOKIE), token_cookie(self.token))
                    or same(query.get("token"), self.token)):
                return 401, ("zq dashboard: this needs the access token: open the address "
                             "with ?token=TOKEN once, or send 'Authorization: Bearer TOKEN'")
        else:
            host = urlsplit("//" + headers.get("host", "")).hostname or ""
            if not is_loopback(host):
                return 403, (f"zq dashboard: Host {host!r} refused: without --token it "
                             "answers only loopback names (localhost, 127.0.0.1)")
        if scope["method"] in SAFE_METHODS or bearer_ok:
            return None  # a bearer header is never sent by a browser on its own
        origin = headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != headers.get("host"):
            return 403, f"zq dashboard: a request from another origin ({origin}) refused"
        csrf = cookies.get(CSRF_COOKIE)
        if not csrf or not same(headers.get(CSRF_HEADER), csrf):
            return 403, ("zq dashboard: missing or wrong CSRF token: send the page's "
                         "zq_csrf cookie value in an X-ZQ-CSRF header")
        return None


def set_csrf_cookie(response: Any, request: Any) -> None:
    """A page response sets the session's CSRF cookie when the browser had none."""
    if request.state.csrf_new:
        response.set_cookie(CSRF_COOKIE, request.state.csrf, httponly=True, samesite="strict")


def _cookies(header: str) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # a malformed Cookie header: as if there were none
        return {}
    return {k: v.value for k, v in jar.items()}


def _cookie(name: str, value: str) -> str:
    return f"{name}={value}; Path=/; HttpOnly; SameSite=Strict"


async def _plain(send: Any, status: int, text: str) -> None:
    body = (text + "\n").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Any, target: str, cookie: str) -> None:
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", target.encode("latin-1")),
                            (b"set-cookie", cookie.encode("latin-1")),
                            (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})
