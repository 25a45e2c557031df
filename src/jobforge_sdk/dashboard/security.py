"""The checks every request passes before a page is built: the bearer token (when one is
configured) and, for a POST, the CSRF token.

The token is accepted from an ``Authorization: Bearer`` header (scripts, Prometheus) or
from the cookie the login form sets (browsers), and always compared in constant time. The
CSRF defence is a double-submit cookie: a random value in a ``SameSite=Strict`` cookie
that every form repeats, which a page of another origin can neither read nor set.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "TOKEN_COOKIE",
    "csrf_ok",
    "csrf_value",
    "token_ok",
    "token_presented",
]

TOKEN_COOKIE = "jobforge_dashboard_token"
CSRF_COOKIE = "jobforge_csrf"
CSRF_FIELD = "csrf_token"

Endpoint = Callable[[Request], Awaitable[Response]]


def _same(given: str | None, expected: str) -> bool:
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def token_presented(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(TOKEN_COOKIE)


def token_ok(request: Request, expected: str | None) -> bool:
    """True when no token is configured, or the request presents it."""
    if expected is None:
        return True
    return _same(token_presented(request), expected)


def csrf_value(request: Request) -> str:
    """The CSRF value of this browser: its cookie, or a new one the response will set."""
    existing = request.cookies.get(CSRF_COOKIE)
    if existing and len(existing) >= 32:
        return existing
    fresh: str | None = getattr(request.state, "new_csrf", None)
    if fresh is None:
        fresh = secrets.token_urlsafe(32)
        request.state.new_csrf = fresh
    return fresh


def csrf_ok(request: Request, submitted: str | None) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    return cookie is not None and _same(submitted, cookie)
