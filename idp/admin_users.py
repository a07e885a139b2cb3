"""Admin pages for users and roles: find, create, disable, enable, reset passwords, sign people
out everywhere, give them roles; create, change and delete custom roles.

The browser twin of `flask users ...` and `flask roles ...`: every change goes through the same
`accounts` function, so the page and the CLI refuse the same things, and each is audited with
the acting admin and their address. Every view needs `users:manage`; without it the answer is
403 and nothing runs.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from directory import accounts
from directory.db import db
from directory.models import Role, User
from idp import context, web_session

bp = Blueprint("admin_users", __name__, url_prefix="/admin")
PERMISSION = accounts.MANAGE
guard = web_session.require_permission(PERMISSION)
PAGE_SIZE = 50
ACTIONS = ("disable", "enable", "reset_password", "sign_out", "set_role")  # the user page's forms


def _who() -> dict:
    """Who is acting, as every `accounts` change records it."""
    return {"now": context.now(), "actor": g.user, "ip": context.client_ip()}


def _roles() -> list[Role]:
    return list(db.session.scalars(select(Role).order_by(Role.builtin.desc(), Role.name)))


# --- users ------------------------------------------------------------------------------------


@bp.get("/users")
@guard
def list_users():
    return _users_page()


@bp.post("/users")
@guard
def create_user():
    form = request.form
    try:
        user = accounts.create_user(
            form.get("username", ""), form.get("password", ""), email=form.get("email", ""),
            display_name=form.get("display_name", ""), role=form.get("role", ""), **_who(),
        )
    except accounts.AccountError as error:
        db.session.rollback()
        return _users_page(fields=form, errors={error.field or "username": str(error)}, status=400)
    flash(f"Created user {user.username} with role {user.role.name}.", "info")
    return redirect(url_for(".show_user", user_id=user.id), 303)


def _users_page(fields=None, errors: dict[str, str] | None = None, status: int = 200):
    search, after = request.args.get("q", "")[:200], request.args.get("after") or None
    found = accounts.users_page(search, now=context.now(), after=after, limit=PAGE_SIZE)
    return render_template(
        "admin/users.html", page=found, search=search, after=after, roles=_roles(),
        fields=fields or MultiDict({"role": "user"}), errors=errors or {},
    ), status


@bp.get("/users/<int:user_id>")
@guard
def show_user(user_id: int):
    return _user_page(db.session.get(User, user_id) or abort(404))


@bp.post("/users/<int:user_id>")
@guard
def user_action(user_id: int):
    """One of the user page's forms, named by its `action` field."""
    user = db.session.get(User, user_id) or abort(404)
    action, form, who = request.form.get("action", ""), request.form, _who()
    try:
        if action == "disable":
            ended = accounts.disable_user(user, **who)
            done = f"Disabled {user.username}; {ended} session(s) ended."
        elif action == "enable":
            accounts.enable_user(user, **who)
            done = f"Enabled {user.username}; they can sign in again."
        elif action == "reset_password":
            accounts.set_password(user, form.get("password", ""), **who)
            done = f"Changed the password of {user.username}; their sessions have ended."
        elif action == "sign_out":
            # Signing yourself out everywhere keeps the session you are doing it from.
            keep = g.directory_session if user.id == g.user.id else None
            ended = accounts.sign_out_everywhere(user, keep=keep, **who)
            done = f"Ended {ended} session(s) of {user.username}."
        elif action == "set_role":
            changed = accounts.set_role(user, form.get("role", ""), **who)
            done = f"{user.username} now has role {user.role.name}." if changed else f"{user.username} already had role {user.role.name}."
        else:
            raise accounts.AccountError("choose one of the actions on this page")
    except accounts.AccountError as error:
        db.session.rollback()
        return _user_page(user, errors={action if action in ACTIONS else "": str(error)}, status=400)
    flash(done, "info")
    return redirect(url_for(".show_user", user_id=user.id), 303)


def _user_page(user: User, errors: dict[str, str] | None = None, status: int = 200):
    live = accounts.live_session_counts([user.id], now=context.now()).get(user.id, 0)
    return render_template("admin/users.html", selected=user, live=live, roles=_roles(), errors=errors or {}), status


# --- roles ------------------------------------------------------------------------------------


@bp.get("/roles")
@guard
def list_roles():
    return _roles_page()


@bp.post("/roles")
@guard
def create_role():
    form = request.form
    try:
        role = accounts.create_role(form.get("name", ""), form.getlist("permissions"), form.get("description", ""), **_who())
    except accounts.AccountError as error:
        db.session.rollback()
        return _roles_page(created=(form, {error.field or "name": str(error)}), status=400)
    flash(f"Created role {role.name}.", "info")
    return redirect(url_for(".list_roles"), 303)


@bp.post("/roles/<int:role_id>")
@guard
def update_role(role_id: int):
    role, form = db.session.get(Role, role_id) or abort(404), request.form
    try:
        changes = accounts.update_role(role, form.getlist("permissions"), form.get("description", ""), **_who())
    except accounts.AccountError as error:
        db.session.rollback()
        return _roles_page(edited=(role_id, form, str(error)), status=400)
    flash(f"Saved role {role.name}." if changes else f"Nothing changed for role {role.name}.", "info")
    return redirect(url_for(".list_roles"), 303)


@bp.post("/roles/<int:role_id>/delete")
@guard
def delete_role(role_id: int):
    role = db.session.get(Role, role_id) or abort(404)
    name = role.name
    try:
        accounts.delete_role(role, **_who())
    except accounts.AccountError as error:
        db.session.rollback()
        return _roles_page(edited=(role_id, None, str(error)), status=400)
    flash(f"Deleted role {name}.", "info")
    return redirect(url_for(".list_roles"), 303)


def _roles_page(created=None, edited=None, status: int = 200):
    """Every role with its form. `created` is (form, errors) for a refused new role; `edited`
    is (role id, submitted form or None, message) for a refused change or deletion."""
    roles = _roles()
    forms = {role.id: (MultiDict([("description", role.description)] + [("permissions", p) for p in role.permissions]), None)
             for role in roles}
    if edited is not None:
        role_id, form, message = edited
        forms[role_id] = (form or forms[role_id][0], message)
    fields, errors = created or (MultiDict(), {})
    return render_template(
        "admin/roles.html", roles=roles, forms=forms, holders=accounts.role_holders(),
        permissions=accounts.PERMISSIONS, fields=fields, errors=errors,
    ), status
