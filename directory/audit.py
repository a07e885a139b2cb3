"""The audit trail: one row per thing worth answering for later. Never holds a secret."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select

from directory import policy
from directory.db import db
from directory.models import AuditEvent, User

#: Every action the directory records, with a label for people. The audit page offers these to
#: filter by; recording an action missing here works, but nobody could filter for it.
ACTIONS = {
    "signin.success": "Signed in",
    "signin.failure": "Sign-in failed",
    "signin.refused": "Sign-in refused at the session limit",
    "signin.reauthenticated": "Password entered again",
    "session.ended": "Session ended",
    "logout.delivery_failed": "Logout notice failed",
    "settings.changed": "Setting changed",
    "settings.applied_to_existing": "Settings applied to signed-in sessions",
    "user.created": "User created",
    "user.password_changed": "Password changed",
    "user.disabled": "User disabled",
    "user.enabled": "User enabled",
    "user.role_changed": "Role of a user changed",
    "user.signed_out_everywhere": "User signed out everywhere",
    "role.created": "Role created",
    "role.changed": "Role changed",
    "role.deleted": "Role deleted",
    "app.registered": "Application registered",
    "app.settings_changed": "Application changed",
    "app.deleted": "Application deleted",
}
_MAX_ID = 2**31 - 1  # ids are 32-bit on PostgreSQL: a larger one in a cursor is not ours


def record(
    action: str,
    *,
    now: datetime,
    actor: User | None = None,
    actor_label: str | None = None,
    target_user: User | None = None,
    target: str = "",
    ip: str = "",
    **detail,
) -> AuditEvent:
    """Add an event to the current transaction; the caller's commit makes it durable.

    `actor_label` names a non-user actor (`cli`, `system`); a user actor is named by username.
    """
    event = AuditEvent(
        at=now,
        action=action,
        actor_id=actor.id if actor else None,
        actor=actor.username if actor else (actor_label or "system"),
        target_user_id=target_user.id if target_user else None,
        target=target or (target_user.username if target_user else ""),
        ip_address=ip,
        detail=detail,
    )
    db.session.add(event)
    return event


@dataclass(frozen=True)
class AuditFilter:
    """What an audit list asks for; None means any. `action` matches exactly; `actor` and
    `target` match whole names in any case, and `target` also matches events about the user of
    that name (a session ended, a role changed), whose target text names the session."""

    action: str | None = None
    actor: str | None = None
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None  # exclusive


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditEvent]
    next_cursor: str | None


def events_page(wanted: AuditFilter, *, limit: int = 50, after: str | None = None) -> AuditPage:
    """Up to `limit` events, newest first, after the cursor (keyset: the id, which grows with time)."""
    limit = max(1, min(limit, 500))
    query = _matching(wanted)
    if after:
        if not (after.isascii() and after.isdigit() and len(after) <= 10 and int(after) <= _MAX_ID):
            raise ValueError(f"not a page cursor: {after[:40]!r}")
        query = query.where(AuditEvent.id < int(after))
    rows = list(db.session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(rows=rows, next_cursor=str(rows[-1].id) if more else None)


def _matching(wanted: AuditFilter):
    query = select(AuditEvent)
    if wanted.action is not None:
        query = query.where(AuditEvent.action == wanted.action)
    if wanted.actor is not None:
        query = query.where(func.lower(AuditEvent.actor) == wanted.actor.lower())
    if wanted.target is not None:
        named = select(User.id).where(User.username == wanted.target.casefold()).scalar_subquery()
        query = query.where(or_(func.lower(AuditEvent.target) == wanted.target.lower(), AuditEvent.target_user_id == named))
    if wanted.since is not None:
        query = query.where(AuditEvent.at >= wanted.since)
    if wanted.until is not None:
        query = query.where(AuditEvent.at < wanted.until)
    return query


def purge(*, now: datetime, retention: timedelta) -> int:
    """Delete the events recorded longer than `retention` before `now` (one DELETE on the
    indexed `at`), commit, and return how many went. An event exactly `retention` old stays."""
    deleted = db.session.execute(delete(AuditEvent).where(AuditEvent.at < policy.purge_cutoff(now, retention))).rowcount
    db.session.commit()
    return deleted
