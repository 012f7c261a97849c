"""Who may use the page, and what a request must carry.

- The server binds loopback unless told otherwise; a non-loopback ``--host`` needs an
  access password (:func:`read_password`: an environment variable or a file, never a
  flag), and then every page but the login asks for it.
- A session is a random id in a cookie (``HttpOnly``, ``SameSite=Strict``, ``Secure``
  when the request came over TLS), mapped in memory to the session's CSRF token and
  whether it logged in. A restart logs everybody out, which is fine for an ops tool.
- Every state-changing request (any method but GET/HEAD/OPTIONS) must carry the
  session's CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``), and is
  refused when the browser says it comes from another site (``Origin``,
  ``Sec-Fetch-Site``). On loopback the ``Host`` header must name this server, which
  stops DNS-rebinding pages from reading it.
- Every answer gets a strict Content-Security-Policy (scripts and styles from this
  server only), ``nosniff``, no framing and no referrer.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from bulk_sync.errors import ConfigError

__all__ = [
    "PASSWORD_ENV",
    "PASSWORD_FILE_ENV",
    "Security",
    "is_loopback",
    "read_password",
]

PASSWORD_ENV = "BULK_SYNC_WEB_PASSWORD"  # noqa: S105 - the variable's name
PASSWORD_FILE_ENV = "BULK_SYNC_WEB_PASSWORD_FILE"  # noqa: S105
COOKIE = "bulk_sync_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_SECONDS = 12 * 3600
MIN_PASSWORD = 8
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    """``127.0.0.0/8``, ``::1`` or ``localhost``."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def read_password(environ: Mapping[str, str] | None = None) -> str | None:
    """The access password: ``BULK_SYNC_WEB_PASSWORD``, or the first line of the file
    named by ``BULK_SYNC_WEB_PASSWORD_FILE``; ``None`` when neither is set."""
    env = os.environ if environ is None else environ
    value = env.get(PASSWORD_ENV, "")
    file_name = env.get(PASSWORD_FILE_ENV, "").strip()
    if file_name and not value:
        try:
            text = Path(file_name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"{PASSWORD_FILE_ENV}: cannot read {file_name}: "
                f"{getattr(exc, 'strerror', None) or exc}"
            ) from None
        value = text.splitlines()[0] if text.strip() else ""
    value = value.strip()
    if not value:
        return None
    if len(value) < MIN_PASSWORD:
        raise ConfigError(f"the access password must have at least {MIN_PASSWORD} characters")
    return value


@dataclass
class Session:
    id: str
    csrf: str
    created: float
    authenticated: bool = False


@dataclass
class Security:
    """Sessions, login and CSRF for one server.

    ``password``: ``None`` on loopback without one (no login). ``allowed_hosts``: the
    ``Host`` values accepted (empty: any, for a server reached through other names).
    """

    password: str | None
    allowed_hosts: frozenset[str] = frozenset()
    clock: Callable[[], float] = time.monotonic
    sessions: dict[str, Session] = field(default_factory=dict)
    failed_logins: int = 0

    @classmethod
    def for_bind(cls, host: str, port: int, password: str | None) -> Security:
        """The rules for a server bound to ``host``: refuses a non-loopback host without
        a password (:class:`ConfigError`)."""
        if not is_loopback(host) and password is None:
            raise ConfigError(
                f"--host {host} is reachable from other machines: set an access password "
                f"first, in the environment variable {PASSWORD_ENV} or in a file named by "
                f"{PASSWORD_FILE_ENV} (never on the command line)"
            )
        allowed: frozenset[str] = frozenset()
        if is_loopback(host):
            names = {"127.0.0.1", "localhost", "[::1]", host.lower()}
            allowed = frozenset(f"{n}:{port}" for n in names) | frozenset(names)
        return cls(password, allowed)

    # -- sessions ----------------------------------------------------------------------

    def session(self, request: web.Request) -> Session | None:
        sid = request.cookies.get(COOKIE, "")
        session = self.sessions.get(sid)
        if session is None:
            return None
        if self.clock() - session.created > SESSION_SECONDS:
            del self.sessions[sid]
            return None
        return session

    def new_session(self) -> Session:
        if len(self.sessions) > 10_000:  # a flood of cookie-less requests: drop the oldest
            for sid in sorted(self.sessions, key=lambda s: self.sessions[s].created)[:5_000]:
                del self.sessions[sid]
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), self.clock())
        self.sessions[session.id] = session
        return session

    def set_cookie(self, response: web.StreamResponse, request: web.Request, sid: str) -> None:
        response.set_cookie(
            COOKIE,
            sid,
            httponly=True,
            samesite="Strict",
            secure=is_tls(request),
            path="/",
            max_age=SESSION_SECONDS,
        )

    def check_password(self, given: str) -> bool:
        if self.password is None:
            return True
        return hmac.compare_digest(given.encode("utf-8"), self.password.encode("utf-8"))

    def logged_in(self, session: Session | None) -> bool:
        return self.password is None or (session is not None and session.authenticated)

    # -- checks ------------------------------------------------------------------------

    def host_ok(self, request: web.Request) -> bool:
        if not self.allowed_hosts:
            return True
        return request.headers.get("Host", "").lower() in self.allowed_hosts

    @staticmethod
    def cross_site(request: web.Request) -> bool:
        """True when the browser says the request comes from another site."""
        site = request.headers.get("Sec-Fetch-Site", "")
        if site and site not in ("same-origin", "none"):
            return True
        origin = request.headers.get("Origin")
        if origin is None:
            return False
        host = request.headers.get("Host", "")
        return origin not in (f"http://{host}", f"https://{host}")

    @staticmethod
    def csrf_ok(session: Session | None, token: str | None) -> bool:
        if session is None or not token:
            return False
        return hmac.compare_digest(session.csrf.encode("ascii"), token.encode("utf-8", "replace"))


def is_tls(request: web.Request) -> bool:
    """Over TLS, directly or behind a proxy that says so."""
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def apply_headers(response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    # "same-origin", not "no-referrer": with no-referrer, Chrome sends `Origin: null` on our
    # own form posts, and null is what a sandboxed attacker frame sends too.
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
    headers.setdefault("Cache-Control", "no-store")
