"""Which network addresses a fetch made for someone outside must not reach.

The detector fetches from URLs that arrive from outside: model packages named in the twin and,
when enabled, images for the Custom Vision url routes. Both refuse the addresses where cloud
metadata and platform services answer (a classic way to turn a fetch against its host); this is
the one place that says which those are.
"""

from __future__ import annotations

import ipaddress

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Azure's wireserver (platform metadata and agent traffic): not link-local, but it answers on
#: every Azure VM.
PLATFORM_ADDRESSES = frozenset({ipaddress.ip_address("168.63.129.16")})


def ip_of(address: str) -> IpAddress:
    """The address as an IP, its IPv6 scope dropped and an IPv4-mapped address unwrapped;
    ValueError when ``address`` is a host name."""
    ip = ipaddress.ip_address(address.split("%")[0])  # fe80::1%eth0 carries a scope
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_metadata(ip: IpAddress) -> bool:
    """Link-local (169.254.0.0/16, fe80::/10: cloud metadata services) or a platform address."""
    return ip.is_link_local or ip in PLATFORM_ADDRESSES
