"""The directory's tables. Rows are data: the rules live in policy.py, the writers beside it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from directory import policy
from directory.db import db


class Role(db.Model):
    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(200), default="")
    builtin: Mapped[bool] = mapped_column(default=False)
    grants: Mapped[list[RolePermission]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def permissions(self) -> frozenset[str]:
        return frozenset(grant.permission for grant in self.grants)


class RolePermission(db.Model):
    __tablename__ = "role_permissions"

    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True)
    permission: Mapped[str] = mapped_column(String(64), primary_key=True)


class User(db.Model):
    """A person who signs in at the portal. `username` is stored case-folded, so it is unique
    regardless of case."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    email: Mapped[str] = mapped_column(String(254), default="")
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id"))
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]
    # Written first by every sign-in: the write is also the per-user lock that keeps racing
    # sign-ins from exceeding the session limit (see sessions.open).
    last_sign_in_at: Mapped[datetime | None]

    role: Mapped[Role] = relationship(lazy="joined")

    def can(self, permission: str) -> bool:
        return permission in self.role.permissions


class DirectorySettings(db.Model):
    """The single row of admin-set session settings (id 1); absent means all defaults."""

    __tablename__ = "directory_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    inactivity_seconds: Mapped[int | None]
    absolute_seconds: Mapped[int]
    persistent_login: Mapped[bool]
    max_sessions: Mapped[int | None]
    on_limit: Mapped[str] = mapped_column(String(16))
    signout_url: Mapped[str | None] = mapped_column(String(2000))
    retention_seconds: Mapped[int]
    signout_apps_on_expiry: Mapped[bool] = mapped_column(default=False)
    audit_retention_seconds: Mapped[int] = mapped_column(default=365 * 86400)
    updated_at: Mapped[datetime]


class DirectorySession(db.Model):
    """A signed-in browser. The cookie's token is never stored, only its SHA-256.

    The lifetime in force at sign-in is captured on the row, so later settings changes do not
    move existing deadlines unless an admin applies them explicitly.
    """

    __tablename__ = "directory_sessions"
    __table_args__ = (
        Index("ix_directory_sessions_user_live", "user_id", "ended_at"),
        Index("ix_directory_sessions_due", "ended_at", "expires_at"),
        # The session lists: newest activity first, whole or by end reason (directory/listing.py).
        Index("ix_directory_sessions_activity", "last_activity_at", "id"),
        Index("ix_directory_sessions_reason", "end_reason", "last_activity_at"),
        Index("ix_directory_sessions_user_activity", "user_id", "last_activity_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime]  # the sign-in instant; the absolute timeout counts from it
    authenticated_at: Mapped[datetime]  # the last password entry: OIDC auth_time, SAML AuthnInstant
    last_activity_at: Mapped[datetime]
    inactivity_seconds: Mapped[int | None]
    absolute_seconds: Mapped[int]
    # The earlier deadline, kept in step with the three columns above so sweeps and lists
    # can find expired sessions through an index.
    expires_at: Mapped[datetime]
    persistent: Mapped[bool] = mapped_column(default=False)
    expiry_signs_out_apps: Mapped[bool] = mapped_column(default=False)  # captured like the timeouts
    auth_method: Mapped[str] = mapped_column(String(16), default="pwd")
    ip_address: Mapped[str] = mapped_column(String(45), default="")
    user_agent: Mapped[str] = mapped_column(String(512), default="")
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(32))
    ended_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    user: Mapped[User] = relationship(foreign_keys=[user_id], lazy="joined")

    @property
    def lifetime(self) -> policy.Lifetime:
        inactivity = None if self.inactivity_seconds is None else timedelta(seconds=self.inactivity_seconds)
        return policy.Lifetime(inactivity=inactivity, absolute=timedelta(seconds=self.absolute_seconds))

    @property
    def idle_deadline(self) -> datetime | None:
        return policy.idle_deadline(self.last_activity_at, self.lifetime)

    @property
    def absolute_deadline(self) -> datetime:
        return policy.absolute_deadline(self.created_at, self.lifetime)

    @property
    def expiry(self) -> tuple[datetime, policy.EndReason]:
        """The deadline that ends this session unless activity moves it, and its reason."""
        return policy.expiry(self.created_at, self.last_activity_at, self.lifetime)

    def outcome(self, now: datetime) -> tuple[datetime | None, str | None]:
        """When and why the session ended, as of `now`: an expiry not yet recorded by a
        request or a sweep counts too. (None, None) while it is alive."""
        if self.ended_at is not None:
            return self.ended_at, self.end_reason
        deadline, reason = self.expiry
        return (deadline, reason.value) if now >= deadline else (None, None)


class AuditEvent(db.Model):
    """Who did what to whom, when and from where. Names are copied so the trail outlives rows."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(150))
    target_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    target: Mapped[str] = mapped_column(String(200), default="")
    ip_address: Mapped[str] = mapped_column(String(45), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class App(db.Model):
    """A relying application, whatever its protocol: what the directory needs to know to
    sign people in to it and to sign them out of it."""

    __tablename__ = "apps"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    protocol: Mapped[str] = mapped_column(String(8))  # "oidc" or "saml"
    created_at: Mapped[datetime]
    trusted: Mapped[bool] = mapped_column(default=False)  # no consent screen
    single_logout: Mapped[bool] = mapped_column(default=True)
    # Logout channels the app offers: "back" (server to server), "front" (through the browser).
    backchannel_logout: Mapped[bool] = mapped_column(default=False)
    frontchannel_logout: Mapped[bool] = mapped_column(default=False)
    # Its own session's limits, which govern its refresh tokens, not the directory session's.
    session_idle_seconds: Mapped[int] = mapped_column(default=7 * 86400)
    session_max_seconds: Mapped[int] = mapped_column(default=30 * 86400)


class AppSession(db.Model):
    """One application's own session, opened by its first sign-in within a directory session.

    Holds what that application needs at logout: the subject and `sid` (OIDC) or SessionIndex
    (SAML), a random value never derived from the directory session's token or id. It lives
    to its own limits; the directory session ending ends it only through Single Logout.
    """

    __tablename__ = "app_sessions"
    __table_args__ = (
        Index("ix_app_sessions_directory_session", "directory_session_id", "ended_at"),
        Index("ix_app_sessions_app", "app_id", "directory_session_id"),  # sessions lists filtered by app
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    directory_session_id: Mapped[int | None] = mapped_column(
        ForeignKey("directory_sessions.id", ondelete="SET NULL")
    )
    sid: Mapped[str] = mapped_column(String(64), unique=True)
    subject: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime]
    idle_seconds: Mapped[int]
    max_seconds: Mapped[int]
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(32))

    app: Mapped[App] = relationship(lazy="joined")
    user: Mapped[User] = relationship(lazy="joined")

    @property
    def lifetime(self) -> policy.Lifetime:
        return policy.Lifetime(inactivity=timedelta(seconds=self.idle_seconds), absolute=timedelta(seconds=self.max_seconds))


class LogoutDelivery(db.Model):
    """The outbox: one notice to one application that one of its sessions has ended.

    Written in the transaction that ends the directory session, so a crash loses none; a
    worker claims due rows with a lease, so two workers never send the same row at once.
    """

    __tablename__ = "logout_deliveries"
    __table_args__ = (Index("ix_logout_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    app_session_id: Mapped[int] = mapped_column(ForeignKey("app_sessions.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(8))  # "back" or "front"
    status: Mapped[str] = mapped_column(String(8), default="pending")  # pending, sent, failed
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(String(500), default="")

    app_session: Mapped[AppSession] = relationship(lazy="joined")
