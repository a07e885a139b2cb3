"""OAuth/OIDC rows in authlib's shapes: clients, authorization codes, tokens.

Client secrets, codes and tokens are high-entropy, so only their SHA-256 is stored (a slow
hash would cost the token endpoint tens of milliseconds for no gain).
"""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from directory import policy
from directory.accounts import PERMISSIONS
from directory.db import db
from directory.models import App, AppSession, User
from directory.sessions import digest
from idp import context

SCOPES = ("openid", "profile", "email", "offline_access")
API_SCOPES = PERMISSIONS  # what a client_credentials token may carry for /api/v1, if the client was registered with it
CODE_LIFETIME = timedelta(seconds=60)


class OAuthClient(db.Model):
    """An OIDC relying party: the protocol half of an `App`."""

    __tablename__ = "oauth_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), unique=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str | None] = mapped_column(String(64))  # None: a public client
    redirect_uris: Mapped[list[str]] = mapped_column(JSON)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(2000))
    frontchannel_logout_uri: Mapped[str | None] = mapped_column(String(2000))
    grant_types: Mapped[list[str]] = mapped_column(JSON)
    id_token_signed_response_alg: Mapped[str] = mapped_column(String(8), default="RS256")
    scope: Mapped[str] = mapped_column(String(500), default="")  # API_SCOPES its client_credentials tokens may carry

    app: Mapped[App] = relationship(lazy="joined")

    @property
    def is_public(self) -> bool:
        return self.secret_hash is None

    # authlib's ClientMixin
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str) -> str:
        allowed = (*SCOPES, *self.scope.split())  # OIDC scopes, and the API scopes it was registered with
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris  # exact match, never a prefix

    def check_client_secret(self, client_secret: str) -> bool:
        return self.secret_hash is not None and hmac.compare_digest(digest(client_secret), self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.is_public:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


class AuthorizationCode(db.Model):
    __tablename__ = "oauth_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_clients.client_id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    app_session_id: Mapped[int] = mapped_column(ForeignKey("app_sessions.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(String(2000))
    scope: Mapped[str] = mapped_column(String(500))
    nonce: Mapped[str | None] = mapped_column(String(255))
    auth_time: Mapped[datetime]
    issued_at: Mapped[datetime]  # codes expire from here, not from auth_time (SSO can be hours old)
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(String(8))
    redeemed_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(lazy="joined")
    app_session: Mapped[AppSession] = relationship(lazy="joined")

    def is_expired(self) -> bool:
        return context.now() >= self.issued_at + CODE_LIFETIME

    # authlib's AuthorizationCodeMixin (OIDC flavour)
    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return int(self.auth_time.timestamp())

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> list[str]:
        return ["pwd"]


class Token(db.Model):
    """An access token and, usually, its refresh token. Valid only while its application
    session is: Single Logout or refresh-token replay ends them all at once."""

    __tablename__ = "oauth_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_clients.client_id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    app_session_id: Mapped[int | None] = mapped_column(ForeignKey("app_sessions.id", ondelete="CASCADE"), index=True)
    code_id: Mapped[int | None] = mapped_column(ForeignKey("oauth_codes.id", ondelete="SET NULL"), index=True)
    access_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    refresh_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(500), default="")
    issued_at: Mapped[datetime]
    expires_in: Mapped[int]
    revoked_at: Mapped[datetime | None]
    refresh_used_at: Mapped[datetime | None]  # rotation: a refresh token works once

    user: Mapped[User | None] = relationship(lazy="joined")
    app_session: Mapped[AppSession | None] = relationship(lazy="joined")

    def session_alive(self, now: datetime) -> bool:
        """Whether the application session this token belongs to still lives, by its own rules."""
        app_session = self.app_session
        if app_session is None:
            return True  # client credentials: no person, no session
        if app_session.ended_at is not None:
            return False
        return policy.evaluate(app_session.created_at, app_session.last_used_at, app_session.lifetime, now) is None

    # authlib's TokenMixin
    def check_client(self, client: OAuthClient) -> bool:
        return self.client_id == client.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def get_user(self) -> User | None:
        return self.user

    def is_expired(self) -> bool:
        return context.now() >= self.issued_at + timedelta(seconds=self.expires_in)

    def is_revoked(self) -> bool:
        return self.revoked_at is not None or not self.session_alive(context.now())


class Consent(db.Model):
    """A person's standing permission for an untrusted app to receive these scopes."""

    __tablename__ = "oauth_consents"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_clients.client_id", ondelete="CASCADE"), primary_key=True)
    scope: Mapped[str] = mapped_column(String(500))
    granted_at: Mapped[datetime]

    def covers(self, scope: str) -> bool:
        return set(scope.split()) <= set(self.scope.split())
