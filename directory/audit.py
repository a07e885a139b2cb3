"""The audit trail: one row per thing worth answering for later. Never holds a secret."""

from __future__ import annotations

from datetime import datetime

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
