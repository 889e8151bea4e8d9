"""The addresses a datacenter hands out to new servers: CIDR blocks, dash ranges and single addresses.

Its own module because both the catalogue (which loads the pools) and the free-address table
(``address_stock.py``, which a new server takes its address from) need it. A pool holds at most
``MAX_POOL_SIZE`` addresses: every one of them is a row of that table.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Addresses one datacenter's pool may hold: each is a row of the free-address table while it is free
# (an IPv4 /12; an IPv6 pool is written as the ranges actually handed out, not a whole /64).
MAX_POOL_SIZE = 2 ** 20


def _parse_span(text: str) -> tuple[IpAddress, IpAddress]:
    text = text.strip()
    try:
        if "/" in text:
            network = ipaddress.ip_network(text, strict=True)
            if network.num_addresses <= 2:
                return network[0], network[-1]
            # IPv4: no network or broadcast address; IPv6: no subnet-router anycast address.
            last = network[-2] if network.version == 4 else network[-1]
            return network[1], last
        if "-" in text:
            first_text, last_text = (part.strip() for part in text.split("-", 1))
            first, last = ipaddress.ip_address(first_text), ipaddress.ip_address(last_text)
            if first.version != last.version or first > last:
                raise ValueError("a range runs from a lower to a higher address of one IP version")
            return first, last
        address = ipaddress.ip_address(text)
        return address, address
    except ValueError as error:
        raise ValueError(f"{text!r} is not an address, CIDR block or dash range: {error}") from None


class IpPool:
    """The addresses a datacenter hands out: CIDR blocks, dash ranges (``a-b``) and single addresses."""

    def __init__(self, ranges: Iterable[str], datacenter: str = ""):
        self.ranges = tuple(ranges)
        self.datacenter = datacenter
        self._spans = sorted((_parse_span(text) for text in self.ranges), key=lambda s: (s[0].version, s[0]))
        for (_, previous_last), (first, _) in zip(self._spans, self._spans[1:]):
            if first.version == previous_last.version and first <= previous_last:
                raise ValueError(f"pool {datacenter or '?'}: ranges overlap at {first}")
        if self.size > MAX_POOL_SIZE:
            raise ValueError(f"pool {datacenter or '?'} holds {self.size} addresses, more than {MAX_POOL_SIZE}")

    def __repr__(self) -> str:
        return f"IpPool({list(self.ranges)!r}, datacenter={self.datacenter!r})"

    def __contains__(self, address) -> bool:
        try:
            address = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(first.version == address.version and first <= address <= last for first, last in self._spans)

    @property
    def size(self) -> int:
        return sum(int(last) - int(first) + 1 for first, last in self._spans)

    def overlaps(self, other: IpPool) -> bool:
        """Whether the two pools share an address (two datacenters must not)."""
        return any(a.version == c.version and a <= d and c <= b
                   for a, b in self._spans for c, d in other._spans)

    def addresses(self) -> Iterator[str]:
        """Every address of the pool, lowest first, as the free-address table keeps them."""
        for first, last in self._spans:
            for number in range(int(first), int(last) + 1):
                yield str(type(first)(number))
