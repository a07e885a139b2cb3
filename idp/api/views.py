"""The JSON API for scripts under /api/v1: sessions, settings and the audit trail.

A caller is an OAuth client holding a Bearer access token from the client_credentials grant at
/oidc/token; each route needs one scope, named like the permission it exercises, checked
before anything else runs. Endings go through `sessions.end`/`end_all` (audited as
`api:<client_id>`, Single Logout queued) and settings through `settings.save`, as on the admin
pages. Every error is an RFC 9457 problem. openapi.py describes exactly this, from the limits
and patterns below; tests/test_api_schema.py holds the two together.
"""

from __future__ import annotations

import re
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from enum import Enum
from functools import wraps
from types import NoneType
from typing import NoReturn, get_args, get_type_hints

from flask import Blueprint, Response, abort, g, jsonify, request
from sqlalchemy import select
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.http import HTTP_STATUS_CODES

from directory import accounts, audit, durations, listing, sessions, settings
from directory.db import db
from directory.models import DirectorySession, User
from directory.policy import EndReason
from directory.sessions import digest
from idp import context, whereabouts
from idp.oidc.models import Token

bp = Blueprint("api", __name__, url_prefix="/api/v1")

PAGE_SIZE, MAX_PAGE = 50, 200
MAX_ID = 2**31 - 1  # ids are 32-bit columns
END_REASONS = tuple(reason.value for reason in EndReason)
SESSION_CURSOR = r"[0-9]{1,16}\.[0-9]{1,10}"  # listing.cursor_of: microseconds.id
AUDIT_CURSOR = r"[0-9]{1,10}"  # audit.events_page: an event id
DURATION = r"[0-9]{1,9}[smhd]"
TEXT = r"[^\u0000]*"  # PostgreSQL text cannot hold NUL
DATE_TIME = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"  # RFC 3339
_MISFITS = {TEXT: "must not contain NUL characters", SESSION_CURSOR: "must be the next cursor of an earlier page",
            AUDIT_CURSOR: "must be the next cursor of an earlier page"}
_WORDS = {timedelta: "a duration such as 90s, 30m, 8h or 7d", bool: "true or false", int: "a whole number", str: "a string"}


def problem(status: int, detail: str, headers: dict | None = None, **extra) -> Response:
    """An RFC 9457 problem (`application/problem+json`); `extra` adds members such as `errors`."""
    response = jsonify(type="about:blank", title=HTTP_STATUS_CODES[status], status=status, detail=detail, **extra)
    response.status_code, response.mimetype = status, "application/problem+json"
    response.headers.update(headers or {})
    return response


def refuse(status: int, detail: str, headers: dict | None = None, **extra) -> NoReturn:
    abort(problem(status, detail, headers, **extra))


@bp.errorhandler(HTTPException)
def http_problem(error: HTTPException) -> Response:
    """Werkzeug's own errors (no route, wrong method, bad JSON, 415, 500) as problems."""
    if error.code is None or error.code < 400:  # a redirect from routing (merged slashes): the API never redirects
        return problem(404, "There is no such resource under /api/v1.")
    allow = {"Allow": ", ".join(error.valid_methods)} if isinstance(error, MethodNotAllowed) and error.valid_methods else None
    return problem(error.code, error.description or HTTP_STATUS_CODES[error.code], allow)


@bp.after_request
def _no_store(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def requires(scope: str):
    """The route needs a live access token carrying `scope` (401 without one, 403 without the scope)."""

    def decorate(view):
        @wraps(view)
        def guarded(*args, **kwargs):
            g.api_client = _client_holding(scope)
            return view(*args, **kwargs)

        return guarded

    return decorate


def _client_holding(scope: str) -> str:
    kind, _, value = request.headers.get("Authorization", "").partition(" ")
    if kind.lower() != "bearer" or not value.strip():  # RFC 6750 3.1: no error code when no token was sent
        refuse(401, "Send an access token: Authorization: Bearer <token>.", {"WWW-Authenticate": 'Bearer realm="api"'})
    token = db.session.scalar(select(Token).where(Token.access_token_hash == digest(value.strip())))
    if token is None or token.is_expired() or token.is_revoked():
        refuse(401, "The access token is unknown, expired or revoked.", {"WWW-Authenticate": 'Bearer realm="api", error="invalid_token"'})
    if scope not in token.scope.split():
        refuse(403, f"The access token does not carry the scope {scope}.",
               {"WWW-Authenticate": f'Bearer realm="api", error="insufficient_scope", scope="{scope}"'})
    return token.client_id


def _actor() -> str:
    return f"api:{g.api_client}"


# --- query values: exactly what openapi.py declares, else 400 --------------------------------


def _arg(name: str, pattern: str = TEXT, choices: tuple[str, ...] | None = None) -> str | None:
    value = request.args.get(name)
    if value is not None and (value not in choices if choices else not re.fullmatch(pattern, value)):
        refuse(400, f"{name} must be one of {', '.join(choices)}." if choices else f"{name} {_MISFITS[pattern]}.")
    return value


def _whole(name: str, value: str | None, high: int) -> int | None:
    if value is not None and not (re.fullmatch(r"[0-9]{1,10}", value) and 1 <= int(value) <= high):
        refuse(400, f"{name} must be a whole number from 1 to {high}.")
    return None if value is None else int(value)


def _moment(name: str) -> datetime | None:
    value = request.args.get(name)
    if value is None:
        return None
    try:
        if re.fullmatch(DATE_TIME, value):
            return datetime.fromisoformat(value.upper()).astimezone(UTC)
    except ValueError:
        pass
    refuse(400, f"{name} must be an RFC 3339 date-time, like 2026-01-05T09:00:00Z.")


def _limit() -> int:
    return _whole("limit", request.args.get("limit"), MAX_PAGE) or PAGE_SIZE


# --- sessions ------------------------------------------------------------------------------


@bp.get("/sessions")
@requires("sessions:view")
def list_sessions():
    username = request.args.get("user")
    user = accounts.find_user(username) if username is not None else None
    return _sessions_page(None if username is None else user.id if user else 0)  # 0: nobody's


@bp.get("/users/<username>/sessions")
@requires("sessions:view")
def user_sessions(username: str):
    return _sessions_page(_user(username).id)


def _sessions_page(user_id: int | None):
    wanted = listing.SessionFilter(
        user_id=user_id,
        status=_arg("status", choices=listing.STATUSES),
        app_id=_whole("app", request.args.get("app"), MAX_ID),
        end_reason=_arg("end_reason", choices=END_REASONS),
    )
    limit, after, now = _limit(), _arg("after", SESSION_CURSOR), context.now()
    if after and int(after.partition(".")[2]) > MAX_ID:  # past every id (and PostgreSQL's int4): the rows before the next microsecond
        after = f"{int(after.partition('.')[0]) + 1}.0"
    try:
        page = listing.sessions_page(wanted, now=now, limit=limit, after=after)
    except listing.BadCursor:
        refuse(400, f"after {_MISFITS[SESSION_CURSOR]}.")
    return jsonify(items=_sessions_json(page.rows, page.apps, now), next=page.next_cursor)


@bp.get("/sessions/<session_id>")
@requires("sessions:view")
def get_session(session_id: str):
    row = _session(session_id)
    return jsonify(_sessions_json([row], listing.apps_of([row.id]), context.now())[0])


@bp.delete("/sessions/<session_id>")
@requires("sessions:revoke")
def end_session(session_id: str):
    row = _session(session_id)
    if not sessions.end(row, EndReason.ENDED_BY_ADMIN, now=context.now(), actor_label=_actor()):
        refuse(409, f"Session {row.id} had already ended.")
    return Response(status=204)


@bp.delete("/sessions")
@requires("sessions:revoke")
def end_sessions():
    """Every live session, or with ?user= that user's (none when there is no such user)."""
    username = request.args.get("user")
    user = accounts.find_user(username) if username is not None else None
    if username is not None and user is None:
        return jsonify(ended=0)
    return jsonify(ended=sessions.end_all(reason=EndReason.ENDED_BY_ADMIN, now=context.now(), user=user, actor_label=_actor()))


@bp.delete("/users/<username>/sessions")
@requires("sessions:revoke")
def end_user_sessions(username: str):
    user = _user(username)
    return jsonify(ended=sessions.end_all(reason=EndReason.ENDED_BY_ADMIN, now=context.now(), user=user, actor_label=_actor()))


def _session(raw: str) -> DirectorySession:
    return db.session.get(DirectorySession, _whole("id", raw, MAX_ID)) or refuse(404, f"There is no session {raw}.")


def _user(username: str) -> User:
    return accounts.find_user(username) or refuse(404, "There is no user with that name.")


def _stamp(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _sessions_json(rows: list[DirectorySession], apps: dict, now: datetime) -> list[dict]:
    """Sessions as the API shows them; status and end reason as of `now` (an expiry not yet
    recorded reads ended). One query for the names of the people who ended them."""
    enders = {row.ended_by_id for row in rows} - {None}
    names = dict(db.session.execute(select(User.id, User.username).where(User.id.in_(enders))).all()) if enders else {}
    shown = []
    for row in rows:
        ended_at, reason = row.outcome(now)
        shown.append({
            "id": row.id,
            "user": row.user.username,
            "role": row.user.role.name,
            "ip_address": row.ip_address,
            "location": whereabouts.location(row.ip_address),
            "device": whereabouts.device(row.user_agent),
            "signed_in_at": _stamp(row.created_at),
            "last_activity_at": _stamp(row.last_activity_at),
            "expires_at": _stamp(row.expires_at),
            "status": "ended" if ended_at else "active",
            "ended_at": _stamp(ended_at),
            "end_reason": reason,
            "ended_by": names.get(row.ended_by_id),
            "applications": [{"id": app.id, "name": app.name} for app in apps.get(row.id, [])],
        })
    return shown


# --- settings ------------------------------------------------------------------------------


def setting_kinds() -> dict[str, tuple[type, bool]]:
    """Each setting's value type and whether it may be null, read from SessionSettings itself,
    so a field added there is served, accepted and described without an edit here."""
    hints = get_type_hints(settings.SessionSettings)
    kinds = {}
    for field in fields(settings.SessionSettings):
        options = get_args(hints[field.name]) or (hints[field.name],)
        kinds[field.name] = (next(kind for kind in options if kind is not NoneType), NoneType in options)
    return kinds


def _read_setting(value, kind: type, nullable: bool):
    if value is None and nullable:
        return None
    if issubclass(kind, Enum):
        valid = isinstance(value, str) and value in {member.value for member in kind}
    elif kind is timedelta:
        valid = isinstance(value, str) and re.fullmatch(DURATION, value)
    else:
        valid = type(value) is kind  # bool is not an int here, nor an int a bool
    if not valid:
        words = f"one of {', '.join(member.value for member in kind)}" if issubclass(kind, Enum) else _WORDS[kind]
        raise ValueError(f"must be {words}{' or null' if nullable else ''}")
    return durations.parse(value) if kind is timedelta else kind(value)


@bp.get("/settings")
@requires("sessions:configure")
def get_settings():
    return jsonify(settings.load().as_json())


@bp.put("/settings")
@requires("sessions:configure")
def put_settings():
    """Settings named in the body change, the others keep their values; the admin page's rules
    apply, and nothing is saved unless every value passes."""
    apply_to_existing = _arg("apply_to_existing", choices=("true", "false")) == "true"
    body = request.get_json()  # 415 unless JSON, 400 when malformed
    if not isinstance(body, dict):
        refuse(400, "The body must be a JSON object of settings.")
    kinds, values, errors = setting_kinds(), {}, {}
    for name, value in body.items():
        try:
            if name not in kinds:
                raise ValueError("is not a setting")
            values[name] = _read_setting(value, *kinds[name])
        except ValueError as error:
            errors[name] = str(error)
    new = replace(settings.load(), **values)
    errors = {**new.errors(), **errors}
    if not errors:
        try:
            settings.save(new, now=context.now(), actor=None, actor_label=_actor(), apply_to_existing=apply_to_existing, ip=context.client_ip())
        except settings.InvalidSettings as invalid:
            errors = invalid.errors
    if errors:
        refuse(422, "Nothing was saved: " + "; ".join(f"{name} {message}" for name, message in errors.items()), errors=errors)
    return jsonify(new.as_json())


# --- audit ---------------------------------------------------------------------------------


@bp.get("/audit")
@requires("audit:view")
def list_audit():
    wanted = audit.AuditFilter(
        action=_arg("action"), actor=_arg("actor"), target=_arg("target"), since=_moment("since"), until=_moment("until"),
    )
    after = _arg("after", AUDIT_CURSOR)
    page = audit.events_page(wanted, limit=_limit(), after=after if after and int(after) <= MAX_ID else None)  # every id is below a larger one
    items = [
        {"id": e.id, "at": _stamp(e.at), "action": e.action, "actor": e.actor, "target": e.target, "ip_address": e.ip_address, "detail": e.detail}
        for e in page.rows
    ]
    return jsonify(items=items, next=page.next_cursor)
