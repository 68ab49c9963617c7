"""Where a webhook may be sent (SPEC 3.6, QUALITY W4): the syntax of an endpoint's URL and the
addresses its host may resolve to. A merchant's URL is never trusted to point outside our own
network: only `https`, and only public internet addresses, checked at registration and again at
every connect (`webhooks.transport` pins the connection to an address checked here).
`WEBHOOKS_ALLOW_PRIVATE=true` (development and tests) lifts the address check, never the syntax."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from coalition.errors import CoalitionError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# getaddrinfo's shape: (host, port, family, type, proto, flags) -> [(family, type, proto,
# canonname, sockaddr)]. Tests inject a fake; production uses the system resolver.
Resolver = Callable[..., Sequence[tuple[Any, ...]]]

MAX_URL_LENGTH = 2048
# A bound on what one name may resolve to: every address is checked, and a name that answers
# with hundreds is not one we need to deliver to.
MAX_ADDRESSES = 32

_PUBLIC = "webhooks are only sent to public internet addresses"


class UnsafeWebhookUrl(CoalitionError):
    status, code, title = 422, "unsafe_webhook_url", "Webhook URL not allowed"


@dataclass(frozen=True)
class Target:
    """A URL that passed the syntax check. `host` is lower case and IDNA-encoded (a name) or the
    canonical text of an IP address (`127.0.0.1` for `0x7f000001`, `::1` for `[::1]`)."""

    scheme: str
    host: str
    port: int
    url: str

    @property
    def literal(self) -> IPAddress | None:
        """The address itself when the host is an IP address, else None (a name to resolve)."""
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    @property
    def host_header(self) -> str:
        """The `Host` header: the host (IPv6 in brackets), with the port unless it is 443."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == 443 else f"{host}:{self.port}"

    @property
    def request_target(self) -> str:
        """Path and query, what goes on the request line."""
        split = urlsplit(self.url)
        return split.path + (f"?{split.query}" if split.query else "")


# ---------------------------------------------------------------------------------------------
# Syntax


_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
# Characters kept as they are in a path or a query; anything else is percent-encoded.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"


def check_url(url: str) -> Target:
    """Check an endpoint URL's syntax (no resolution) and return it normalised. Raises
    UnsafeWebhookUrl saying what is wrong."""
    if not isinstance(url, str) or not url:
        raise UnsafeWebhookUrl("the URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeWebhookUrl(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if _CONTROL.search(url):
        raise UnsafeWebhookUrl("the URL contains spaces or control characters")
    if "\\" in url:
        raise UnsafeWebhookUrl("the URL contains a backslash")
    try:
        split = urlsplit(url)
    except ValueError as exc:
        raise UnsafeWebhookUrl(f"the URL cannot be read ({exc})") from exc
    if split.scheme.lower() != "https":
        scheme = split.scheme or "none"
        raise UnsafeWebhookUrl(f"the URL must start with https:// (its scheme is {scheme})")
    if "#" in url:
        raise UnsafeWebhookUrl("the URL must not have a fragment (#…)")
    if "@" in split.netloc:
        raise UnsafeWebhookUrl("the URL must not contain a user name or password")
    host = _host(split.netloc)
    port = _port(split.netloc)
    path = quote(split.path, safe=_PATH_SAFE) or "/"
    query = quote(split.query, safe=_PATH_SAFE + "?")
    target = Target(scheme="https", host=host, port=port, url="")
    normalised = f"https://{target.host_header}{path}" + (f"?{query}" if query else "")
    if len(normalised) > MAX_URL_LENGTH:
        raise UnsafeWebhookUrl(f"the URL is longer than {MAX_URL_LENGTH} characters")
    return Target(scheme="https", host=host, port=port, url=normalised)


def _host(netloc: str) -> str:
    raw = netloc.rsplit(":", 1)[0] if not netloc.endswith("]") else netloc
    if raw.startswith("["):
        end = raw.find("]")
        if end == -1 or not raw.endswith("]"):
            raise UnsafeWebhookUrl("the URL's IPv6 address is not closed with ]")
        literal = raw[1:end]
        if "%" in literal:
            raise UnsafeWebhookUrl("the URL's IPv6 address must not name a network interface")
        try:
            return address_text(ipaddress.IPv6Address(literal))
        except ValueError as exc:
            raise UnsafeWebhookUrl(f"{literal} is not a valid IPv6 address") from exc
    if not raw:
        raise UnsafeWebhookUrl("the URL has no host")
    name = raw[:-1] if raw.endswith(".") else raw
    if not name or name.startswith(".") or ".." in name:
        raise UnsafeWebhookUrl(f"{raw} is not a valid host name")
    try:
        encoded = name.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise UnsafeWebhookUrl(f"{raw} is not a valid host name") from exc
    labels = encoded.split(".")
    # A host whose last label is a number is an IPv4 address however it is spelled (`127.1`,
    # `0x7f000001`, `2130706433`, `0177.0.0.1`): read it as inet_aton does, or refuse it.
    if _NUMERIC_LABEL.match(labels[-1]):
        ipv4 = parse_ipv4(encoded)
        if ipv4 is None:
            raise UnsafeWebhookUrl(f"{raw} is neither a host name nor a valid IPv4 address")
        return str(ipv4)
    if len(encoded) > 253 or not all(_LABEL.match(label) for label in labels):
        raise UnsafeWebhookUrl(f"{raw} is not a valid host name")
    return encoded


def _port(netloc: str) -> int:
    after = netloc.rsplit("]", 1)[-1]
    if ":" not in after:
        return 443
    text = after.rsplit(":", 1)[1]
    if not text:
        return 443
    if not text.isascii() or not text.isdigit() or len(text) > 5 or not 1 <= int(text) <= 65535:
        raise UnsafeWebhookUrl(f"the URL's port {text} is not a number from 1 to 65535")
    return int(text)


def parse_ipv4(text: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address in any spelling inet_aton accepts (one to four parts, each decimal, octal
    with a leading 0, or hex with 0x; the last part fills the remaining bytes), else None."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers: list[int] = []
    for part in parts:
        try:
            if part.startswith(("0x", "0X")):
                numbers.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                numbers.append(int(part[1:], 8))
            else:
                numbers.append(int(part, 10))
        except ValueError:
            return None
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (4 - len(leading)):
        return None
    value = last
    for index, number in enumerate(leading):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


# ---------------------------------------------------------------------------------------------
# Addresses

_V4_RANGES: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), why)
    for net, why in (
        ("0.0.0.0/8", "an unspecified address (this host)"),
        ("10.0.0.0/8", "private (RFC 1918)"),
        ("100.64.0.0/10", "carrier-grade NAT space (RFC 6598), not reachable from the internet"),
        ("127.0.0.0/8", "a loopback address (this machine)"),
        ("169.254.0.0/16", "link-local (cloud metadata services live there)"),
        ("172.16.0.0/12", "private (RFC 1918)"),
        ("192.0.0.0/24", "reserved for IETF protocol assignments"),
        ("192.0.2.0/24", "reserved for documentation"),
        ("192.88.99.0/24", "a retired 6to4 relay address"),
        ("192.168.0.0/16", "private (RFC 1918)"),
        ("198.18.0.0/15", "reserved for benchmarking"),
        ("198.51.100.0/24", "reserved for documentation"),
        ("203.0.113.0/24", "reserved for documentation"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "the broadcast address"),
        ("240.0.0.0/4", "reserved"),
    )
)

_V6_RANGES: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), why)
    for net, why in (
        ("::/128", "the unspecified address"),
        ("::1/128", "a loopback address (this machine)"),
        ("64:ff9b:1::/48", "a local-use NAT64 address (RFC 8215)"),
        ("100::/64", "a discard-only address"),
        ("2001:db8::/32", "reserved for documentation"),
        ("2001:2::/48", "reserved for benchmarking"),
        ("3fff::/20", "reserved for documentation"),
        ("5f00::/16", "a segment routing address, not reachable from the internet"),
        ("fc00::/7", "a unique-local address (the IPv6 private range)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "a site-local address (the retired IPv6 private range)"),
        ("ff00::/8", "multicast"),
    )
)

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def address_text(ip: IPAddress) -> str:
    """An address as people write it: IPv4-mapped IPv6 with its IPv4 dotted (`::ffff:127.0.0.1`,
    where Python 3.11 writes `::ffff:7f00:1`)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return f"::ffff:{ip.ipv4_mapped}"
    return str(ip)


def why_not_public(ip: IPAddress) -> str | None:
    """Why a webhook must not be sent to `ip`, in words (completing "… is"), or None if it is a
    public internet address."""
    if isinstance(ip, ipaddress.IPv4Address):
        for network4, why in _V4_RANGES:
            if ip in network4:
                return why
        return None if ip.is_global else "not a public internet address"
    for network, why in _V6_RANGES:
        if ip in network:
            return why
    for embedded, kind in _embedded_ipv4(ip):
        inner = why_not_public(embedded)
        if inner is not None:
            return f"{kind} {embedded}, which is {inner}"
        if ip.ipv4_mapped is not None or ip in _IPV4_COMPATIBLE:
            # Never needed to reach a public host (write the IPv4 address itself), and a way
            # past filters that only read IPv4 (the issue: "IPv4-mapped ranges refused").
            return f"{kind} {embedded}; use the IPv4 address itself"
    return None if ip.is_global or _embedded_ipv4(ip) else "not a public internet address"


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[tuple[ipaddress.IPv4Address, str]]:
    """The IPv4 addresses an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo's
    server and client): the packet ends up there, so they are the ones to judge."""
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        return [(ip.ipv4_mapped, "an IPv4-mapped address of")]
    if ip in _IPV4_COMPATIBLE:
        return [(low32, "an IPv4-compatible address of")]
    if ip in _NAT64:
        return [(low32, "a NAT64 address of")]
    if ip.sixtofour is not None:
        return [(ip.sixtofour, "a 6to4 address of")]
    if ip.teredo is not None:
        server, client = ip.teredo
        return [(server, "a Teredo address through"), (client, "a Teredo address of")]
    return []


def _refusal(target: Target, ip: IPAddress, why: str) -> UnsafeWebhookUrl:
    if target.literal is not None:
        subject = f"the address {address_text(ip)} is"
    else:
        subject = f"{target.host} resolves to {address_text(ip)}, which is"
    return UnsafeWebhookUrl(f"{subject} {why}; {_PUBLIC}")


def resolve(target: Target, *, resolver: Resolver = socket.getaddrinfo) -> list[IPAddress]:
    """Every address the target's host stands for, in the resolver's order, without duplicates;
    an IP literal stands for itself (no resolution). Raises UnsafeWebhookUrl if the name does
    not resolve."""
    literal = target.literal
    if literal is not None:
        return [literal]
    try:
        infos = resolver(target.host, target.port, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeWebhookUrl(
            f"the name {target.host} does not resolve to an address ({_short(exc)})"
        ) from exc
    found: list[IPAddress] = []
    for info in infos:
        sockaddr = info[4]
        try:
            ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        except (ValueError, IndexError, TypeError):
            continue
        if ip not in found:
            found.append(ip)
    if not found:
        raise UnsafeWebhookUrl(f"the name {target.host} does not resolve to an address")
    if len(found) > MAX_ADDRESSES:
        raise UnsafeWebhookUrl(
            f"the name {target.host} resolves to more than {MAX_ADDRESSES} addresses"
        )
    return found


def public_addresses(
    target: Target, *, allow_private: bool, resolver: Resolver = socket.getaddrinfo
) -> list[IPAddress]:
    """Resolve the target's host once and return its addresses, refusing (UnsafeWebhookUrl) if
    ANY of them is not a public internet address: a name that answers one public and one private
    address is refused whole, so a retry never lands on the private one. With
    `allow_private` every address is returned unchecked (development and tests)."""
    if not allow_private and (target.host == "localhost" or target.host.endswith(".localhost")):
        # RFC 6761: always this machine, whatever a resolver says.
        raise UnsafeWebhookUrl(f"{target.host} is this machine; {_PUBLIC}")
    addresses = resolve(target, resolver=resolver)
    if allow_private:
        return addresses
    for ip in addresses:
        why = why_not_public(ip)
        if why is not None:
            raise _refusal(target, ip, why)
    return addresses


def check_registration(
    url: str, *, allow_private: bool, resolver: Resolver = socket.getaddrinfo
) -> str:
    """The check at registration (the endpoints API): syntax, then every address the host
    resolves to now. Returns the normalised URL to store. Sending checks again (the name may
    resolve elsewhere later)."""
    target = check_url(url)
    public_addresses(target, allow_private=allow_private, resolver=resolver)
    return target.url


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 80 else text[:77] + "…"
