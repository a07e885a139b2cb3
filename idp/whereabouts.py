"""Where and on what a session was signed in: a place from its IP address, a device from its
user agent, as the session lists show them.

The place comes from an offline GeoLite2 City database shipped as a package
(`maxminddb-geolite2`), or from the MaxMind database `IDP_GEOIP_DATABASE` names; private,
loopback and link-local addresses read "Private network". The device comes from ua-parser's
maintained rules. Both are cached: a list shows the same few values many times.

`listed` turns a page of sessions into the rows the admin and self-service pages show, so the
two pages describe a session in the same words.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import maxminddb
from flask import current_app
from sqlalchemy import select
from ua_parser import parse

from directory.db import db
from directory.models import App, DirectorySession, User
from directory.policy import EndReason

PRIVATE = "Private network"
UNKNOWN_PLACE = "Unknown location"
UNKNOWN_DEVICE = "Unknown device"
_REASON_WORDS = {
    "idle_timeout": "Inactivity timeout",
    "absolute_timeout": "Time limit reached",
    "signed_out": "Signed out",
    "session_limit": "Session limit reached",
    "replaced": "Signed in again",
    "ended_by_user": "Ended by the user",
    "ended_by_admin": "Ended by an administrator",
    "password_changed": "Password changed",
    "user_disabled": "User disabled",
}
# Every end reason, in words (a reason added later reads as its name until it gets some).
REASONS = {reason.value: _REASON_WORDS.get(reason.value, reason.value.replace("_", " ").capitalize()) for reason in EndReason}


@dataclass(frozen=True)
class Listed:
    """One session as a list shows it. Status is as of the page's `now`: a session past its
    deadline reads ended (with its expiry reason) even before a sweep records it."""

    session: DirectorySession
    user: str
    role: str
    location: str
    device: str
    active: bool
    ended_at: datetime | None
    end_reason: str | None  # in words
    ended_by: str | None  # who ended it, when a person did
    apps: list[str]


def listed(rows: list[DirectorySession], apps: dict[int, list[App]], *, now: datetime) -> list[Listed]:
    """`rows` ready to show; `apps` as `listing.apps_of` gives them. One query for the enders' names."""
    enders = {row.ended_by_id for row in rows if row.ended_by_id is not None}
    found = db.session.execute(select(User.id, User.display_name, User.username).where(User.id.in_(enders))) if enders else []
    names = {user_id: display_name or username for user_id, display_name, username in found}
    shown = []
    for row in rows:
        ended_at, reason = row.outcome(now)
        shown.append(Listed(
            session=row,
            user=row.user.display_name or row.user.username,
            role=row.user.role.name,
            location=location(row.ip_address),
            device=device(row.user_agent),
            active=ended_at is None,
            ended_at=ended_at,
            end_reason=REASONS.get(reason, reason) if reason else None,
            ended_by=names.get(row.ended_by_id),
            apps=[app.name for app in apps.get(row.id, [])],
        ))
    return shown


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
