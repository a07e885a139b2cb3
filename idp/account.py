"""Self-service: the signed-in person's own sessions, and ending them.

Anyone signed in may use it, for their own sessions only: a session of someone else is
answered as if it did not exist (404). Endings go through `sessions.end`/`end_all` with the
person as actor, so their applications are signed out and told like at any other ending.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from directory import listing, sessions
from directory.db import db
from directory.models import DirectorySession
from directory.policy import EndReason
from idp import context, web_session, whereabouts

bp = Blueprint("account", __name__, url_prefix="/account")


@bp.get("/sessions")
@web_session.login_required
def list_sessions():
    now = context.now()
    try:
        page = listing.sessions_page(listing.SessionFilter(user_id=g.user.id), now=now, after=request.args.get("after") or None)
    except listing.BadCursor:
        abort(400, description="This page link is not valid. Start again from the first page of the list.")
    return render_template(
        "account/sessions.html", rows=whereabouts.listed(page.rows, page.apps, now=now), current=g.directory_session.id,
        next_url=url_for(".list_sessions", after=page.next_cursor) if page.next_cursor else None,
    )


@bp.post("/sessions/<int(max=2147483647):session_id>/end")  # larger ids: 404, not a database error
@web_session.login_required
def end_session(session_id: int):
    row = db.session.get(DirectorySession, session_id)
    if row is None or row.user_id != g.user.id:
        abort(404)
    if row.id == g.directory_session.id:
        flash("That is the session you are using: sign out to end it.", "info")
    else:
        ended = sessions.end(row, EndReason.ENDED_BY_USER, now=context.now(), actor=g.user)
        flash(f"Ended {int(ended)} session{'' if ended else 's'}.", "info")
    return redirect(url_for(".list_sessions"), 303)


@bp.post("/sessions/end-others")
@web_session.login_required
def end_other_sessions():
    ended = sessions.end_all(reason=EndReason.ENDED_BY_USER, now=context.now(), user=g.user, keep=g.directory_session, actor=g.user)
    flash(f"Ended {ended} other session{'' if ended == 1 else 's'}.", "info")
    return redirect(url_for(".list_sessions"), 303)
