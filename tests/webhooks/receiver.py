"""A real HTTPS webhook receiver for tests: a threading server on 127.0.0.1 with a certificate
from a throw-away CA (trustme), recording every request and answering from a script.

    with Receiver() as receiver:  # on 127.0.0.1; certificate for DEFAULT_NAMES
        receiver.script(Reply(500), Reply(200))  # then `default` (200) for ever
        transport = Transport(allow_private=True, ca_bundle=receiver.ca_bundle)
        transport.post(receiver.url("/hook"), b"{}", {}, timeout=5)
        receiver.wait_for(1)
        assert receiver.requests[0].headers["webhook-id"] == ...

Several receivers may share one CA (`Receiver(ca=other.ca)`), so one `ca_bundle` trusts them all.
`default` may be a function of the Received request (verify its signature, answer by path…).
A reply may hold the request open (`Reply(200, delay=5)`, a slow endpoint), trickle its headers
(`trickle=0.1`) or hang up without answering (`hang_up=True`), all without sleeping the test:
`stop()` releases every held reply at once. A request is recorded (and `wait_for` wakes) before
its reply is written; `wait_until` waits for anything else, such as `reply_sent`. A receiver on
IPv6 is `Receiver(bind="::1")`. A name such as hooks.example.test reaches the receiver through a
test resolver given to the Transport; nothing here is meant to leave this machine."""

from __future__ import annotations

import json
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme

DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1", "hooks.example.test")


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a status, headers, a body, and how long to hold the request first
    (seconds; released early when the receiver stops)."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    # Seconds between header lines: a status line, then one header every `trickle` seconds,
    # 100 of them (an endpoint that never times a single read out but never finishes either).
    trickle: float = 0.0
    # Close the connection without answering (an endpoint that crashed mid-request).
    hang_up: bool = False


@dataclass
class Received:
    """One request as the receiver saw it. `headers` keys are lower case. `connection` numbers
    the TCP connection it came on (the same number twice is a kept-alive connection), and
    `server_name` is the TLS SNI the client sent (None if it sent none)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    connection: int
    server_name: str | None
    reply: Reply
    # Whether the whole reply body was written (False: the client hung up before reading it).
    reply_sent: bool = False

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """See the module. Attributes: `port`, `requests` (list of Received, in arrival order),
    `ca` (the trustme CA), `ca_bundle` (a PEM file trusting `ca`). Methods: `url(path, host)`,
    `script(*replies)`, `clear()`, `wait_for(count)`, `wait_until(predicate)`, `start()`, `stop()`;
    a context manager."""

    def __init__(
        self,
        *,
        names: Iterable[str] = DEFAULT_NAMES,
        ca: trustme.CA | None = None,
        bind: str = "127.0.0.1",
        default: Reply | Callable[[Received], Reply] = Reply(200),
    ) -> None:
        self.ca = ca or trustme.CA()
        self.names = tuple(names)
        self.bind = bind
        self.default = default
        self.requests: list[Received] = []
        self._script: list[Reply] = []
        self._changed = threading.Condition()
        self._release = threading.Event()
        self._connections = 0
        self._dir = tempfile.TemporaryDirectory(prefix="webhook-receiver-")
        self.ca_bundle = str(Path(self._dir.name) / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_bundle)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- set-up -----------------------------------------------------------------------------

    def start(self) -> Receiver:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert(*self.names).configure_cert(context)
        sni: dict[int, str | None] = {}

        def remember_sni(sock: Any, name: str | None, _: ssl.SSLContext) -> None:
            sni[id(sock)] = name

        context.sni_callback = remember_sni
        receiver = self

        class Handler(_Handler):
            pass

        Handler.receiver = receiver
        Handler.sni = sni
        server_class = _Server6 if ":" in self.bind else ThreadingHTTPServer
        server = server_class((self.bind, 0), Handler)
        server.daemon_threads = True
        # The handshake happens in the handler's thread, so a client that never completes one
        # does not block the server's accept loop.
        server.socket = context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._dir.cleanup()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- use --------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "start the receiver first"
        return int(self._server.server_address[1])

    def url(self, path: str = "/hook", host: str | None = None) -> str:
        """The receiver's URL, by default at its bound address; `host` may be a name (resolve it
        to the bound address with a test resolver: the certificate covers `names`)."""
        host = host or (f"[{self.bind}]" if ":" in self.bind else self.bind)
        return f"https://{host}:{self.port}{path}"

    def script(self, *replies: Reply) -> None:
        """Queue replies, answered in order; after them, `default`."""
        with self._changed:
            self._script.extend(replies)

    def clear(self) -> None:
        """Forget the requests seen and the replies still scripted."""
        with self._changed:
            self.requests.clear()
            self._script.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Block until `count` requests have arrived (a condition, not a sleep); return them."""
        with self._changed:
            arrived = self._changed.wait_for(lambda: len(self.requests) >= count, timeout)
        assert arrived, f"expected {count} requests, got {len(self.requests)}"
        return list(self.requests)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Block until `predicate()` holds; it is checked whenever a request changes."""
        with self._changed:
            assert self._changed.wait_for(predicate, timeout), "receiver: condition not met"

    # -- for the handler ----------------------------------------------------------------------

    def _next_connection(self) -> int:
        with self._changed:
            self._connections += 1
            return self._connections

    def _answer(self, received: Received) -> Reply:
        with self._changed:
            if self._script:
                return self._script.pop(0)
        return self.default(received) if callable(self.default) else self.default

    def _record(self, received: Received) -> None:
        with self._changed:
            self.requests.append(received)
            self._changed.notify_all()

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real endpoints do
    receiver: Receiver
    sni: dict[int, str | None]

    def setup(self) -> None:
        super().setup()
        self.connection_number = self.receiver._next_connection()
        self.timeout = 10

    def handle(self) -> None:
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError):
            return  # the client refused our certificate: nothing was sent
        super().handle()

    def do_POST(self) -> None:  # http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if len(body) < length:
            # The sender died mid-request (a worker killed by SIGKILL): as for any HTTP server,
            # a body cut short is no request, and nothing was delivered.
            self.close_connection = True
            return
        received = Received(
            method="POST",
            path=self.path,
            headers={key.lower(): value for key, value in self.headers.items()},
            body=body,
            connection=self.connection_number,
            server_name=self.sni.get(id(self.request)),
            reply=Reply(),
        )
        reply = self.receiver._answer(received)
        received.reply = reply
        self.receiver._record(received)
        if reply.delay:
            self.receiver._release.wait(reply.delay)
        if reply.hang_up:
            self.close_connection = True
            self.receiver._notify()
            return
        if reply.trickle:
            self._trickle(reply)
            self.receiver._notify()
            return
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
            self.wfile.flush()
            received.reply_sent = True
        except OSError:
            self.close_connection = True
        self.receiver._notify()

    def _trickle(self, reply: Reply) -> None:
        self.close_connection = True
        try:
            self.wfile.write(f"HTTP/1.1 {reply.status} Slowly\r\n".encode())
            self.wfile.flush()
            for line in range(100):
                if self.receiver._release.wait(reply.trickle):
                    return
                self.wfile.write(f"X-Trickle-{line}: {line}\r\n".encode())
                self.wfile.flush()
        except OSError:
            return

    def log_message(self, format: str, *args: Any) -> None:
        pass
