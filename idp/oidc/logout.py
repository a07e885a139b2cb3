"""OpenID Connect Back-Channel Logout 1.0: the logout token and the request that carries it.

Built afresh for every attempt (a new `jti` each time, `exp` two minutes after `iat`), so a
retried notice is never a replay of an old token.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from urllib.parse import urlencode

from flask import current_app
from joserfc import jwt
from sqlalchemy import select

from directory.db import db
from directory.models import LogoutDelivery
from idp import keys
from idp.delivery import Outgoing
from idp.oidc.models import OAuthClient

EVENT = "http://schemas.openid.net/event/backchannel-logout"
TOKEN_LIFETIME = timedelta(minutes=2)


def logout_token(client: OAuthClient, *, subject: str, sid: str, now: datetime) -> str:
    ring = keys.current(current_app)
    alg = client.id_token_signed_response_alg
    issued = int(now.timestamp())
    claims = {
        "iss": current_app.config["ISSUER"],
        "aud": client.client_id,
        "iat": issued,
        "exp": issued + int(TOKEN_LIFETIME.total_seconds()),
        "jti": secrets.token_urlsafe(16),
        "sub": subject,
        "sid": sid,
        "events": {EVENT: {}},
    }
    header = {"alg": alg, "kid": ring.kid(alg), "typ": "logout+jwt"}
    return jwt.encode(header, claims, ring.signing_key(alg), [alg])


def build(delivery: LogoutDelivery, *, now: datetime) -> Outgoing | None:
    """The POST for one back-channel notice; None if the app no longer has an endpoint."""
    app_session = delivery.app_session
    client = db.session.scalar(select(OAuthClient).where(OAuthClient.app_id == app_session.app_id))
    if client is None or not client.backchannel_logout_uri:
        return None
    token = logout_token(client, subject=app_session.subject, sid=app_session.sid, now=now)
    return Outgoing(url=client.backchannel_logout_uri, data={"logout_token": token})


def front_url(delivery: LogoutDelivery) -> str | None:
    """Front-Channel Logout 1.0: the iframe address, with `iss` and `sid` so the app can tell
    which of its sessions ends."""
    app_session = delivery.app_session
    client = db.session.scalar(select(OAuthClient).where(OAuthClient.app_id == app_session.app_id))
    if client is None or not client.frontchannel_logout_uri:
        return None
    query = urlencode({"iss": current_app.config["ISSUER"], "sid": app_session.sid})
    separator = "&" if "?" in client.frontchannel_logout_uri else "?"
    return f"{client.frontchannel_logout_uri}{separator}{query}"
