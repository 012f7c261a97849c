"""A minimal zero-latency HTTP/1.1 keep-alive server, so the server is never the limit.

    python bench/minimal_server.py --port 0 [--max-seconds 900]

Raw asyncio protocol, no framework: every request is answered ``200`` with its own body
echoed back as ``application/json`` (a POST of a JSON map gets that map, which is what
the API's merge answers for a new customer; an empty body gets ``{}``). Pipelined and
keep-alive requests are served in order. Listens on 127.0.0.1 only, prints
``listening on http://127.0.0.1:PORT``, and exits on SIGTERM/SIGINT or after
``--max-seconds`` whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "


class _Echo(asyncio.Protocol):
    __slots__ = ("buffer", "transport")
    latency = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        out: list[bytes] = []
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = bytes(buf[:end]).lower()
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            total = end + 4 + length
            if len(buf) < total:
                break
            body = bytes(buf[end + 4 : total]) or b"{}"
            del buf[:total]
            out.append(b"%s%d\r\n\r\n%s" % (_HEAD, len(body), body))
        if out:
            if self.latency:
                asyncio.get_running_loop().call_later(
                    self.latency, self.transport.write, b"".join(out)
                )
            else:
                self.transport.write(b"".join(out))


async def serve(port: int, max_seconds: float, latency: float = 0.0) -> None:
    _Echo.latency = latency
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Echo, "127.0.0.1", port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    print(f"minimal server listening on http://127.0.0.1:{bound}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max_seconds)
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.max_seconds, args.latency))


if __name__ == "__main__":
    main()
