"""What request and command code needs from the running app: its clock and the client address."""

from __future__ import annotations

from datetime import datetime

from flask import current_app, request


def now() -> datetime:
    """The app's clock (a FrozenClock in tests), never the wall clock directly."""
    return current_app.extensions["idp.clock"].now()


def client_ip() -> str:
    """The caller's address; ProxyFix has already applied IDP_TRUSTED_PROXIES."""
    return (request.remote_addr or "")[:45]
