"""The one way a webhook leaves the platform (SPEC 3.6, QUALITY W4): an HTTPS POST to an address
checked by `webhooks.addresses`, pinned (the host is resolved once, every address checked, and
the connection made to a checked address, never resolved again), the certificate verified
against the host name, redirects never followed, at most 4 KiB of the answer read and thrown
away. What comes back is an `Answer` (status, Retry-After, duration, a short error), never the
body, and never an exception for a network reason: the delivery engine decides what it means."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from webhooks.addresses import (
    IPAddress,
    Resolver,
    Target,
    UnsafeWebhookUrl,
    check_url,
    public_addresses,
)

# The most of an endpoint's answer we read (then discard): enough to keep a connection alive
# after a small reply, never enough to be a way of pulling data through us.
BODY_LIMIT = 4096
MAX_ERROR_LENGTH = 200
# Keep-alive pools, one per (host, port, address), least recently used dropped beyond this.
MAX_POOLS = 256
# Idle connections kept per pool; more may be opened at once, the extra are closed after use.
CONNECTIONS_PER_POOL = 4
# When a host has several addresses and one refuses the connection, the next is tried; at most
# this many, within the one timeout.
MAX_CONNECT_ATTEMPTS = 3
USER_AGENT = "Coalition-Webhooks/1"


@dataclass(frozen=True)
class Answer:
    """What an endpoint answered: its status (None when there was no HTTP answer), its raw
    Retry-After header, how long the whole attempt took, and a short error (None on a 2xx)."""

    status: int | None
    retry_after: str | None
    duration_ms: int
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Transport:
    """Sends webhooks. Thread-safe: one per process (or per worker) is enough, and sharing it is
    what lets a busy endpoint keep its connections alive between deliveries."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        ca_bundle: str | None = None,
        resolver: Resolver = socket.getaddrinfo,
    ) -> None:
        self.allow_private = allow_private
        self.ca_bundle = ca_bundle
        self.resolver = resolver
        self._ssl_context = _ssl_context(ca_bundle)
        self._pools: OrderedDict[tuple[str, int, str], _PinnedPool] = OrderedDict()
        self._lock = threading.Lock()
        self._deadlines = _Deadlines()

    def post(self, url: str, body: bytes, headers: Mapping[str, str], *, timeout: float) -> Answer:
        """POST `body` to `url` and say what came back. Never raises for the endpoint's sake: a
        refused address, a network or TLS failure, a timeout are an Answer with status None. The
        whole attempt (connect, TLS, sending, the answer's headers and first 4 KiB) ends within
        `timeout` seconds, plus a fraction of a second, however slowly the endpoint trickles."""
        started = time.monotonic()
        try:
            target = check_url(url)
            addresses = public_addresses(
                target,
                allow_private=self.allow_private,
                resolver=_within(self.resolver, started + timeout),
            )
        except UnsafeWebhookUrl as exc:
            return _failed(started, f"unsafe address: {exc.detail}")
        except _NoAnswerInTime:
            return _failed(started, f"could not resolve the host within {timeout:g} s")
        except Exception as exc:  # a resolver failing in a way of its own
            return _failed(started, f"could not resolve the host: {describe(exc, timeout)}")
        watch = self._deadlines.watch(started + timeout)
        _current.watch = watch
        try:
            answer = self._send(target, addresses, body, headers, timeout, started)
        except Exception as exc:  # post never raises for the endpoint's sake
            if watch.fired:
                return _failed(started, f"timed out after {timeout:g} s")
            return _failed(started, describe(exc, timeout))
        finally:
            watch.finish()
            _current.watch = None
        if watch.fired:
            # Cut off mid-answer: what was read of it (an end of headers, a short body) is not
            # the endpoint's answer.
            return _failed(started, f"timed out after {timeout:g} s")
        return answer

    def close(self) -> None:
        """Close every kept connection."""
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.close()
        self._deadlines.stop()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -----------------------------------------------------------------------------------------

    def _send(
        self,
        target: Target,
        addresses: list[IPAddress],
        body: bytes,
        headers: Mapping[str, str],
        timeout: float,
        started: float,
    ) -> Answer:
        request_headers = {"User-Agent": USER_AGENT, "Content-Type": "application/json"}
        request_headers.update(headers)
        # The host name, not the address we connect to: the endpoint's virtual host.
        request_headers = {k: v for k, v in request_headers.items() if k.lower() != "host"}
        request_headers["Host"] = target.host_header
        last_error: Exception | None = None
        attempts = list(addresses[:MAX_CONNECT_ATTEMPTS])
        stale_retried = False
        while attempts:
            ip = attempts[0]
            remaining = timeout - (time.monotonic() - started)
            if remaining <= 0:
                break
            watch = _current.watch
            try:
                response = self._pool(target, ip).urlopen(
                    "POST",
                    target.request_target,
                    body=body,
                    headers=request_headers,
                    retries=False,
                    redirect=False,
                    assert_same_host=False,
                    preload_content=False,
                    decode_content=False,
                    timeout=urllib3.Timeout(connect=remaining, read=remaining),
                )
            except NewConnectionError as exc:
                # Refused or unreachable: the name's next address may answer. A timeout is not
                # retried on another address (it has spent the time).
                if isinstance(exc, ConnectTimeoutError) and _timed_out(exc):
                    raise
                last_error = exc
                attempts.pop(0)
                continue
            except ProtocolError:
                # A kept-alive connection the endpoint closed as we reused it (its idle timeout):
                # once, on a new connection. Webhooks are at least once; `webhook-id` dedupes.
                if watch is None or not watch.reused or watch.fired or stale_retried:
                    raise
                stale_retried = True
                continue
            return self._answer(response, started)
        if last_error is not None:
            raise last_error
        raise TimeoutError

    def _answer(self, response: Any, started: float) -> Answer:
        try:
            response.read(BODY_LIMIT + 1, decode_content=False)
            if not response.isclosed():
                # More than we read: the connection cannot be reused, close it.
                response.close()
        finally:
            if _current.watch is not None:
                # Done with the endpoint: from here the deadline no longer applies (and the
                # connection may serve another request once released).
                _current.watch.finish()
            response.release_conn()
        status = int(response.status)
        error: str | None = None
        if 300 <= status < 400:
            error = f"redirect not followed ({status})"
        elif not 200 <= status < 300:
            error = f"HTTP {status}"
        retry_after = response.headers.get("Retry-After")
        return Answer(
            status=status,
            retry_after=retry_after[:MAX_ERROR_LENGTH] if retry_after else None,
            duration_ms=_elapsed_ms(started),
            error=error,
        )

    def _pool(self, target: Target, ip: IPAddress) -> _PinnedPool:
        key = (target.host, target.port, str(ip))
        with self._lock:
            pool = self._pools.get(key)
            if pool is not None:
                self._pools.move_to_end(key)
                return pool
            pool = _PinnedPool(
                host=str(ip),
                port=target.port,
                # SNI and the certificate's name are the host's, not the address's.
                server_hostname=target.host,
                assert_hostname=target.host,
                cert_reqs="CERT_REQUIRED",
                ssl_context=self._ssl_context,
                retries=False,
                maxsize=CONNECTIONS_PER_POOL,
                block=False,
            )
            self._pools[key] = pool
            evicted = []
            while len(self._pools) > MAX_POOLS:
                evicted.append(self._pools.popitem(last=False)[1])
        for old in evicted:
            old.close()
        return pool


class _Watch:
    """One request's deadline: the connection it is using, shut down if the deadline passes
    while it is still at work (a socket timeout bounds each read, not the sum of them)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.fired = False
        self.done = False
        # Whether the connection last attached had served an earlier request (kept alive).
        self.reused = False
        self._connection: Any = None
        self._lock = threading.Lock()

    def attach(self, connection: Any) -> None:
        with self._lock:
            self._connection = connection
            self.reused = getattr(connection, "sock", None) is not None

    def detach(self, connection: Any) -> None:
        # Called before a connection goes back to its pool, so another request's use of it is
        # never cut short by this deadline.
        with self._lock:
            if self._connection is connection:
                self._connection = None

    def finish(self) -> None:
        with self._lock:
            self.done = True
            self._connection = None

    def fire(self) -> bool:
        """Cut the connection short; False if there was no socket yet (try again shortly)."""
        with self._lock:
            if self.done:
                return True
            self.fired = True
            sock = getattr(self._connection, "sock", None)
            if sock is None:
                return False
            # The plain socket's shutdown, not SSLSocket's (which would drop its TLS state under
            # the reading thread's feet): the reader sees the end of the stream.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            return True


class _Deadlines:
    """One thread per transport, started on first use, that fires each request's watch when its
    deadline passes: a heap of deadlines, not a timer thread per request."""

    RETRY = 0.05

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Watch]] = []
        self._changed = threading.Condition()
        self._count = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def watch(self, deadline: float) -> _Watch:
        watch = _Watch(deadline)
        with self._changed:
            heapq.heappush(self._heap, (deadline, next(self._count), watch))
            if self._thread is None or not self._thread.is_alive():
                self._stopped = False
                self._thread = threading.Thread(
                    target=self._run, name="webhooks-deadlines", daemon=True
                )
                self._thread.start()
            self._changed.notify()
        return watch

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify()

    def _run(self) -> None:
        with self._changed:
            while not self._stopped:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._changed.wait(timeout=60)
                    if not self._heap:
                        break  # idle for a minute: the next watch starts a new thread
                    continue
                deadline, _, watch = self._heap[0]
                now = time.monotonic()
                if now < deadline:
                    self._changed.wait(timeout=deadline - now)
                    continue
                heapq.heappop(self._heap)
                if not watch.fire():
                    heapq.heappush(self._heap, (now + self.RETRY, next(self._count), watch))
            self._thread = None


class _Current(threading.local):
    watch: _Watch | None = None


_current = _Current()


class _PinnedPool(urllib3.HTTPSConnectionPool):
    """urllib3's pool for one (host, port, checked address), telling the current request's
    watch which connection it is using. `_get_conn`/`_put_conn` are urllib3's internal hooks
    (urllib3 2.x, pinned in pyproject.toml)."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        connection = super()._get_conn(timeout)
        if _current.watch is not None:
            _current.watch.attach(connection)
        return connection

    def _put_conn(self, conn: Any) -> None:
        if _current.watch is not None:
            _current.watch.detach(conn)
        super()._put_conn(conn)


class _NoAnswerInTime(Exception):
    """The resolver did not answer before the attempt's deadline."""


def _within(resolver: Resolver, deadline: float) -> Resolver:
    """`resolver` bounded by the attempt's deadline: it runs on a thread of its own, which is
    left to finish (a system resolver gives up by itself) while the attempt ends in time. A
    thread per lookup, not a pool, so one name that never resolves cannot queue another's."""

    def resolve(*args: Any, **kwargs: Any) -> Any:
        found: list[Any] = []
        failed: list[BaseException] = []

        def run() -> None:
            try:
                found.append(resolver(*args, **kwargs))
            except BaseException as exc:  # handed to the caller's thread as it was
                failed.append(exc)

        lookup = threading.Thread(target=run, name="webhooks-resolve", daemon=True)
        lookup.start()
        lookup.join(max(deadline - time.monotonic(), 0))
        if failed:
            raise failed[0]
        if not found:
            raise _NoAnswerInTime()
        return found[0]

    return resolve


def transport_for(app: Any) -> Transport:
    """The application's transport, from `WEBHOOKS_ALLOW_PRIVATE` and `WEBHOOKS_CA_BUNDLE`,
    kept on the app (one per setting pair) so deliveries share its kept-alive connections."""
    allow_private = bool(app.config.get("WEBHOOKS_ALLOW_PRIVATE", False))
    ca_bundle = app.config.get("WEBHOOKS_CA_BUNDLE") or None
    key = (allow_private, ca_bundle)
    cache: dict[tuple[bool, str | None], Transport] = app.extensions.setdefault(
        "webhooks.transports", {}
    )
    with _cache_lock:
        transport = cache.get(key)
        if transport is None:
            transport = cache[key] = Transport(allow_private=allow_private, ca_bundle=ca_bundle)
    return transport


_cache_lock = threading.Lock()


def _ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    context = urllib3.util.ssl_.create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
    # urllib3 matches the host name itself (assert_hostname), against the name, not the address
    # it connected to.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    if ca_bundle:
        context.load_verify_locations(cafile=ca_bundle)
    else:
        context.load_default_certs()
    return context


def describe(exc: BaseException, timeout: float) -> str:
    """A short, safe account of why there was no HTTP answer."""
    seconds = f"{timeout:g} s"
    if isinstance(exc, ReadTimeoutError | TimeoutError | socket.timeout):
        return f"timed out after {seconds}"
    if isinstance(exc, NewConnectionError | ConnectTimeoutError):
        if _timed_out(exc):
            return f"connection timed out after {seconds}"
        if _caused_by(exc, ConnectionRefusedError):
            return "connection refused"
        return _clip(f"could not connect: {_reason(exc)}")
    if isinstance(exc, SSLError):
        reason = _reason(exc)
        if "doesn't match" in reason or "hostname" in reason.lower():
            return _clip(f"TLS certificate does not match the host name: {reason}")
        return _clip(f"TLS failed: {reason}")
    if isinstance(exc, ProtocolError):
        if _caused_by(exc, TimeoutError):
            return f"timed out after {seconds}"
        return _clip(f"connection closed by the endpoint: {_reason(exc)}")
    return _clip(f"{type(exc).__name__}: {exc}")


def _timed_out(exc: BaseException) -> bool:
    text = str(exc).lower()
    return _caused_by(exc, TimeoutError) or "timed out" in text


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether `kind` is anywhere in the exception's chain (its cause, context, args, reason):
    urllib3 wraps the socket's error in one of these, depending on where it happened."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        inner = [*current.args, getattr(current, "reason", None)]
        if isinstance(current, kind) or any(isinstance(item, kind) for item in inner):
            return True
        current = current.__cause__ or current.__context__
    return False


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException):
        return str(reason) or type(reason).__name__
    return str(exc) or type(exc).__name__


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 1] + "…"


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _failed(started: float, error: str) -> Answer:
    return Answer(
        status=None, retry_after=None, duration_ms=_elapsed_ms(started), error=_clip(error)
    )
