"""Which applications a directory session signed in to, and telling them when it ends.

`join` records an application session the first time a directory session signs in to an
app. `plan` ends a directory session's application sessions and writes one outbox row per
notice, inside the transaction that ends the directory session, so nothing is lost to a
crash. `claim` and `record` are the delivery worker's half: protocol code builds and sends
each notice; this module only decides who is due, and what a result means.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from directory import audit, policy
from directory.db import db
from directory.models import App, AppSession, DirectorySession, LogoutDelivery

DIRECTORY_SIGNOUT = "directory_signout"


def join(directory_session: DirectorySession, app: App, *, subject: str, now: datetime) -> AppSession:
    """The live application session of `app` within `directory_session`, opened if needed."""
    existing = db.session.scalar(
        select(AppSession).where(
            AppSession.directory_session_id == directory_session.id,
            AppSession.app_id == app.id,
            AppSession.ended_at.is_(None),
        )
    )
    if existing is not None:
        return existing
    opened = AppSession(
        app=app,
        user_id=directory_session.user_id,
        directory_session_id=directory_session.id,
        sid=secrets.token_urlsafe(24),
        subject=subject,
        created_at=now,
        last_used_at=now,
        idle_seconds=app.session_idle_seconds,
        max_seconds=app.session_max_seconds,
    )
    db.session.add(opened)
    db.session.flush()
    return opened


def plan(directory_session: DirectorySession, *, now: datetime, browser: bool = False, skip: App | None = None) -> list[LogoutDelivery]:
    """End every live application session of `directory_session` and queue the notices.

    Each app with Single Logout on gets a back-channel notice if it offers one, and a
    front-channel notice when a browser is there to carry it. `skip` is an app that asked
    for the logout itself and is answered directly. Runs in the caller's transaction.
    """
    queued = []
    live = db.session.scalars(
        select(AppSession).where(
            AppSession.directory_session_id == directory_session.id, AppSession.ended_at.is_(None)
        )
    )
    for app_session in live:
        app_session.ended_at, app_session.end_reason = now, DIRECTORY_SIGNOUT
        app = app_session.app
        if not app.single_logout or app == skip:
            continue
        channels = [name for name, offered in (("back", app.backchannel_logout), ("front", app.frontchannel_logout and browser)) if offered]
        for channel in channels:
            queued.append(LogoutDelivery(app_session=app_session, channel=channel, created_at=now, next_attempt_at=now))
    db.session.add_all(queued)
    return queued


def claim(*, now: datetime, lease: timedelta, limit: int = 50, channel: str = "back",
          directory_session: DirectorySession | None = None) -> list[LogoutDelivery]:
    """Lease up to `limit` due notices for this worker and commit the lease; only those of
    `directory_session` when given (a sign-out that waits for its own notices).

    Each row is leased by a conditional UPDATE, so of several workers (or processes, or
    hosts) racing for a row exactly one wins it, on SQLite and PostgreSQL alike. A worker
    that dies leaves its lease to run out, and the row becomes due again.
    """
    # The lease is taken on the same conditions the row was found by: a worker that saw the
    # row due just before another one tried it and rescheduled it must leave it to its back-off.
    due_now = (
        LogoutDelivery.status == "pending",
        LogoutDelivery.next_attempt_at <= now,
        or_(LogoutDelivery.lease_until.is_(None), LogoutDelivery.lease_until <= now),
    )
    query = select(LogoutDelivery.id).where(LogoutDelivery.channel == channel, *due_now)
    if directory_session is not None:
        query = query.join(AppSession).where(AppSession.directory_session_id == directory_session.id)
    found = db.session.scalars(
        query
        .order_by(LogoutDelivery.next_attempt_at)
        .limit(limit)
    ).all()
    won = [
        row_id
        for row_id in found
        if db.session.execute(
            update(LogoutDelivery).where(LogoutDelivery.id == row_id, *due_now).values(lease_until=now + lease)
        ).rowcount == 1
    ]
    db.session.commit()
    return list(db.session.scalars(select(LogoutDelivery).where(LogoutDelivery.id.in_(won))))


def record(delivery: LogoutDelivery, *, now: datetime, error: str | None, window: timedelta, jitter: float) -> None:
    """Note one attempt's outcome: sent; or retried later; or, past `window`, failed and audited."""
    delivery.attempts += 1
    delivery.lease_until = None
    if error is None:
        delivery.status, delivery.sent_at = "sent", now
        return
    delivery.last_error = error[:500]
    if policy.delivery_abandoned(delivery.created_at, now, window):
        delivery.status = "failed"
        app_session = delivery.app_session
        audit.record(
            "logout.delivery_failed", now=now, target_user=app_session.user, target=app_session.app.name,
            channel=delivery.channel, attempts=delivery.attempts, error=delivery.last_error,
        )
    else:
        delivery.next_attempt_at = now + policy.retry_delay(delivery.attempts, jitter)


def take_front_channel(directory_session: DirectorySession, *, now: datetime, protocol: str,
                       limit: int | None = None) -> list[LogoutDelivery]:
    """The session's front-channel notices to `protocol` apps (up to `limit`), handed to the
    browser now and so marked sent: the browser carries them, no worker can."""
    rows = list(
        db.session.scalars(
            select(LogoutDelivery)
            .join(AppSession)
            .join(App)
            .where(
                AppSession.directory_session_id == directory_session.id,
                App.protocol == protocol,
                LogoutDelivery.channel == "front",
                LogoutDelivery.status == "pending",
            )
            .order_by(LogoutDelivery.id)
            .limit(limit)
        )
    )
    for row in rows:
        row.status, row.sent_at, row.attempts = "sent", now, row.attempts + 1
    db.session.commit()
    return rows


def unreached(directory_session: DirectorySession, *, skip: App | None = None) -> list[str]:
    """Names of the apps its sign-out has not (yet) reached: a notice not delivered, or Single
    Logout on but no way to send one. `skip` is the app that asked and is answered directly."""
    rows = db.session.execute(
        select(App, LogoutDelivery.status)
        .select_from(AppSession)
        .join(App, AppSession.app_id == App.id)
        .outerjoin(LogoutDelivery, LogoutDelivery.app_session_id == AppSession.id)
        .where(AppSession.directory_session_id == directory_session.id, AppSession.end_reason == DIRECTORY_SIGNOUT)
    )
    return sorted({app.name for app, status in rows if app.single_logout and app != skip and status != "sent"})
