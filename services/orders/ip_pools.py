"""The addresses a datacenter hands out to new servers: CIDR blocks, dash ranges and single addresses.

Its own module because both the catalogue (which loads the pools) and the order rules (which
place a new server) need it.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from services.common.errors import DomainError

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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

    def first_free(self, used: Iterable[str]) -> str:
        """The lowest address of the pool not in ``used``; out_of_stock (422) when none is left."""
        return next(self._free(used), None) or self._exhausted()

    def _exhausted(self):
        raise DomainError("out_of_stock", "No IP address is left for a new server in this datacenter.",
                          details={"datacenter": self.datacenter})

    def _free(self, used: Iterable[str]):
        """The free addresses, lowest first."""
        taken = set()
        for address in used:
            try:
                taken.add(ipaddress.ip_address(address))
            except ValueError:
                continue  # not an address, so it cannot be one of ours
        for first, last in self._spans:
            inside = {int(a) for a in taken if a.version == first.version and first <= a <= last}
            candidate = int(first)
            while candidate <= int(last):
                if candidate not in inside:
                    yield str(type(first)(candidate))
                candidate += 1

    def free_count(self, used: Iterable[str]) -> int:
        """How many addresses are still free."""
        return self.size - sum(1 for address in set(used) if address in self)
