"""QUALITY W4: a merchant cannot point webhooks at our own network. Hostile URLs are refused at
registration and again at send time, a name that changes its answer between the two is caught,
the connection goes to the address that was checked (never resolved a second time), redirects
are not followed, and an endpoint's answer is read only up to 4 KiB.

Private ranges are reached only through a mocked resolver: no test sends a packet anywhere but to
the local test receivers on 127.0.0.1 (the `loopback_only` guard fails any other connect)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask

from tests.webhooks.receiver import Receiver, Reply
from webhooks.addresses import (
    UnsafeWebhookUrl,
    check_registration,
    check_url,
    public_addresses,
)
from webhooks.transport import BODY_LIMIT, Answer, Transport, transport_for

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:4700::1111"


# -- helpers --------------------------------------------------------------------------------


def resolving(*answers: list[str]) -> Callable[..., list[tuple[Any, ...]]]:
    """A resolver that answers `answers[0]` the first time, `answers[1]` the second, … (the
    last one for ever after), and counts its calls in `.calls`."""
    calls: list[str] = []

    def resolver(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        calls.append(host)
        addresses = answers[min(len(calls), len(answers)) - 1]
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (address, port, 0, 0) if ":" in address else (address, port),
            )
            for address in addresses
        ]

    resolver.calls = calls  # type: ignore[attr-defined]
    return resolver


def no_resolution(host: str, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
    raise AssertionError(f"{host} should not have been resolved")


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every outgoing connect this module's tests make, refusing any but 127.0.0.x and ::1."""
    attempts: list[Any] = []
    real_connect = socket.socket.connect

    def guarded(sock: socket.socket, address: Any) -> None:
        attempts.append(address)
        if not (str(address[0]).startswith("127.0.0.") or address[0] == "::1"):
            raise AssertionError(f"a test tried to connect to {address}")
        real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return attempts


@pytest.fixture(autouse=True)
def close_transports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Close every transport a test made (its kept-alive connections and deadline thread)."""
    made: list[Transport] = []
    original = Transport.__init__

    def init(self: Transport, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(Transport, "__init__", init)
    yield
    for transport in made:
        transport.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as started:
        yield started


def refused(url: str, **kwargs: Any) -> str:
    with pytest.raises(UnsafeWebhookUrl) as caught:
        check_registration(url, **{"allow_private": False, "resolver": no_resolution, **kwargs})
    assert caught.value.status == 422 and caught.value.code == "unsafe_webhook_url"
    return caught.value.detail


# -- the URL's syntax -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://hooks.example.com/hook", "https://"),
        ("ftp://hooks.example.com/hook", "https://"),
        ("//hooks.example.com/hook", "https://"),
        ("https://user:secret@hooks.example.com/hook", "user name or password"),
        ("https://user@hooks.example.com/hook", "user name or password"),
        ("https://hooks.example.com/hook#part", "fragment"),
        ("https://hooks.example.com:0/hook", "port 0"),
        ("https://hooks.example.com:65536/hook", "port 65536"),
        ("https://hooks.example.com:https/hook", "port https"),
        ("https:///hook", "no host"),
        ("https://hooks.example.com/a b", "spaces or control characters"),
        ("https://hooks.example.com/a\r\nX-Injected: 1", "spaces or control characters"),
        ("https://hooks.example.com\\@10.0.0.1/", "backslash"),
        ("https://[fe80::1%25eth0]/hook", "network interface"),
        ("https://[::1/hook", "cannot be read"),
        ("https://%31%32%37.0.0.1/hook", "neither a host name nor a valid IPv4 address"),
        ("https://1.2.3.09/hook", "neither a host name nor a valid IPv4 address"),
        ("https://hooks.example.123/hook", "neither a host name nor a valid IPv4 address"),
        ("https://hooks..example.com/hook", "not a valid host name"),
        ("https://-hooks.example.com/hook", "not a valid host name"),
        ("https://hooks.example.com/" + "a" * 2048, "longer than 2048"),
        ("", "empty"),
    ],
)
def test_a_url_that_is_not_plain_https_to_a_host_is_refused(url: str, reason: str) -> None:
    assert reason in refused(url)


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("HTTPS://Hooks.Example.COM/Hook?a=1", "https://hooks.example.com/Hook?a=1"),
        ("https://hooks.example.com:443", "https://hooks.example.com/"),
        ("https://hooks.example.com.:8443/h", "https://hooks.example.com:8443/h"),
        ("https://bücher.example/hook", "https://xn--bcher-kva.example/hook"),
        ("https://hooks.example.com/é?q=ü", "https://hooks.example.com/%C3%A9?q=%C3%BC"),
        ("https://[2606:4700:0::1111]:8443/h", "https://[2606:4700::1111]:8443/h"),
    ],
)
def test_an_acceptable_url_is_stored_normalised(url: str, normalised: str) -> None:
    target = check_url(url)
    assert target.url == normalised
    assert check_url(target.url) == target


# -- W4: hostile addresses, written literally or behind a name --------------------------------

# (how the merchant writes it, the address it is, a word the merchant's developer will read)
HOSTILE = [
    ("127.1", "127.0.0.1", "loopback"),
    ("0x7f000001", "127.0.0.1", "loopback"),
    ("0177.0.0.1", "127.0.0.1", "loopback"),
    ("2130706433", "127.0.0.1", "loopback"),
    ("127.0.0.1", "127.0.0.1", "loopback"),
    ("127.0.0.1.", "127.0.0.1", "loopback"),
    ("127\u30020\u30020\u30021", "127.0.0.1", "loopback"),  # ideographic full stops
    ("\uff11\uff12\uff17.0.0.1", "127.0.0.1", "loopback"),  # full-width digits
    ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1", "loopback"),
    ("[::1]", "::1", "loopback"),
    ("0.0.0.0", "0.0.0.0", "unspecified"),
    ("[::]", "::", "unspecified"),
    ("169.254.169.254", "169.254.169.254", "link-local"),
    ("10.0.0.5", "10.0.0.5", "private"),
    ("172.16.0.1", "172.16.0.1", "private"),
    ("172.31.255.254", "172.31.255.254", "private"),
    ("192.168.1.1", "192.168.1.1", "private"),
    ("100.64.0.1", "100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "100.127.255.254", "carrier-grade NAT"),
    ("224.0.0.1", "224.0.0.1", "multicast"),
    ("239.255.255.250", "239.255.255.250", "multicast"),
    ("240.0.0.1", "240.0.0.1", "reserved"),
    ("255.255.255.255", "255.255.255.255", "broadcast"),
    ("192.0.2.1", "192.0.2.1", "documentation"),
    ("198.18.0.1", "198.18.0.1", "benchmarking"),
    ("[fc00::1]", "fc00::1", "unique-local"),
    ("[fd12:3456::1]", "fd12:3456::1", "unique-local"),
    ("[fe80::1]", "fe80::1", "link-local"),
    ("[fec0::1]", "fec0::1", "site-local"),
    ("[ff02::1]", "ff02::1", "multicast"),
    ("[ff0e::1]", "ff0e::1", "multicast"),
    ("[::ffff:10.0.0.1]", "::ffff:10.0.0.1", "IPv4-mapped address of 10.0.0.1"),
    ("[::ffff:93.184.216.34]", "::ffff:93.184.216.34", "IPv4-mapped"),
    ("[::a00:1]", "::a00:1", "IPv4-compatible address of 10.0.0.1"),
    ("[64:ff9b::a00:1]", "64:ff9b::a00:1", "NAT64 address of 10.0.0.1"),
    ("[64:ff9b::7f00:1]", "64:ff9b::7f00:1", "NAT64 address of 127.0.0.1"),
    ("[2002:a00:1::]", "2002:a00:1::", "6to4 address of 10.0.0.1"),
    ("[2002:a9fe:a9fe::1]", "2002:a9fe:a9fe::1", "6to4 address of 169.254.169.254"),
    ("[2001:0:a00:1::1]", "2001:0:a00:1::1", "Teredo address through 10.0.0.1"),
    ("[2001:db8::1]", "2001:db8::1", "documentation"),
]


@pytest.mark.parametrize(("host", "address", "word"), HOSTILE)
def test_a_hostile_address_written_in_the_url_is_refused_at_registration(
    host: str, address: str, word: str
) -> None:
    detail = refused(f"https://{host}/hook")
    assert f"the address {address} is" in detail
    assert word in detail


@pytest.mark.parametrize(("host", "address", "word"), HOSTILE)
def test_a_name_resolving_to_a_hostile_address_is_refused_at_registration(
    host: str, address: str, word: str
) -> None:
    detail = refused("https://hooks.example.com/hook", resolver=resolving([address]))
    assert f"hooks.example.com resolves to {address}, which is" in detail
    assert word in detail


def test_localhost_is_refused_whatever_it_resolves_to() -> None:
    assert "localhost is this machine" in refused("https://localhost/hook")
    assert "this machine" in refused("https://api.localhost:8443/hook")
    # And through the machine's own resolver, for a name that points at it.
    resolver = resolving(["127.0.0.1"])
    assert "loopback" in refused("https://loopback.example.net/", resolver=resolver)


def test_a_name_with_one_private_address_among_public_ones_is_refused() -> None:
    for order in (["10.1.2.3", PUBLIC_V4, PUBLIC_V6], [PUBLIC_V4, PUBLIC_V6, "10.1.2.3"]):
        detail = refused("https://hooks.example.com/", resolver=resolving(order))
        assert "resolves to 10.1.2.3, which is private" in detail


def test_a_public_name_is_accepted_with_every_address() -> None:
    addresses = [PUBLIC_V4, PUBLIC_V6, "64:ff9b::5db8:d822", "2002:5db8:d822::1"]
    target = check_url("https://hooks.example.com/hook")
    found = public_addresses(target, allow_private=False, resolver=resolving(addresses))
    assert [str(ip) for ip in found] == addresses
    url = check_registration(
        "https://hooks.example.com/hook", allow_private=False, resolver=resolving(addresses)
    )
    assert url == "https://hooks.example.com/hook"


def test_a_public_address_written_in_the_url_is_accepted_without_resolving() -> None:
    assert check_registration(
        f"https://{PUBLIC_V4}:8443/h", allow_private=False, resolver=no_resolution
    ) == (f"https://{PUBLIC_V4}:8443/h")


def test_a_name_that_does_not_resolve_is_refused_with_its_reason() -> None:
    def nowhere(host: str, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    detail = refused("https://nowhere.example.com/", resolver=nowhere)
    assert "nowhere.example.com does not resolve" in detail
    assert "does not resolve" in refused("https://empty.example.com/", resolver=resolving([]))


def test_allow_private_lifts_the_address_check_but_not_the_rules_of_syntax() -> None:
    assert (
        check_registration("https://10.0.0.5/hook", allow_private=True, resolver=no_resolution)
        == "https://10.0.0.5/hook"
    )
    assert check_registration(
        "https://localhost:8443/", allow_private=True, resolver=resolving(["127.0.0.1"])
    ) == ("https://localhost:8443/")
    for url in ("http://10.0.0.5/hook", "https://u:p@10.0.0.5/", "https://10.0.0.5/#x"):
        with pytest.raises(UnsafeWebhookUrl):
            check_registration(url, allow_private=True, resolver=no_resolution)


# -- W4 at send time --------------------------------------------------------------------------


def test_a_name_that_turns_private_after_registration_is_refused_at_send_and_nothing_is_sent(
    loopback_only: list[Any],
) -> None:
    resolver = resolving([PUBLIC_V4], ["10.0.0.7"])
    url = check_registration(
        "https://hooks.example.com/hook", allow_private=False, resolver=resolver
    )

    answer = Transport(resolver=resolver).post(url, b"{}", {}, timeout=5)

    assert answer.status is None
    assert answer.error is not None
    assert answer.error.startswith("unsafe address: hooks.example.com resolves to 10.0.0.7")
    assert loopback_only == []


@pytest.mark.parametrize(("host", "address", "word"), HOSTILE)
def test_a_hostile_address_is_refused_at_send_and_nothing_is_sent(
    host: str, address: str, word: str, loopback_only: list[Any]
) -> None:
    transport = Transport(resolver=resolving([address]))
    for url in (f"https://{host}/hook", "https://hooks.example.com/hook"):
        answer = transport.post(url, b"{}", {}, timeout=5)
        assert answer.status is None and answer.error is not None
        assert answer.error.startswith("unsafe address:") and word in answer.error
    assert loopback_only == []


def test_the_real_test_receiver_is_refused_without_allow_private(receiver: Receiver) -> None:
    answer = Transport(ca_bundle=receiver.ca_bundle).post(receiver.url(), b"{}", {}, timeout=5)
    assert answer.error is not None and "loopback" in answer.error
    assert receiver.requests == []


def test_a_redirect_to_a_loopback_address_is_not_followed(receiver: Receiver) -> None:
    with Receiver(ca=receiver.ca) as inside:
        receiver.script(Reply(302, {"Location": inside.url("/admin")}))
        transport = Transport(allow_private=True, ca_bundle=receiver.ca_bundle)

        answer = transport.post(receiver.url("/hook"), b"{}", {}, timeout=5)

        assert (answer.status, answer.error) == (302, "redirect not followed (302)")
        assert [r.path for r in receiver.requests] == ["/hook"]
        assert inside.requests == []


def test_the_connection_goes_to_the_checked_address_with_the_host_name_for_tls(
    receiver: Receiver,
) -> None:
    # Resolved once to the receiver; any later resolution would answer an address no test may
    # reach (the guard would fail it): the request arriving proves there was none.
    resolver = resolving(["127.0.0.1"], ["203.0.113.9"])
    transport = Transport(allow_private=True, ca_bundle=receiver.ca_bundle, resolver=resolver)

    answer = transport.post(
        receiver.url("/hook?x=1", host="hooks.example.test"),
        b'{"id": "evt_1"}',
        {"webhook-id": "evt_1", "Host": "evil.example"},
        timeout=5,
    )

    assert answer == Answer(
        status=200, retry_after=None, duration_ms=answer.duration_ms, error=None
    )
    (request,) = receiver.wait_for(1)
    assert (request.path, request.body) == ("/hook?x=1", b'{"id": "evt_1"}')
    assert request.headers["host"] == f"hooks.example.test:{receiver.port}"
    assert request.headers["webhook-id"] == "evt_1"
    assert request.server_name == "hooks.example.test"
    assert resolver.calls == ["hooks.example.test"]  # type: ignore[attr-defined]


def test_a_certificate_for_another_name_is_refused_with_a_clear_error() -> None:
    with Receiver(names=["other.example.test"]) as other:
        transport = Transport(
            allow_private=True, ca_bundle=other.ca_bundle, resolver=resolving(["127.0.0.1"])
        )

        answer = transport.post(other.url(host="hooks.example.test"), b"{}", {}, timeout=5)

        assert answer.status is None and answer.error is not None
        assert answer.error.startswith("TLS certificate does not match the host name")
        assert "hooks.example.test" in answer.error
        assert other.requests == []


def test_a_certificate_from_an_untrusted_authority_is_refused(receiver: Receiver) -> None:
    answer = Transport(allow_private=True).post(receiver.url(), b"{}", {}, timeout=5)
    assert answer.status is None and answer.error is not None
    assert "certificate verify failed" in answer.error
    assert receiver.requests == []


def test_the_next_address_is_tried_when_one_refuses_the_connection(receiver: Receiver) -> None:
    # 127.0.0.2 is this machine too, where nothing listens on the receiver's port.
    resolver = resolving(["127.0.0.2", "127.0.0.1"])
    transport = Transport(allow_private=True, ca_bundle=receiver.ca_bundle, resolver=resolver)

    answer = transport.post(receiver.url(host="hooks.example.test"), b"{}", {}, timeout=5)

    assert answer.status == 200
    assert len(receiver.requests) == 1


def test_an_ipv6_endpoint_is_reached_by_name_with_its_certificate() -> None:
    with Receiver(bind="::1") as receiver:
        resolver = resolving(["::1"])
        transport = Transport(allow_private=True, ca_bundle=receiver.ca_bundle, resolver=resolver)

        by_name = transport.post(receiver.url(host="hooks.example.test"), b"{}", {}, timeout=5)
        by_address = transport.post(receiver.url(), b"{}", {}, timeout=5)

        assert (by_name.status, by_address.status) == (200, 200)
        hosts = [r.headers["host"] for r in receiver.wait_for(2)]
        assert hosts == [f"hooks.example.test:{receiver.port}", f"[::1]:{receiver.port}"]


def test_a_dead_endpoint_is_a_short_error(receiver: Receiver) -> None:
    port = receiver.port
    receiver.stop()
    answer = Transport(allow_private=True).post(f"https://127.0.0.1:{port}/", b"{}", {}, timeout=5)
    assert (answer.status, answer.error) == (None, "connection refused")


# -- what is read of an answer ----------------------------------------------------------------


def test_a_large_answer_is_not_read_past_the_limit(receiver: Receiver) -> None:
    big = b"x" * (16 * 1024 * 1024)
    receiver.script(Reply(200, body=big), Reply(204))
    transport = Transport(allow_private=True, ca_bundle=receiver.ca_bundle)

    first = transport.post(receiver.url(), b"{}", {}, timeout=5)
    second = transport.post(receiver.url(), b"{}", {}, timeout=5)

    assert (first.status, second.status) == (200, 204)
    receiver.wait_until(lambda: len(receiver.requests) == 2)
    # The receiver could not write its 16 MiB: we hung up after 4 KiB, and the next delivery
    # came on a new connection.
    assert receiver.requests[0].reply_sent is False
    assert receiver.requests[0].connection != receiver.requests[1].connection
    assert BODY_LIMIT == 4096


def test_a_small_answer_keeps_the_connection_alive(receiver: Receiver) -> None:
    receiver.script(Reply(200, body=b"ok"), Reply(200, body=b"x" * BODY_LIMIT))
    transport = Transport(allow_private=True, ca_bundle=receiver.ca_bundle)

    answers = [transport.post(receiver.url(), b"{}", {}, timeout=5) for _ in range(3)]

    assert [a.status for a in answers] == [200, 200, 200]
    assert len({r.connection for r in receiver.wait_for(3)}) == 1


def test_a_kept_alive_connection_closed_by_the_endpoint_is_replaced_once(
    receiver: Receiver,
) -> None:
    # The second request arrives on the kept-alive connection just as the endpoint drops it.
    receiver.script(Reply(200), Reply(hang_up=True), Reply(200), Reply(hang_up=True))
    transport = Transport(allow_private=True, ca_bundle=receiver.ca_bundle)

    first = transport.post(receiver.url(), b"1", {}, timeout=5)
    second = transport.post(receiver.url(), b"2", {}, timeout=5)
    # On a new connection, a hang-up is the endpoint's failure, not retried.
    fresh = Transport(allow_private=True, ca_bundle=receiver.ca_bundle)
    third = fresh.post(receiver.url(), b"3", {}, timeout=5)

    assert (first.status, second.status, third.status) == (200, 200, None)
    assert third.error is not None and third.error.startswith("connection closed by the endpoint")
    requests = receiver.wait_for(4)
    assert [r.body for r in requests] == [b"1", b"2", b"2", b"3"]
    assert requests[1].connection == requests[0].connection != requests[2].connection
    assert requests[3].connection != requests[2].connection


def test_one_transport_serves_many_threads_at_once(receiver: Receiver) -> None:
    transport = Transport(allow_private=True, ca_bundle=receiver.ca_bundle)
    bodies = [f"{thread}-{n}".encode() for thread in range(8) for n in range(5)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda b: transport.post(receiver.url(), b, {}, timeout=5), bodies))

    assert {a.status for a in answers} == {200}
    assert sorted(r.body for r in receiver.wait_for(len(bodies))) == sorted(bodies)


def test_the_answer_carries_status_and_retry_after_never_the_body(receiver: Receiver) -> None:
    receiver.script(Reply(503, {"Retry-After": "120"}, body=b"secret internal stack trace"))
    transport = Transport(allow_private=True, ca_bundle=receiver.ca_bundle)

    answer = transport.post(receiver.url(), b"{}", {}, timeout=5)

    assert (answer.status, answer.retry_after, answer.error) == (503, "120", "HTTP 503")
    assert "secret" not in repr(answer)


def test_a_slow_endpoint_hits_the_timeout(receiver: Receiver) -> None:
    receiver.script(Reply(200, delay=30))
    transport = Transport(allow_private=True, ca_bundle=receiver.ca_bundle)

    answer = transport.post(receiver.url(), b"{}", {}, timeout=0.5)

    assert (answer.status, answer.error) == (None, "timed out after 0.5 s")
    assert 400 <= answer.duration_ms < 5000


def test_a_name_that_never_resolves_ends_the_attempt_at_its_timeout() -> None:
    released = threading.Event()

    def hanging(*_: Any) -> Any:
        released.wait(30)  # a resolver that never answers (released after the test)
        raise OSError("released")

    transport = Transport(allow_private=False, resolver=hanging)
    try:
        answer = transport.post("https://hooks.example.com/hook", b"{}", {}, timeout=0.5)
    finally:
        released.set()

    assert (answer.status, answer.error) == (None, "could not resolve the host within 0.5 s")
    assert 400 <= answer.duration_ms < 3000


def test_an_endpoint_trickling_its_answer_is_cut_off_at_the_timeout(receiver: Receiver) -> None:
    # Every read gets a byte well within the timeout; only the whole attempt's deadline stops it.
    receiver.script(Reply(200, trickle=0.1))
    transport = Transport(allow_private=True, ca_bundle=receiver.ca_bundle)

    answer = transport.post(receiver.url(), b"{}", {}, timeout=0.5)

    assert (answer.status, answer.error) == (None, "timed out after 0.5 s")
    assert 400 <= answer.duration_ms < 3000
    # The transport is still good for the next delivery.
    assert transport.post(receiver.url(), b"{}", {}, timeout=5).status == 200


def test_the_application_transport_follows_its_settings(tmp_path: Any) -> None:
    app = Flask(__name__)
    app.config.update(WEBHOOKS_ALLOW_PRIVATE=False, WEBHOOKS_CA_BUNDLE=None)
    production = transport_for(app)
    assert production is transport_for(app)  # kept, so connections are reused
    assert production.allow_private is False

    with Receiver() as receiver:
        app.config.update(WEBHOOKS_ALLOW_PRIVATE=True, WEBHOOKS_CA_BUNDLE=receiver.ca_bundle)
        development = transport_for(app)
        assert development.post(receiver.url(), b"{}", {}, timeout=5).status == 200
        development.close()
