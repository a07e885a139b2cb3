"""Admin pages for relying applications: register, tune and delete OpenID Connect apps.

The browser twin of `flask clients create/list/delete`: registration goes through the same
`clients.register`, so the web page and the CLI refuse the same URIs. Every view needs
`apps:manage`; without it the answer is 403 and nothing runs.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

from directory import audit, durations, settings
from directory.db import db
from directory.models import App
from idp import context, web_session
from idp.admin import UNIT_LABELS, duration_field
from idp.oidc import clients
from idp.oidc.models import OAuthClient

bp = Blueprint("admin_apps", __name__, url_prefix="/admin/apps")
PERMISSION = "apps:manage"

# An app session's refresh tokens live by the same bounds as a directory session's timeouts.
IDLE_RANGE, MAX_RANGE = settings.INACTIVITY_RANGE, settings.ABSOLUTE_RANGE


@bp.get("")
@web_session.require_permission(PERMISSION)
def list_apps():
    return _page()


@bp.post("")
@web_session.require_permission(PERMISSION)
def create_app_view():
    """Register from the form. The secret is rendered in this one response and nowhere else:
    not flashed (flashes live in the cookie), not logged, not redirected to (no URL holds it)."""
    spec = _registration(request.form)
    try:
        client, secret = clients.register(spec, now=context.now(), actor_label=g.user.username)
    except clients.ClientError as error:
        return _page(spec=spec, register_error=str(error), status=400)
    return render_template("admin/app_created.html", client=client, secret=secret), 201


@bp.post("/<client_id>/settings")
@web_session.require_permission(PERMISSION)
def save_app_settings(client_id: str):
    """Single Logout and the app session's lifetimes. New values govern app sessions opened
    from now on: a live app session keeps the limits it captured when it opened."""
    client = clients.find(client_id) or abort(404)
    app, errors = client.app, {}
    idle = duration_field(request.form, "idle", errors, timedelta(seconds=app.session_idle_seconds))
    longest = duration_field(request.form, "max", errors, timedelta(seconds=app.session_max_seconds))
    for name, value, bounds in (("idle", idle, IDLE_RANGE), ("max", longest, MAX_RANGE)):
        if name not in errors and (message := settings.range_error(value, bounds)):
            errors[name] = message
    if not errors and idle > longest:
        errors["idle"] = "must not be longer than the maximum lifetime"
    if errors:
        return _page(edited=(client_id, request.form, errors), status=400)

    new = {
        "single_logout": request.form.get("single_logout") == "on",
        "session_idle": durations.compact(idle),
        "session_max": durations.compact(longest),
    }
    old = _stored(app)
    changes = {name: {"old": old[name], "new": value} for name, value in new.items() if old[name] != value}
    if changes:
        app.single_logout = new["single_logout"]
        app.session_idle_seconds = int(idle.total_seconds())
        app.session_max_seconds = int(longest.total_seconds())
        audit.record(
            "app.settings_changed", now=context.now(), actor=g.user, ip=context.client_ip(),
            target=app.name, client_id=client_id, changes=changes,
        )
        db.session.commit()
    flash(f"Saved {len(changes)} change(s) to {app.name}." if changes else f"Nothing changed for {app.name}.", "info")
    return redirect(url_for(".list_apps"), 303)


@bp.post("/<client_id>/delete")
@web_session.require_permission(PERMISSION)
def delete_app(client_id: str):
    """Delete the app; the database cascade removes its client, codes, tokens and app sessions,
    so every token it was issued stops working at once (as `flask clients delete`)."""
    client = clients.find(client_id) or abort(404)
    name = client.app.name
    db.session.delete(client.app)
    audit.record("app.deleted", now=context.now(), actor=g.user, ip=context.client_ip(), target=name, client_id=client_id)
    db.session.commit()
    flash(f"Deleted {name}. Its tokens no longer work.", "info")
    return redirect(url_for(".list_apps"), 303)


def _registration(form) -> clients.Registration:
    """The form as a registration request; validation is `clients.register`'s alone."""

    def lines(name: str) -> list[str]:
        return [line.strip() for line in form.get(name, "").splitlines() if line.strip()]

    return clients.Registration(
        name=form.get("name", "").strip(),
        redirect_uris=lines("redirect_uris"),
        post_logout_redirect_uris=lines("post_logout_redirect_uris"),
        backchannel_logout_uri=form.get("backchannel_logout_uri", "").strip() or None,
        frontchannel_logout_uri=form.get("frontchannel_logout_uri", "").strip() or None,
        public=form.get("public") == "on",
        grant_types=form.getlist("grant_types"),
        id_token_alg=form.get("id_token_alg", "RS256"),
        trusted=form.get("trusted") == "on",
    )


def _stored(app: App) -> dict:
    """The app's settings as audited: durations written like `7d`."""
    return {
        "single_logout": app.single_logout,
        "session_idle": durations.compact(timedelta(seconds=app.session_idle_seconds)),
        "session_max": durations.compact(timedelta(seconds=app.session_max_seconds)),
    }


def _fields(app: App) -> dict[str, str]:
    """The settings form's raw values for `app`, as a browser would submit them untouched."""
    fields = {"single_logout": "on" if app.single_logout else ""}
    for name, seconds in (("idle", app.session_idle_seconds), ("max", app.session_max_seconds)):
        fields[f"{name}_value"], fields[f"{name}_unit"] = map(str, durations.largest_unit(timedelta(seconds=seconds)))
    return fields


def _page(spec: clients.Registration | None = None, register_error: str | None = None,
          edited: tuple[str, object, dict[str, str]] | None = None, status: int = 200):
    """The list with every app's settings form and the registration form.

    `spec` refills the registration form after a refusal; `edited` is (client_id, submitted
    form, errors) for a refused settings form, shown with what was typed instead of the row."""
    listed = db.session.scalars(select(OAuthClient).join(OAuthClient.app).order_by(App.name, OAuthClient.id)).all()
    forms = {c.client_id: (_fields(c.app), {}) for c in listed}
    if edited is not None:
        client_id, form, errors = edited
        forms[client_id] = (form, errors)
    return render_template(
        "admin/apps.html", listed=listed, forms=forms, units=UNIT_LABELS, grant_types=clients.GRANT_TYPES,
        spec=spec or clients.Registration(name="", redirect_uris=[]), register_error=register_error,
    ), status
