"""The only writer of directory sessions: open, check, touch, end, sweep.

Every way a session ends (sign-out, expiry, the session limit, an admin, a password change)
goes through `_end`, so each ending is recorded once with its reason and actor, and later
Single Logout has one place to hook in.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import joinedload

from directory import audit, logout, policy
from directory.db import db
from directory.models import App, DirectorySession, Role, User
from directory.policy import EndReason

if TYPE_CHECKING:
    from directory.settings import SessionSettings

_SWEEP_BATCH = 500


def digest(token: str) -> str:
    """What is stored for a cookie token: tokens carry 256 random bits, so SHA-256 suffices."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Opened:
    session: DirectorySession
    token: str  # goes into the cookie and nowhere else
    evicted: tuple[DirectorySession, ...]


@dataclass(frozen=True)
class Refused:
    """The session limit is reached and the policy is to refuse (or, with `disabled`, the
    account was disabled while its password was being checked); nothing was written."""

    active: list[DirectorySession]
    disabled: bool = False


def _live(now: datetime):
    return select(DirectorySession).where(
        DirectorySession.ended_at.is_(None), DirectorySession.expires_at > now
    )


def live_for_user(user: User, *, now: datetime) -> list[DirectorySession]:
    """The user's sessions alive at `now`, oldest first."""
    query = _live(now).where(DirectorySession.user_id == user.id)
    return list(db.session.scalars(query.order_by(DirectorySession.created_at, DirectorySession.id)))


def open(
    user: User,
    settings: SessionSettings,
    *,
    now: datetime,
    persistent: bool = False,
    ip: str = "",
    user_agent: str = "",
    replacing: DirectorySession | None = None,
) -> Opened | Refused:
    """Sign `user` in: apply the session limit and insert the session, in one transaction.

    The first statement writes the user's row. On PostgreSQL that takes the row lock, on
    SQLite the database write lock, so racing sign-ins of one user queue here and each counts
    the sessions the other committed: the limit holds under concurrency.
    """
    # Conditional: an account disabled after its password was checked gets no session.
    if db.session.execute(update(User).where(User.id == user.id, User.disabled.is_(False)).values(last_sign_in_at=now)).rowcount != 1:
        db.session.rollback()
        return Refused([], disabled=True)
    if replacing is not None:
        _end(replacing, EndReason.REPLACED, now=now, actor=user)
    active = live_for_user(user, now=now)
    admission = policy.admit(active, settings.max_sessions, settings.on_limit)
    if not admission.allowed:
        db.session.rollback()
        audit.record("signin.refused", now=now, actor=user, target_user=user, ip=ip, reason="session_limit")
        db.session.commit()
        return Refused(active)
    for old in admission.evict:
        _end(old, EndReason.SESSION_LIMIT, now=now)
    token = secrets.token_urlsafe(32)
    lifetime = settings.lifetime
    session = DirectorySession(
        token_hash=digest(token),
        user=user,
        created_at=now,
        authenticated_at=now,
        last_activity_at=now,
        inactivity_seconds=_seconds(lifetime.inactivity),
        absolute_seconds=_seconds(lifetime.absolute),
        expires_at=policy.expiry(now, now, lifetime)[0],
        persistent=persistent and settings.persistent_login,
        expiry_signs_out_apps=settings.signout_apps_on_expiry,
        ip_address=ip,
        user_agent=user_agent[:512],
    )
    db.session.add(session)
    db.session.flush()
    audit.record(
        "signin.success", now=now, actor=user, target_user=user, ip=ip,
        target=f"session {session.id}", persistent=session.persistent,
    )
    db.session.commit()
    return Opened(session, token, admission.evict)


def _seconds(value) -> int | None:
    return None if value is None else int(value.total_seconds())


#: Built once: constructing the statement with its eager loads costs more than running it.
#: Every request needs the user's permissions, so they come in the same round trip.
_BY_TOKEN_HASH = (
    select(DirectorySession)
    .where(DirectorySession.token_hash == bindparam("token_hash"))
    .options(joinedload(DirectorySession.user).joinedload(User.role).joinedload(Role.grants))
)


def find(token: str) -> DirectorySession | None:
    """The session a cookie token names, ended or not; None for a token never issued."""
    return db.session.scalars(_BY_TOKEN_HASH, {"token_hash": digest(token)}).unique().one_or_none()


def check(session: DirectorySession, *, now: datetime) -> EndReason | None:
    """None while the session is alive, else why it ended (recording an expiry it just noticed)."""
    if session.ended_at is None:
        deadline, reason = session.expiry
        if now < deadline:
            return None
        _end(session, reason, now=now)
        db.session.commit()
    return EndReason(session.end_reason)


def touch(session: DirectorySession, *, now: datetime) -> bool:
    """Record activity if the throttle allows it; True when it was written.

    Conditional on the session still being live, so a touch racing an ending never revives it.
    """
    if not policy.should_touch(session.last_activity_at, session.lifetime, now):
        return False
    expires_at = policy.expiry(session.created_at, now, session.lifetime)[0]
    result = db.session.execute(
        update(DirectorySession)
        .where(DirectorySession.id == session.id, DirectorySession.ended_at.is_(None))
        .values(last_activity_at=now, expires_at=expires_at)
    )
    db.session.commit()
    return result.rowcount == 1


def reauthenticate(session: DirectorySession, *, now: datetime) -> str:
    """The person proved the password again (OIDC prompt=login or max_age, SAML ForceAuthn):
    same session and application sessions, a new auth time and, as at any privilege change,
    a new token. Returns the token for the cookie."""
    token = secrets.token_urlsafe(32)
    session.token_hash, session.authenticated_at = digest(token), now
    touched = policy.expiry(session.created_at, now, session.lifetime)[0]
    session.last_activity_at, session.expires_at = now, touched
    audit.record("signin.reauthenticated", now=now, actor=session.user, target_user=session.user, target=f"session {session.id}")
    db.session.commit()
    return token


def _end(
    session: DirectorySession,
    reason: EndReason,
    *,
    now: datetime,
    actor: User | None = None,
    actor_label: str | None = None,
    browser: bool = False,
    skip: App | None = None,
) -> bool:
    """The one funnel for ending a session; True when this call ended it for `reason`.

    A session already past its deadline is recorded as expired, at its deadline, whoever
    asked: an admin cannot relabel an expiry nobody had noticed yet. The update is
    conditional on the row being live, so two enders racing (an admin and a sweep, two
    workers) record one ending. Ending it ends its application sessions and queues their
    Single Logout notices in the same transaction, except on expiry unless the session
    was opened with "sign apps out when the directory session expires".
    """
    asked, ended_at = reason, now
    deadline, expired_as = session.expiry
    if now >= deadline:
        reason, ended_at = expired_as, deadline
        if reason is not asked:
            actor = actor_label = None
    result = db.session.execute(
        update(DirectorySession)
        .where(DirectorySession.id == session.id, DirectorySession.ended_at.is_(None))
        .values(ended_at=ended_at, end_reason=reason.value, ended_by_id=actor.id if actor else None)
        .execution_options(synchronize_session="fetch")
    )
    if result.rowcount != 1:
        db.session.refresh(session)
        return False
    audit.record(
        "session.ended", now=now, actor=actor, actor_label=actor_label, target_user=session.user,
        target=f"session {session.id}", reason=reason.value,
    )
    if not reason.is_expiry or session.expiry_signs_out_apps:
        logout.plan(session, now=now, browser=browser, skip=skip)
    return reason is asked


def end(
    session: DirectorySession,
    reason: EndReason,
    *,
    now: datetime,
    actor: User | None = None,
    actor_label: str | None = None,
    browser: bool = False,
    skip: App | None = None,
) -> bool:
    """End one session; False when it had already ended. `browser`: the person's browser is
    here to carry front-channel logout notices; `skip`: the app that asked, answered directly."""
    ended = _end(session, reason, now=now, actor=actor, actor_label=actor_label, browser=browser, skip=skip)
    db.session.commit()
    return ended


def sign_out(session: DirectorySession, *, now: datetime, actor: User | None, browser: bool, skip: App | None = None) -> None:
    """The person signs out everywhere: the session ends (if it still lives) and so does every
    application session it opened, with notices, even one left running after an expiry."""
    _end(session, EndReason.SIGNED_OUT, now=now, actor=actor, browser=browser, skip=skip)
    logout.plan(session, now=now, browser=browser, skip=skip)
    db.session.commit()


def end_all(
    *,
    reason: EndReason,
    now: datetime,
    user: User | None = None,
    keep: DirectorySession | None = None,
    actor: User | None = None,
    actor_label: str | None = None,
) -> int:
    """End every live session (of `user`, when given), except `keep`; returns how many."""
    query = select(DirectorySession).where(DirectorySession.ended_at.is_(None))
    if user is not None:
        query = query.where(DirectorySession.user_id == user.id)
    if keep is not None:
        query = query.where(DirectorySession.id != keep.id)
    ended = 0
    for session in db.session.scalars(query).all():
        ended += _end(session, reason, now=now, actor=actor, actor_label=actor_label)
    db.session.commit()
    return ended


def apply(settings: SessionSettings, *, now: datetime) -> int:
    """Give every live session the settings' lifetime (and drop persistence where it is now
    off), recomputing deadlines from each session's own sign-in and last activity.

    Sessions already expired at `now` are left alone: new limits never revive them.
    Runs inside the caller's transaction.
    """
    lifetime = settings.lifetime
    count = 0
    for session in db.session.scalars(_live(now)):
        session.inactivity_seconds = _seconds(lifetime.inactivity)
        session.absolute_seconds = _seconds(lifetime.absolute)
        session.expires_at = policy.expiry(session.created_at, session.last_activity_at, lifetime)[0]
        session.persistent = session.persistent and settings.persistent_login
        session.expiry_signs_out_apps = settings.signout_apps_on_expiry
        count += 1
    return count


def sweep(*, now: datetime, retention) -> tuple[int, int]:
    """End sessions that expired unseen (at their deadline, with its reason) and purge
    sessions that ended longer than `retention` ago. Returns (ended, purged)."""
    ended = 0
    while True:
        due = db.session.scalars(
            select(DirectorySession)
            .where(DirectorySession.ended_at.is_(None), DirectorySession.expires_at <= now)
            .order_by(DirectorySession.expires_at)
            .limit(_SWEEP_BATCH)
        ).all()
        if not due:
            break
        for session in due:
            reason = session.expiry[1]
            ended += _end(session, reason, now=now)
        db.session.commit()
    purged = db.session.execute(
        delete(DirectorySession).where(DirectorySession.ended_at < policy.purge_cutoff(now, retention))
    ).rowcount
    db.session.commit()
    return ended, purged
