"""The fast HTTPS receiver of bench/webhook_deliveries.py: answers every POST `200` at once,
keeping the connection alive, and notes when each webhook arrived. It must never be what limits
the bench, so it is asyncio on raw sockets (no HTTP framework), several processes sharing one port
(SO_REUSEPORT), and it writes what it noted only when told to stop.

    python bench/webhook_receiver.py --port P --cert server.pem --key server.key \
        --out /tmp/arrivals --processes 2

A request to a path starting with `/hang` is read and never answered (the connection is held
until the client gives up): the dead endpoint of the bench's second run. Each process writes
`<out>.<pid>` on SIGTERM: one line per request, `<webhook-id> <path> <arrival time.time()>`."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import ssl
import sys
import time

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class Connection(asyncio.Protocol):
    def __init__(self, arrivals: list[tuple[bytes, bytes, float]]) -> None:
        self.arrivals = arrivals
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.hung = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.hung:
            return
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = 0
            webhook_id = b"-"
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value.strip())
                elif name == b"webhook-id":
                    webhook_id = value.strip()
            if len(self.buffer) < end + 4 + length:
                return
            path = head.split(b" ", 2)[1]
            self.buffer = self.buffer[end + 4 + length :]
            self.arrivals.append((webhook_id, path, time.time()))
            if path.startswith(b"/hang"):
                self.hung = True  # never answer; the client times out and closes
                return
            assert self.transport is not None
            self.transport.write(OK)


def serve(port: int, cert: str, key: str, out: str, children: list[int]) -> None:
    arrivals: list[tuple[bytes, bytes, float]] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1024)
    listener.setblocking(False)

    loop = asyncio.new_event_loop()
    stopped = asyncio.Event()

    def stop() -> None:
        for child in children:
            os.kill(child, signal.SIGTERM)
        stopped.set()

    loop.add_signal_handler(signal.SIGTERM, stop)
    loop.add_signal_handler(signal.SIGINT, stop)

    async def main() -> None:
        server = await loop.create_server(
            lambda: Connection(arrivals), sock=listener, ssl=context, backlog=1024
        )
        await stopped.wait()
        server.close()

    loop.run_until_complete(main())
    with open(f"{out}.{os.getpid()}", "w") as handle:
        for webhook_id, path, moment in arrivals:
            handle.write(f"{webhook_id.decode()} {path.decode()} {moment:.6f}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--processes", type=int, default=2)
    options = parser.parse_args()
    children = []
    for _ in range(options.processes - 1):
        pid = os.fork()
        if pid == 0:
            serve(options.port, options.cert, options.key, options.out, [])
            os._exit(0)
        children.append(pid)
    serve(options.port, options.cert, options.key, options.out, children)
    for child in children:
        os.waitpid(child, 0)
    sys.exit(0)


if __name__ == "__main__":
    main()
