"""Which outbound addresses Chat4All may call (webhook URLs): the SSRF rules, without I/O.

Public unicast addresses are allowed. Loopback, private, link-local, shared (CGNAT), reserved,
multicast, unspecified and the cloud metadata endpoints are refused unless the policy allows
them: ``allow_private`` allows every non-public address except the metadata endpoints, and
``allowed_networks`` allows exactly the networks listed (nothing by default, in every profile).

IPv6 forms that carry an IPv4 address are judged by that address too: IPv4-mapped
(``::ffff:a.b.c.d``), 6to4 (``2002::/16``), Teredo (``2001::/32``, its server and client) and
NAT64 (``64:ff9b::/96``, ``64:ff9b:1::/48``). A gateway would forward them to the IPv4 address,
so ``2002:7f00:1::`` is loopback however public its IPv6 prefix looks.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from chat4all.domain.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# instance metadata services (AWS, GCP, Azure, OpenStack, ...; AWS's IPv6 endpoint; Alibaba)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
NAT64_NETWORKS = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
SCHEMES = ("http", "https")
MAX_URL_LENGTH = 2048


class UrlNotAllowed(InvalidInput):
    """The URL is well formed but points somewhere Chat4All must not call (SSRF protection)."""

    code = "url_not_allowed"


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    allow_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, *, allow_private: bool, allowed_networks: str | Iterable[str] = ()) -> EgressPolicy:
        """``allowed_networks``: CIDRs, as a comma-separated string or a list. ValueError if bad."""
        items = allowed_networks.split(",") if isinstance(allowed_networks, str) else allowed_networks
        networks = tuple(ipaddress.ip_network(n.strip(), strict=False) for n in items if n.strip())
        return cls(allow_private=allow_private, allowed_networks=networks)

    def refusal(self, address: IPAddress) -> str | None:
        """None when ``address`` may be called, else why not (e.g. "loopback")."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self.allowed_networks):
            return None
        if isinstance(address, ipaddress.IPv6Address):
            for form, embedded in embedded_ipv4(address):
                why = self.refusal(embedded)
                if why is not None:
                    return f"{why} ({form})"
        if any(address in network for network in self.allowed_networks):
            return None
        kind = address_kind(address)
        if kind is None:
            return None
        if self.allow_private and kind != "metadata":
            return None
        return kind


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 address carries, with the name of the form."""
    found: list[tuple[str, ipaddress.IPv4Address]] = []
    if address.sixtofour is not None:
        found.append(("6to4", address.sixtofour))
    if address.teredo is not None:
        server, client = address.teredo
        found += [("teredo", server), ("teredo", client)]
    if any(address in network for network in NAT64_NETWORKS):
        found.append(("nat64", ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)))
    return found


def address_kind(address: IPAddress) -> str | None:
    """The kind of non-public address this is, or None for a public unicast address."""
    if address in METADATA_ADDRESSES:
        return "metadata"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified:
        return "unspecified"
    if isinstance(address, ipaddress.IPv4Address) and address in ipaddress.ip_network("100.64.0.0/10"):
        return "shared"  # carrier-grade NAT
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "reserved"
    return None


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL, split into what a connection needs."""

    url: str
    scheme: str
    host: str  # a name, or an IP address without brackets
    port: int
    target: str  # path and query, as sent in the request line


def parse_url(url: str) -> Target:
    """InvalidInput unless ``url`` is an absolute http(s) URL with a host and no credentials."""
    url = url.strip()
    if not url or len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"the URL must be 1-{MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"not a valid URL: {exc}") from None
    if parts.scheme.lower() not in SCHEMES:
        raise InvalidInput("the URL must start with http:// or https://")
    if not parts.hostname:
        raise InvalidInput("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("credentials in the URL are not supported; verify the signature instead")
    if parts.fragment:
        raise InvalidInput("the URL must not have a #fragment")
    scheme = parts.scheme.lower()
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default_port = 443 if scheme == "https" else 80
    return Target(url=url, scheme=scheme, host=parts.hostname, port=port or default_port, target=target)


def literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None
