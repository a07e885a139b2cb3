"""The audit log for admins: `/admin/audit`, newest first with filters and keyset pages, and
`/admin/audit.csv`, every event the same filters match. Both need `audit:view` (403 otherwise).

Filters come from the query string: `action` (one of `audit.ACTIONS`), `actor` (a username, or
`cli`/`system`), `target` (a target's name, or the user an event is about), `from` and `to`
(days, `YYYY-MM-DD`, UTC, both inclusive). A value that cannot be read is a 400 naming it.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, date, datetime, time, timedelta

from flask import Blueprint, Response, abort, current_app, render_template, request, url_for
from sqlalchemy import select

from directory import audit
from directory.db import db
from directory.models import User
from idp import web_session

bp = Blueprint("admin_audit", __name__, url_prefix="/admin")
PERMISSION = "audit:view"
PAGE_SIZE = 50
EXPORT_BATCH = 500  # events read per query while streaming the CSV
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_LONGEST = {"actor": 150, "target": 200}  # the columns' sizes: anything longer matches nothing
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@bp.get("/audit")
@web_session.require_permission(PERMISSION)
def list_events():
    wanted, chosen = _filter(request.args)
    try:
        page = audit.events_page(wanted, limit=PAGE_SIZE, after=request.args.get("after") or None)
    except ValueError:
        abort(400, description="This page link is not valid. Start again from the first page of the audit log.")
    more = url_for(".list_events", **chosen, after=page.next_cursor) if page.next_cursor else None
    whose = _usernames(page.rows)
    return render_template(
        "admin/audit.html", rows=[(event, whose.get(event.target_user_id), readable(event.detail)) for event in page.rows],
        chosen=chosen,
        actions=audit.ACTIONS, next_url=more, paged=bool(request.args.get("after")),
        csv_url=url_for(".export_events", **chosen),
    )


@bp.get("/audit.csv")
@web_session.require_permission(PERMISSION)
def export_events():
    """Every matching event, newest first, streamed a batch at a time. The body is sent after
    the request's context is gone, so each batch is read in an app context of its own, opened
    and closed within one step of the stream."""
    wanted, _ = _filter(request.args)
    app = current_app._get_current_object()

    def lines():
        yield _csv_lines([["id", "when", "action", "actor", "target", "target_user", "ip_address", "details"]])
        after = None
        while True:
            with app.app_context():
                page = audit.events_page(wanted, limit=EXPORT_BATCH, after=after)
                whose = _usernames(page.rows)
                chunk = _csv_lines([_csv_row(event, whose.get(event.target_user_id, "")) for event in page.rows])
            yield chunk
            if page.next_cursor is None:
                return
            after = page.next_cursor

    return Response(lines(), mimetype="text/csv", headers={
        "Content-Disposition": 'attachment; filename="audit.csv"',
        "Cache-Control": "no-store",
    })


def _usernames(events) -> dict[int, str]:
    """The current username of each user the events are about (a session's owner, say), by id."""
    ids = {event.target_user_id for event in events if event.target_user_id is not None}
    if not ids:
        return {}
    return {user_id: name for user_id, name in db.session.execute(select(User.id, User.username).where(User.id.in_(ids)))}


def _csv_row(event, target_user: str) -> list[str]:
    detail = json.dumps(event.detail, sort_keys=True, separators=(",", ":"))
    values = (str(event.id), event.at.isoformat(), event.action, event.actor, event.target, target_user, event.ip_address, detail)
    return [safe_cell(value) for value in values]


def _csv_lines(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


def safe_cell(value: str) -> str:
    """A CSV cell a spreadsheet shows as text: one that would start a formula gets a quote first."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def readable(detail: dict) -> list[tuple[str, str]]:
    """An event's detail as (label, text) lines for people, in the order recorded; an `old` and
    a `new` value read as one line, `changed: old → new`."""
    rest = dict(detail or {})
    lines = []
    if "old" in rest and "new" in rest:
        lines.append(("changed", _text({"old": rest.pop("old"), "new": rest.pop("new")})))
    return lines + [(key.replace("_", " "), _text(value)) for key, value in rest.items()]


def _text(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_text(item) for item in value) or "none"
    if isinstance(value, dict):
        if set(value) == {"old", "new"}:
            return f"{_text(value['old'])} → {_text(value['new'])}"
        return "; ".join(f"{key.replace('_', ' ')}: {_text(item)}" for key, item in value.items())
    return str(value)


def _filter(args) -> tuple[audit.AuditFilter, dict[str, str]]:
    """The filters from the query string, and their raw values to keep in the form and links."""
    chosen = {name: args.get(name, "").strip() for name in ("action", "actor", "target", "from", "to")}
    chosen = {name: value for name, value in chosen.items() if value}
    if "action" in chosen and chosen["action"] not in audit.ACTIONS:
        abort(400, description=f"There is no audit action {chosen['action'][:64]!r}; choose one from the list.")
    for name, longest in _LONGEST.items():
        if len(chosen.get(name, "")) > longest:
            abort(400, description=f"The {name} filter is at most {longest} characters long.")
    since, last = _day(chosen, "from"), _day(chosen, "to")
    if since and last and since > last:
        abort(400, description="The 'from' date must not be after the 'to' date.")
    return audit.AuditFilter(
        action=chosen.get("action"),
        actor=chosen.get("actor"),
        target=chosen.get("target"),
        since=datetime.combine(since, time(), UTC) if since else None,
        until=datetime.combine(last + timedelta(days=1), time(), UTC) if last and last < date.max else None,
    ), chosen


def _day(chosen: dict[str, str], name: str) -> date | None:
    raw = chosen.get(name)
    if raw is None:
        return None
    try:
        if not _DAY.fullmatch(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        abort(400, description=f"The {name!r} date must be a day written YYYY-MM-DD, like 2026-01-31; got {raw[:40]!r}.")
