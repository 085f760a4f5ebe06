"""The trust rule for reverse proxies, decided once and used for every request.

The TCP peer decides. Only when the peer is a trusted proxy are its forwarded headers believed,
and then only as far back as trusted hops go: ``X-Forwarded-For`` is read from the right (the
address the trusted peer itself added) and the first address that is not a trusted proxy is the
client. A peer that is not trusted is the client, whatever headers it sends.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ProxyTrust:
    networks: tuple[Network, ...]

    @classmethod
    def of(cls, values: Iterable[str]) -> ProxyTrust:
        """Settings validated every value: each is an address or a CIDR network."""
        return cls(tuple(ipaddress.ip_network(v, strict=False) for v in values))

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip().strip("[]"))
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def client(self, peer: str, forwarded_for: Sequence[str]) -> str:
        """The client's address, from the TCP peer and every ``X-Forwarded-For`` header."""
        if not self.trusts(peer):
            return peer
        hops = [h.strip() for header in forwarded_for for h in header.split(",") if h.strip()]
        client = peer
        for hop in reversed(hops):
            client = hop
            if not self.trusts(hop):
                break
        return client

    def scheme(self, peer: str, scheme: str, forwarded_proto: str | None) -> str:
        """``https`` when a trusted proxy says the client came over HTTPS."""
        if forwarded_proto and self.trusts(peer):
            proto = forwarded_proto.split(",")[-1].strip().lower()
            if proto in ("http", "https"):
                return proto
        return scheme
