"""Shared by the web tests: the page's app in-process (aiohttp's test server and client),
with every answer checked for the API key."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from bulk_sync.config import Settings
from bulk_sync.web.app import WebConfig, create_app
from bulk_sync.web.security import Security

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')


@dataclass
class Page:
    """An app under test. ``get``/``post`` return (status, text) and record every answer;
    :meth:`assert_no_secret` checks them all, headers and bodies."""

    client: TestClient[Any, Any]
    secrets: list[str]
    data_dir: Path
    seen: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    csrf: str = ""

    async def _record(self, response: ClientResponse) -> tuple[int, str]:
        body = await response.read()
        self.seen.append((str(response.url), dict(response.headers), body))
        match = CSRF.search(body.decode("utf-8", "replace"))
        if match:
            self.csrf = match.group(1)
        return response.status, body.decode("utf-8", "replace")

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str]:
        async with self.client.get(path, **kwargs) as response:
            return await self._record(response)

    async def post(
        self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True, **kwargs: Any
    ) -> tuple[int, str]:
        form = dict(data or {})
        if csrf:
            if not self.csrf:
                await self.get("/")
            form = {"csrf_token": self.csrf, **form}
        async with self.client.post(path, data=form, **kwargs) as response:
            return await self._record(response)

    async def upload(
        self, path: str, files: list[tuple[str, bytes]], *, csrf: bool = True
    ) -> tuple[int, str, str]:
        """Upload ``(name, content)`` files; (status, text, final URL path).

        The multipart body is built by hand so that a file name reaches the server
        exactly as given (``../../x.csv``), as a hostile client would send it."""
        if csrf and not self.csrf:
            await self.get("/")
        boundary = "----bulk-sync-test-boundary"
        body = b""
        if csrf:
            body += (
                f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
                f"{self.csrf}\r\n"
            ).encode()
        for name, content in files:
            body += (
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
                    f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                ).encode()
                + content
                + b"\r\n"
            )
        body += f"--{boundary}--\r\n".encode()
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        async with self.client.post(path, data=body, headers=headers) as response:
            status, text = await self._record(response)
            return status, text, response.url.path

    def assert_no_secret(self) -> None:
        for url, headers, body in self.seen:
            for secret in self.secrets:
                for part in (secret, secret[:16], secret[-16:]):
                    assert part.encode() not in body, f"{url}: the body holds a secret"
                    assert all(part not in v for v in headers.values()), f"{url}: a header"


@asynccontextmanager
async def page_app(
    data_dir: Path,
    settings: Settings,
    *,
    token: str | None,
    password: str | None = None,
    max_upload_bytes: int = 10 * 1024 * 1024,
    samples: str = "",
) -> AsyncIterator[Page]:
    security = Security(password)
    config = WebConfig(
        data_dir,
        settings,
        security,
        max_upload_bytes=max_upload_bytes,
        token=lambda: token,
        samples=samples,
    )
    app = create_app(config)
    server = TestServer(app, host="127.0.0.1")
    async with TestClient(server) as client:
        assert server.port is not None
        security.allowed_hosts = Security.for_bind("127.0.0.1", server.port, password).allowed_hosts
        yield Page(client, [s for s in (token, password) if s], data_dir)
