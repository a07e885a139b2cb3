"""Finding sessions for the lists people and scripts read: filtered, most recent activity first,
one page at a time.

Pages are keyset pages ("the rows after this one"), not offsets, so the thousandth page costs
what the first does; each filter meets an index (see `DirectorySession.__table_args__`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import exists, or_, select, tuple_
from sqlalchemy.orm import joinedload

from directory.db import db
from directory.models import App, AppSession, DirectorySession, User

STATUSES = ("active", "ended")
MAX_PAGE = 200
MAX_ID = 2**31 - 1  # ids are 32-bit on PostgreSQL: a larger one in a cursor is not ours
_EPOCH, _MICROSECOND = datetime(1970, 1, 1, tzinfo=UTC), timedelta(microseconds=1)


@dataclass(frozen=True)
class SessionFilter:
    """What a list asks for; None means any."""

    user_id: int | None = None
    status: str | None = None  # one of STATUSES
    app_id: int | None = None
    end_reason: str | None = None


@dataclass(frozen=True)
class Page:
    rows: list[DirectorySession]
    apps: dict[int, list[App]]  # session id -> the apps it signed in to, by name
    next_cursor: str | None  # pass as `after` for the next page; None on the last


class BadCursor(ValueError):
    """The cursor was not made by `cursor_of`."""


def cursor_of(row: DirectorySession) -> str:
    """Whole microseconds since the epoch, counted in integers, so the cursor names its row's instant exactly."""
    return f"{(row.last_activity_at - _EPOCH) // _MICROSECOND}.{row.id}"


def _parse_cursor(text: str) -> tuple[datetime, int]:
    try:
        micros, row_id = (int(part) for part in text.split("."))
        if not 0 <= row_id <= MAX_ID:
            raise ValueError(row_id)
        return _EPOCH + micros * _MICROSECOND, row_id
    except (ValueError, OverflowError, OSError):
        raise BadCursor(f"not a page cursor: {text[:40]!r}") from None


def sessions_page(wanted: SessionFilter, *, now: datetime, limit: int = 50, after: str | None = None) -> Page:
    """Up to `limit` sessions matching `wanted`, most recent activity first, after the cursor.

    "active" means alive at `now`; a session past its deadline that no request or sweep has
    ended yet counts as ended (it has no end reason until the sweep records one).

    "Ended" is asked of `end_reason`, which `sessions._end` writes with `ended_at`: then "active"
    walks (end_reason, last_activity_at) in page order, where `ended_at` leads SQLite to the
    sweep index and a sort of every live session. The cursor is one row-value comparison, so
    both databases seek to it in the index rather than read every row before it.
    """
    limit = max(1, min(limit, MAX_PAGE))
    query = select(DirectorySession).options(joinedload(DirectorySession.user).joinedload(User.role))
    if wanted.user_id is not None:
        query = query.where(DirectorySession.user_id == wanted.user_id)
    if wanted.status == "active":
        query = query.where(DirectorySession.end_reason.is_(None), DirectorySession.expires_at > now)
    elif wanted.status == "ended":
        query = query.where(or_(DirectorySession.end_reason.is_not(None), DirectorySession.expires_at <= now))
    if wanted.end_reason is not None:
        query = query.where(DirectorySession.end_reason == wanted.end_reason)
    if wanted.app_id is not None:
        query = query.where(exists().where(AppSession.directory_session_id == DirectorySession.id, AppSession.app_id == wanted.app_id))
    if after:
        moment, row_id = _parse_cursor(after)
        keyset = (DirectorySession.last_activity_at, DirectorySession.id)
        query = query.where(tuple_(*keyset) < tuple_(moment, row_id, types=[column.type for column in keyset]))
    rows = list(db.session.scalars(
        query.order_by(DirectorySession.last_activity_at.desc(), DirectorySession.id.desc()).limit(limit + 1)
    ).unique())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows=rows, apps=apps_of([row.id for row in rows]), next_cursor=cursor_of(rows[-1]) if more else None)


def apps_of(session_ids: list[int]) -> dict[int, list[App]]:
    """The apps each directory session signed in to (one query for a whole page)."""
    found: dict[int, dict[int, App]] = {session_id: {} for session_id in session_ids}
    if session_ids:
        pairs = db.session.execute(
            select(AppSession.directory_session_id, App).join(App, AppSession.app_id == App.id)
            .where(AppSession.directory_session_id.in_(session_ids))
        )
        for session_id, app in pairs:
            found[session_id][app.id] = app
    return {session_id: sorted(apps.values(), key=lambda app: app.name.casefold()) for session_id, apps in found.items()}
