"""Where and on what a session was signed in: a place from its IP address, a device from its
user agent, as the session lists show them.

The place comes from an offline GeoLite2 City database shipped as a package
(`maxminddb-geolite2`), or from the MaxMind database `IDP_GEOIP_DATABASE` names; private,
loopback and link-local addresses read "Private network". The device comes from ua-parser's
maintained rules. Both are cached: a list shows the same few values many times.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

import maxminddb
from flask import current_app
from ua_parser import parse

PRIVATE = "Private network"
UNKNOWN_PLACE = "Unknown location"
UNKNOWN_DEVICE = "Unknown device"


def location(ip: str) -> str:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return UNKNOWN_PLACE
    if address.is_private or address.is_loopback or address.is_link_local or address.is_reserved:
        return PRIVATE
    return _place(_reader(current_app.config.get("GEOIP_DATABASE")), str(address))


@lru_cache(maxsize=4)
def _reader(path: str | None):
    if path:
        return maxminddb.open_database(path)
    from geolite2 import geolite2

    return geolite2.reader()


@lru_cache(maxsize=4096)
def _place(reader, ip: str) -> str:
    try:
        found = reader.get(ip) or {}
    except ValueError:
        return UNKNOWN_PLACE
    city = found.get("city", {}).get("names", {}).get("en")
    country = found.get("country", {}).get("names", {}).get("en")
    return ", ".join(part for part in (city, country) if part) or UNKNOWN_PLACE


@lru_cache(maxsize=4096)
def device(user_agent: str) -> str:
    """"Firefox 133 on Windows", "Safari on iOS"; "Unknown device" when nothing is recognised."""
    parsed = parse(user_agent or "")
    browser = parsed.user_agent
    system = parsed.os
    name = " ".join(part for part in (browser.family, browser.major) if part) if browser and browser.family != "Other" else ""
    platform = system.family if system and system.family != "Other" else ""
    if name and platform:
        return f"{name} on {platform}"
    return name or platform or UNKNOWN_DEVICE
