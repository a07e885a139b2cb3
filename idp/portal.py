"""The user portal: sign in, sign out, the signed-in home page, and the health check."""

from __future__ import annotations

from flask import Blueprint, flash, g, get_flashed_messages, jsonify, redirect, render_template, request, url_for
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from directory import accounts, audit, sessions, settings
from directory.db import db
from directory.models import DirectorySession
from directory.policy import EndReason
from idp import context, signout, web_session

bp = Blueprint("portal", __name__)

_BAD_CREDENTIALS = "The username or password is incorrect."


@bp.get("/")
@web_session.login_required
def home():
    return render_template("portal/home.html", directory_session=g.directory_session)


@bp.get("/login")
def login():
    """The sign-in form; a signed-in person sees it only when an application demands the
    password again (`fresh`: OIDC prompt=login or max_age)."""
    if g.user is not None and not request.args.get("fresh"):
        return redirect(web_session.safe_next(request.args.get("next")) or url_for(".home"))
    return _login_page()


def _login_page(status: int = 200, error: str | None = None):
    return render_template(
        "portal/login.html",
        ended=_ended_elsewhere(),
        allow_persistent=settings.load().persistent_login,
        error=error,
        username=request.form.get("username") or request.args.get("login_hint", "")[:150],
        next=web_session.safe_next(request.values.get("next")),
        fresh=bool(request.values.get("fresh")),
    ), status


def _ended_elsewhere() -> str | None:
    """The sign-in page's notice for a tab sent here by the page script (`?ended=<reason>`)
    after the session ended in another tab; only a known reason, so no text can be injected.
    None when this browser has the exact message waiting as a flash."""
    try:
        reason = EndReason(request.args.get("ended", ""))
    except ValueError:
        return None
    # Flask keeps the flashes read here for the rest of the request, so the page still shows them.
    return None if get_flashed_messages() else web_session.end_message(reason)


def _authenticate():
    """The user the form's credentials name, or an error response (audited, nothing else)."""
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    if not username or not password:
        return None, _login_page(400, "Enter your username and password.")
    user, failure = accounts.authenticate(username, password)
    if user is None:
        audit.record("signin.failure", now=context.now(), target=username[:200], ip=context.client_ip(), reason=failure)
        db.session.commit()
        return None, _login_page(401, _BAD_CREDENTIALS)
    return user, None


@bp.post("/login")
def login_submit():
    user, failed = _authenticate()
    return failed or _open_session(user)


@bp.post("/login/end-session")
def end_session_to_sign_in():
    """From the session-limit page: end one of your sessions (password again), then sign in."""
    user, failed = _authenticate()
    if failed:
        return failed
    chosen = db.session.get(DirectorySession, request.form.get("session_id", type=int) or 0)
    if chosen is not None and chosen.user_id == user.id:
        sessions.end(chosen, EndReason.ENDED_BY_USER, now=context.now(), actor=user)
    return _open_session(user)


def _open_session(user):
    landing = redirect(web_session.safe_next(request.form.get("next")) or url_for(".home"), 303)
    current_session = g.directory_session
    if current_session is not None and current_session.user_id == user.id and request.form.get("fresh"):
        token = sessions.reauthenticate(current_session, now=context.now())
        return web_session.bind(landing, token, current_session)
    current = settings.load()
    result = sessions.open(
        user,
        current,
        now=context.now(),
        persistent=request.form.get("remember") == "on",
        ip=context.client_ip(),
        user_agent=request.user_agent.string,
        replacing=g.directory_session,
    )
    if isinstance(result, sessions.Refused) and result.disabled:
        return _login_page(401, _BAD_CREDENTIALS)
    if isinstance(result, sessions.Refused):
        return render_template(
            "portal/session_limit.html",
            active=result.active,
            limit=current.max_sessions,
            username=user.username,
            remember=request.form.get("remember") == "on",
            next=web_session.safe_next(request.form.get("next")),
        ), 409
    return web_session.bind(landing, result.token, result.session)


@bp.get("/logout")
def logout_confirm():
    if g.user is None:
        return redirect(url_for(".login"))
    return render_template("portal/logout.html")


@bp.post("/logout")
def logout():
    ended = g.directory_session
    destination = web_session.signout_destination()
    if ended is None:
        return web_session.unbind(redirect(destination, 303))
    sessions.end(ended, EndReason.SIGNED_OUT, now=context.now(), actor=g.user, browser=True)
    response = web_session.unbind(signout.leave(ended, return_url=destination))
    flash(web_session.end_message(EndReason.SIGNED_OUT), "info")
    return response


@bp.get("/healthz")
@web_session.sessionless
def healthz():
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        db.session.rollback()
        return jsonify(status="unavailable", database="unreachable"), 503
    return jsonify(status="ok", database="reachable")
