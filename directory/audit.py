"""The audit trail: one row per thing worth answering for later. Never holds a secret."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from directory.db import db
from directory.models import AuditEvent, User


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
    """What an audit list asks for; None means any. Names match as given (exact)."""

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
    query = select(AuditEvent)
    for column, value in ((AuditEvent.action, wanted.action), (AuditEvent.actor, wanted.actor), (AuditEvent.target, wanted.target)):
        if value is not None:
            query = query.where(column == value)
    if wanted.since is not None:
        query = query.where(AuditEvent.at >= wanted.since)
    if wanted.until is not None:
        query = query.where(AuditEvent.at < wanted.until)
    if after:
        if not after.isdigit():
            raise ValueError(f"not a page cursor: {after[:40]!r}")
        query = query.where(AuditEvent.id < int(after))
    rows = list(db.session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(rows=rows, next_cursor=str(rows[-1].id) if more else None)
