"""Admin pages for directory sessions: every session in the directory, one session's details,
and ending one, a user's, or all of them.

Seeing needs `sessions:view`; ending needs `sessions:revoke` (403 otherwise, nothing runs).
Every ending goes through `sessions.end`/`end_all`, so it is audited with the acting admin and
its application sessions are ended and told through the logout outbox like any other.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import func, select

from directory import accounts, listing, sessions
from directory.db import db
from directory.models import App, AppSession, DirectorySession, LogoutDelivery, User
from directory.policy import EndReason
from idp import context, web_session, whereabouts

bp = Blueprint("admin_sessions", __name__, url_prefix="/admin/sessions")
VIEW, REVOKE = "sessions:view", "sessions:revoke"
PAGE_SIZE = 50
ID = "int(max=2147483647)"  # a row id: larger numbers are 404, never a database error


@bp.get("")
@web_session.require_permission(VIEW)
def list_sessions():
    wanted, chosen = _filter(request.args)
    now = context.now()
    try:
        page = listing.sessions_page(wanted, now=now, limit=PAGE_SIZE, after=request.args.get("after") or None)
    except listing.BadCursor:
        abort(400, description="This page link is not valid. Start again from the first page of the list.")
    more = url_for(".list_sessions", **{**chosen, "after": page.next_cursor}) if page.next_cursor else None
    return render_template(
        "admin/sessions.html", rows=whereabouts.listed(page.rows, page.apps, now=now), chosen=chosen, next_url=more,
        apps=db.session.scalars(select(App).order_by(App.name, App.id)).all(), reasons=whereabouts.REASONS,
        statuses=listing.STATUSES, paged="after" in request.args,
    )


@bp.get(f"/<{ID}:session_id>")
@web_session.require_permission(VIEW)
def show_session(session_id: int):
    """One session, and per application its app session and whether the app was told of the end."""
    row = db.session.get(DirectorySession, session_id) or abort(404)
    (shown,) = whereabouts.listed([row], listing.apps_of([row.id]), now=context.now())
    app_sessions = db.session.scalars(
        select(AppSession).where(AppSession.directory_session_id == row.id).order_by(AppSession.created_at, AppSession.id)
    ).all()
    notices: dict[int, list[LogoutDelivery]] = {app_session.id: [] for app_session in app_sessions}
    for notice in db.session.scalars(
        select(LogoutDelivery).join(AppSession).where(AppSession.directory_session_id == row.id).order_by(LogoutDelivery.id)
    ):
        notices[notice.app_session_id].append(notice)
    return render_template(
        "admin/session.html", s=shown, app_sessions=[(app_session, notices[app_session.id]) for app_session in app_sessions],
        delivery_status=delivery_status,
    )


@bp.post(f"/<{ID}:session_id>/end")
@web_session.require_permission(REVOKE)
def end_session(session_id: int):
    row = db.session.get(DirectorySession, session_id) or abort(404)
    ended = sessions.end(row, EndReason.ENDED_BY_ADMIN, now=context.now(), actor=g.user)
    return _done(int(ended), f"of {row.user.username}")


@bp.post(f"/users/<{ID}:user_id>/end")
@web_session.require_permission(REVOKE)
def end_user_sessions(user_id: int):
    user = db.session.get(User, user_id) or abort(404)
    ended = sessions.end_all(reason=EndReason.ENDED_BY_ADMIN, now=context.now(), user=user, actor=g.user)
    return _done(ended, f"of {user.username}")


@bp.route("/end-all", methods=["GET", "POST"])
@web_session.require_permission(REVOKE)
def end_every_session():
    """Ending every session in the directory takes two steps: this page, then its form (with
    `confirm`). The acting admin's own session is kept unless the box says otherwise."""
    if request.method == "GET" or request.form.get("confirm") != "yes":
        now = context.now()
        live = db.session.scalar(
            select(func.count()).select_from(DirectorySession)
            .where(DirectorySession.ended_at.is_(None), DirectorySession.expires_at > now)
        )
        return render_template("admin/sessions.html", confirm_end_all=True, live=live)
    keep = None if request.form.get("include_mine") == "on" else g.directory_session
    ended = sessions.end_all(reason=EndReason.ENDED_BY_ADMIN, now=context.now(), keep=keep, actor=g.user)
    return _done(ended, "in the directory" + ("" if keep is None else "; yours was kept"))


def delivery_status(notice: LogoutDelivery) -> str:
    """A logout notice's state in words: delivered, queued, retrying or failed."""
    attempts = f"{notice.attempts} attempt{'' if notice.attempts == 1 else 's'}"
    if notice.status == "sent":
        return f"delivered {notice.sent_at:%Y-%m-%d %H:%M:%S} UTC"
    if notice.status == "failed":
        return f"failed after {attempts}: {notice.last_error}"
    if notice.attempts:
        return f"retrying ({attempts} so far; last error: {notice.last_error})"
    return "queued"


def _filter(args) -> tuple[listing.SessionFilter, dict[str, str]]:
    """The list's filters from the query string, and their raw values to keep in the form and
    links. A value naming no user, status, app or reason is a 400 saying which."""
    chosen = {name: args.get(name, "").strip() for name in ("user", "status", "app", "reason")}
    chosen = {name: value for name, value in chosen.items() if value}
    user = app = None
    if "user" in chosen:
        user = accounts.find_user(chosen["user"]) or abort(400, description=f"No user is named {chosen['user']!r}.")
    if "status" in chosen and chosen["status"] not in listing.STATUSES:
        abort(400, description="Status must be one of: " + ", ".join(listing.STATUSES) + ".")
    if "app" in chosen:
        app_id = chosen["app"]
        app = db.session.get(App, int(app_id)) if app_id.isdecimal() and len(app_id) < 10 else None
        app or abort(400, description=f"No application has the id {app_id!r}.")
    if "reason" in chosen and chosen["reason"] not in whereabouts.REASONS:
        abort(400, description="End reason must be one of: " + ", ".join(whereabouts.REASONS) + ".")
    wanted = listing.SessionFilter(
        user_id=user.id if user else None, status=chosen.get("status"),
        app_id=app.id if app else None, end_reason=chosen.get("reason"),
    )
    return wanted, chosen


def _done(count: int, where: str):
    """Back to the page the action came from (a sessions page only), saying how many ended."""
    flash(f"Ended {count} session{'' if count == 1 else 's'} {where}.", "info")
    back = web_session.safe_next(request.form.get("back"))
    return redirect(back if back and back.startswith(bp.url_prefix) else url_for(".list_sessions"), 303)
