"""Registering relying parties: validation of their URIs, and secrets shown once, stored hashed."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select

from directory import audit
from directory.db import db
from directory.models import App
from directory.sessions import digest
from idp.oidc.models import API_SCOPES, OAuthClient

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")


class ClientError(ValueError):
    """The registration is refused; the message names the field. Nothing was stored."""


@dataclass
class Registration:
    name: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    backchannel_logout_uri: str | None = None
    frontchannel_logout_uri: str | None = None
    public: bool = False
    grant_types: list[str] = field(default_factory=lambda: ["authorization_code", "refresh_token"])
    id_token_alg: str = "RS256"
    trusted: bool = False
    scopes: list[str] = field(default_factory=list)  # API_SCOPES its client_credentials tokens may carry


def _check_uri(uri: str, what: str) -> str:
    """Absolute, no fragment, HTTPS unless the host is this machine (development)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment or len(uri) > 2000:
        raise ClientError(f"{what} {uri!r} must be an absolute http(s) URL without a fragment")
    if parts.scheme == "http" and parts.netloc.rsplit(":", 1)[0] not in LOCAL_HOSTS:
        raise ClientError(f"{what} {uri!r} must use https (http is allowed only for localhost)")
    if any(ch.isspace() or ch == "\\" for ch in uri):
        raise ClientError(f"{what} {uri!r} contains spaces or backslashes")
    return uri


def register(spec: Registration, *, now: datetime, actor_label: str = "cli") -> tuple[OAuthClient, str | None]:
    """Create the app and its client; returns the client and its secret (None when public)."""
    name = spec.name.strip()
    if not name or len(name) > 200:
        raise ClientError("name must be 1 to 200 characters")
    unknown = set(spec.grant_types) - set(GRANT_TYPES)
    if unknown or not spec.grant_types:
        raise ClientError(f"grant types must be among {', '.join(GRANT_TYPES)}")
    if spec.public and "client_credentials" in spec.grant_types:
        raise ClientError("a public client cannot use client_credentials")
    if "authorization_code" in spec.grant_types and not spec.redirect_uris:
        raise ClientError("at least one redirect URI is needed for the authorization code grant")
    if set(spec.scopes) - set(API_SCOPES):
        raise ClientError(f"scopes must be among {', '.join(API_SCOPES)}")
    if spec.scopes and spec.grant_types != ["client_credentials"]:
        raise ClientError("API scopes are for services: use them with the client_credentials grant alone")
    if spec.id_token_alg not in ("RS256", "ES256"):
        raise ClientError("the ID token algorithm must be RS256 or ES256")
    redirect_uris = [_check_uri(uri, "redirect URI") for uri in spec.redirect_uris]
    post_logout = [_check_uri(uri, "post-logout redirect URI") for uri in spec.post_logout_redirect_uris]
    back = spec.backchannel_logout_uri and _check_uri(spec.backchannel_logout_uri, "back-channel logout URI")
    front = spec.frontchannel_logout_uri and _check_uri(spec.frontchannel_logout_uri, "front-channel logout URI")
    app = App(
        name=name, protocol="oidc", created_at=now, trusted=spec.trusted,
        backchannel_logout=bool(back), frontchannel_logout=bool(front),
    )
    secret = None if spec.public else secrets.token_urlsafe(32)
    client = OAuthClient(
        app=app,
        client_id=secrets.token_urlsafe(18),
        secret_hash=digest(secret) if secret else None,
        redirect_uris=redirect_uris,
        post_logout_redirect_uris=post_logout,
        backchannel_logout_uri=back or None,
        frontchannel_logout_uri=front or None,
        grant_types=list(spec.grant_types),
        id_token_signed_response_alg=spec.id_token_alg,
        scope=" ".join(sorted(set(spec.scopes))),
    )
    db.session.add(client)
    audit.record(
        "app.registered", now=now, actor_label=actor_label, target=name, protocol="oidc", client_id=client.client_id,
        **({"scope": client.scope} if client.scope else {}),
    )
    db.session.commit()
    return client, secret


def find(client_id: str) -> OAuthClient | None:
    return db.session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))
