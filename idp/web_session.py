"""Binds a browser to its directory session: the cookie, CSRF tokens and the sign-in gate.

Before any view runs, the cookie's token is looked up, the session policy is applied at the
app clock's `now`, and activity is recorded (throttled). Views only see `g.user` and
`g.directory_session`, both None for anyone not signed in.
"""

from __future__ import annotations

import hmac
import secrets
from functools import wraps
from urllib.parse import urlsplit

from flask import abort, current_app, flash, g, redirect, request, session, url_for

from directory import durations, policy, sessions, settings
from directory.models import DirectorySession
from directory.policy import EndReason
from idp import context

_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def init_app(app) -> None:
    app.before_request(_check_csrf)
    app.before_request(_load_session)
    app.after_request(_write_cookie)
    app.context_processor(lambda: {"csrf_token": csrf_token, "current_user": g.get("user")})


def sessionless(view):
    """Mark a view that never reads the directory session (health checks, static data)."""
    view.sessionless = True
    return view


def passive(view):
    """Mark a view that reads the directory session without counting as activity."""
    view.passive = True
    return view


def csrf_exempt(view):
    """Mark a view called by applications, not browsers (token, introspection endpoints)."""
    view.csrf_exempt = True
    return view


def csrf_token() -> str:
    """This browser's CSRF token, kept in the signed UI cookie and rotated at each sign-in."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def _view_flag(name: str) -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return view is None or getattr(view, name, False)


def csrf_matches(sent: str) -> bool:
    """Whether `sent` is this browser's CSRF token (constant-time)."""
    expected = session.get("csrf", "")
    return bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


def _check_csrf() -> None:
    if request.method not in _UNSAFE_METHODS or _view_flag("csrf_exempt"):
        return
    if not csrf_matches(request.form.get("csrf_token", "")):
        abort(400, description="This form has expired or did not come from this site. Go back, reload the page and try again.")


def _load_session() -> None:
    g.user = g.directory_session = g.ended = g.cookie = None
    if request.endpoint == "static" or _view_flag("sessionless"):
        return
    token = request.cookies.get(current_app.config["DIRECTORY_COOKIE"])
    if not token:
        return
    found = sessions.find(token)
    if found is None:
        g.cookie = "clear"
        return
    now = context.now()
    reason = sessions.check(found, now=now)
    if reason is not None:
        g.ended, g.cookie, g.ended_message = reason, "clear", end_message(reason, found.lifetime)
        flash(g.ended_message, "info")
        return
    g.directory_session, g.user = found, found.user
    if not _view_flag("passive") and sessions.touch(found, now=now):
        # Refresh the cookie with the touch: a persistent one follows a re-applied deadline.
        g.cookie = (token, found)


def bind(response, token: str, bound: DirectorySession):
    """Give the browser a new session token, and a fresh CSRF token (no fixation)."""
    session.clear()
    csrf_token()
    g.cookie = (token, bound)
    return response


def unbind(response):
    """Forget the browser's session at sign-out: both cookies, so the CSRF token rotates too."""
    session.clear()
    g.cookie = "clear"
    return response


def _write_cookie(response):
    """The one place the session cookie is written, after the view had its say."""
    action, config = g.get("cookie"), current_app.config
    flags = {"path": "/", "secure": config["SESSION_COOKIE_SECURE"], "httponly": True, "samesite": "Lax"}
    if action == "clear":
        response.delete_cookie(config["DIRECTORY_COOKIE"], **flags)
    elif action is not None:
        token, bound = action
        expires = policy.cookie_expires(bound.persistent, bound.created_at, bound.lifetime)
        response.set_cookie(config["DIRECTORY_COOKIE"], token, expires=expires, **flags)
    return response


def end_message(reason: EndReason, lifetime: policy.Lifetime | None = None) -> str:
    """What the sign-in page tells someone whose session ended, in plain words; exact about
    the timeout when the ended session's `lifetime` is known."""
    if reason is EndReason.IDLE_TIMEOUT:
        if lifetime is not None and lifetime.inactivity is not None:
            return f"You were signed out after {durations.human(lifetime.inactivity)} of inactivity."
        return "You were signed out because you were inactive for too long."
    if reason is EndReason.ABSOLUTE_TIMEOUT:
        limit = f" of {durations.human(lifetime.absolute)}" if lifetime is not None else ""
        return f"Your session reached its time limit{limit}. Please sign in again."
    return {
        EndReason.SIGNED_OUT: "You have signed out.",
        EndReason.SESSION_LIMIT: "You were signed out because your account signed in elsewhere and reached its session limit.",
        EndReason.REPLACED: "You signed in again, which ended your previous session.",
        EndReason.ENDED_BY_USER: "This session was ended from another of your sessions.",
        EndReason.ENDED_BY_ADMIN: "An administrator ended your session.",
        EndReason.PASSWORD_CHANGED: "Your password was changed. Please sign in with the new one.",
        EndReason.USER_DISABLED: "Your account was disabled by an administrator.",
    }.get(reason, "Your session has ended. Please sign in again.")


def signout_destination(next_path: str | None = None) -> str:
    """Where people land after signing out or expiring: the admin's URL, else the sign-in page."""
    configured = settings.load().signout_url
    return configured or url_for("portal.login", next=next_path)


def safe_next(value: str | None) -> str | None:
    """A same-site path to continue to after signing in, or None; never another origin."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(ord(ch) < 32 for ch in value):
        return None
    return value


def login_required(view):
    """Send anyone not signed in to sign in, then back here (GET only)."""

    @wraps(view)
    def gate(*args, **kwargs):
        if g.user is None:
            here = request.full_path.rstrip("?") if request.method == "GET" else None
            if g.ended is not None and g.ended.is_expiry:
                return redirect(signout_destination(here))
            return redirect(url_for("portal.login", next=here))
        return view(*args, **kwargs)

    return gate


def require_permission(permission: str):
    """403 for a signed-in user without `permission`; nothing in the view runs."""

    def decorate(view):
        @login_required
        @wraps(view)
        def guarded(*args, **kwargs):
            if not g.user.can(permission):
                abort(403)
            return view(*args, **kwargs)

        return guarded

    return decorate
