"""The OpenAPI 3.1 description of /api/v1, served at /api/v1/openapi.json without a token.

Limits, patterns and choices come from views.py and the settings schema from SessionSettings,
so the document says what the code does; tests/test_api_schema.py runs schemathesis against it.
"""

from __future__ import annotations

from datetime import timedelta
from enum import Enum

from flask import jsonify

from directory import listing
from idp.api import views
from idp.oidc.models import API_SCOPES

SCOPE_WORDS = {
    "sessions:view": "List and read directory sessions.",
    "sessions:revoke": "End directory sessions (their applications are signed out through Single Logout).",
    "sessions:configure": "Read and change the session settings.",
    "users:manage": "Manage users (no /api/v1 route yet).",
    "apps:manage": "Manage applications (no /api/v1 route yet).",
    "audit:view": "Read the audit trail.",
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problem(description: str, headers: dict | None = None) -> dict:
    answer = {"description": description, "content": {"application/problem+json": {"schema": _ref("Problem")}}}
    return {**answer, "headers": headers} if headers else answer


_CHALLENGE = {"WWW-Authenticate": {"required": True, "description": "The Bearer challenge (RFC 6750).", "schema": {"type": "string"}}}
_PROBLEMS = {
    "400": _problem("A query or path value is not what this document allows (details in `detail`)."),
    "401": _problem("No access token, or one that is unknown, expired or revoked.", _CHALLENGE),
    "403": _problem("The access token lacks this route's scope (`error=\"insufficient_scope\"`).", _CHALLENGE),
    "404": _problem("No such session or user."),
}


def _operation(summary: str, scope: str, ok: dict, *errors: str, parameters: list | None = None, **more) -> dict:
    """One operation: its scope, its success answer and the problems it can give besides 401/403."""
    responses = {**ok, "401": _PROBLEMS["401"], "403": _PROBLEMS["403"]}
    for code in errors:
        responses[code] = more.pop(f"problem_{code}", None) or _PROBLEMS[code]
    return {"summary": summary, "security": [{"bearer": [scope]}], "parameters": parameters or [], "responses": responses, **more}


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def _path(name: str, schema: dict) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema}


_ID = {"type": "integer", "minimum": 1, "maximum": views.MAX_ID}
_TEXT = {"type": "string", "pattern": f"^{views.TEXT}$"}
_LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": views.MAX_PAGE, "default": views.PAGE_SIZE}, "Items per page.")
_SESSION_FILTERS = [
    _query("status", {"type": "string", "enum": list(listing.STATUSES)}, "active: alive now; ended: ended or past its deadline."),
    _query("app", _ID, "Only sessions that signed in to this application (its id)."),
    _query("end_reason", {"type": "string", "enum": list(views.END_REASONS)}, "Only sessions that ended for this reason."),
    _LIMIT,
    _query("after", {"type": "string", "pattern": f"^{views.SESSION_CURSOR}$"}, "The `next` cursor of the previous page."),
]
_USER_QUERY = _query("user", {"type": "string"}, "Only this user's sessions (by username; no such user matches nothing).")
_USERNAME = _path("username", {"type": "string", "minLength": 1})
_SESSION_ID = _path("id", _ID)
_ENDED = _json({"type": "object", "required": ["ended"], "additionalProperties": False,
                "properties": {"ended": {"type": "integer", "minimum": 0}}}, "How many live sessions this ended.")


def _setting_schema(kind: type, nullable: bool) -> dict:
    if issubclass(kind, Enum):
        schema = {"type": "string", "enum": [member.value for member in kind]}
    else:
        schema = {
            timedelta: {"type": "string", "pattern": f"^{views.DURATION}$", "description": "A duration: 90s, 30m, 8h, 7d."},
            bool: {"type": "boolean"},
            int: {"type": "integer"},
            str: {"type": "string"},
        }[kind]
    if nullable:
        schema = {**schema, "type": [schema["type"], "null"]}
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    return schema


_SETTINGS = {name: _setting_schema(*kind) for name, kind in views.setting_kinds().items()}
_STAMP = {"type": "string", "format": "date-time"}
_MAYBE_STAMP = {"type": ["string", "null"], "format": "date-time"}

SCHEMAS = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "const": "about:blank"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "errors": {"type": "object", "description": "Per field: what is wrong with it.", "additionalProperties": {"type": "string"}},
        },
    },
    "Session": {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "user", "role", "ip_address", "location", "device", "signed_in_at", "last_activity_at", "expires_at",
                     "status", "ended_at", "end_reason", "ended_by", "applications"],
        "properties": {
            "id": _ID,
            "user": {"type": "string", "description": "The username."},
            "role": {"type": "string"},
            "ip_address": {"type": "string"},
            "location": {"type": "string", "description": "City and country, \"Private network\", or \"Unknown location\"."},
            "device": {"type": "string", "description": "Browser and operating system, or \"Unknown device\"."},
            "signed_in_at": _STAMP,
            "last_activity_at": _STAMP,
            "expires_at": {**_STAMP, "description": "The earlier of the inactivity and absolute deadlines."},
            "status": {"type": "string", "enum": list(listing.STATUSES)},
            "ended_at": _MAYBE_STAMP,
            "end_reason": {"type": ["string", "null"], "enum": [*views.END_REASONS, None]},
            "ended_by": {"type": ["string", "null"], "description": "The username of the person who ended it, when a person did."},
            "applications": {
                "type": "array",
                "description": "The applications this session signed in to.",
                "items": {"type": "object", "additionalProperties": False, "required": ["id", "name"],
                          "properties": {"id": _ID, "name": {"type": "string"}}},
            },
        },
    },
    "SessionPage": {
        "type": "object",
        "additionalProperties": False,
        "required": ["items", "next"],
        "properties": {
            "items": {"type": "array", "items": _ref("Session")},
            "next": {"type": ["string", "null"], "pattern": f"^{views.SESSION_CURSOR}$", "description": "Pass as `after` for the next page; null on the last."},
        },
    },
    "Settings": {"type": "object", "additionalProperties": False, "required": list(_SETTINGS), "properties": _SETTINGS},
    "SettingsChange": {
        "type": "object",
        "description": "The settings to change; those left out keep their values.",
        "additionalProperties": False,
        "properties": _SETTINGS,
    },
    "AuditEvent": {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "at", "action", "actor", "target", "ip_address", "detail"],
        "properties": {
            "id": _ID,
            "at": _STAMP,
            "action": {"type": "string"},
            "actor": {"type": "string", "description": "A username, or a label such as cli, system, api:<client_id>."},
            "target": {"type": "string"},
            "ip_address": {"type": "string"},
            "detail": {"type": "object"},
        },
    },
    "AuditPage": {
        "type": "object",
        "additionalProperties": False,
        "required": ["items", "next"],
        "properties": {
            "items": {"type": "array", "items": _ref("AuditEvent")},
            "next": {"type": ["string", "null"], "pattern": f"^{views.AUDIT_CURSOR}$"},
        },
    },
}

DOCUMENT = {
    "openapi": "3.1.0",
    "info": {
        "title": "Directory API",
        "version": "1",
        "description": "Sessions, session settings and the audit trail, for scripts. Authenticate with a Bearer access token "
                       "from the client_credentials grant at /oidc/token, asking for the scopes the client was registered with "
                       "(`clients create --grant-type client_credentials --scope sessions:view ...`). Errors are RFC 9457 problems.",
    },
    "servers": [{"url": "/api/v1"}],
    "components": {
        "securitySchemes": {
            "bearer": {
                "type": "oauth2",
                "description": "Authorization: Bearer <access token>",
                "flows": {"clientCredentials": {"tokenUrl": "/oidc/token", "scopes": {scope: SCOPE_WORDS[scope] for scope in API_SCOPES}}},
            },
        },
        "schemas": SCHEMAS,
    },
    "paths": {
        "/sessions": {
            "get": _operation(
                "List sessions, most recent activity first.", "sessions:view",
                {"200": _json(_ref("SessionPage"), "A page of sessions.")}, "400",
                parameters=[_USER_QUERY, *_SESSION_FILTERS],
            ),
            "delete": _operation(
                "End every live session, or one user's.", "sessions:revoke", {"200": _ENDED},
                parameters=[_query("user", {"type": "string"}, "Only this user's sessions (no such user: none end).")],
            ),
        },
        "/sessions/{id}": {
            "get": _operation("One session.", "sessions:view", {"200": _json(_ref("Session"), "The session.")}, "400", "404",
                              parameters=[_SESSION_ID]),
            "delete": _operation(
                "End one session.", "sessions:revoke", {"204": {"description": "Ended; its applications are being signed out."}},
                "400", "404", "409", parameters=[_SESSION_ID], problem_409=_problem("The session had already ended."),
            ),
        },
        "/users/{username}/sessions": {
            "get": _operation("One user's sessions.", "sessions:view", {"200": _json(_ref("SessionPage"), "A page of sessions.")},
                              "400", "404", parameters=[_USERNAME, *_SESSION_FILTERS]),
            "delete": _operation("End every live session of one user.", "sessions:revoke", {"200": _ENDED}, "404", parameters=[_USERNAME]),
        },
        "/settings": {
            "get": _operation("The session settings.", "sessions:configure", {"200": _json(_ref("Settings"), "The settings.")}),
            "put": _operation(
                "Change session settings, with the admin page's rules.", "sessions:configure",
                {"200": _json(_ref("Settings"), "The settings now in force.")}, "400", "415", "422",
                parameters=[_query("apply_to_existing", {"type": "string", "enum": ["true", "false"]},
                                   "true: live sessions take the new timeouts too (from their own sign-in and last activity).")],
                requestBody={"required": True, "content": {"application/json": {"schema": _ref("SettingsChange")}}},
                problem_400=_problem("The body is not a JSON object, or apply_to_existing is neither true nor false."),
                problem_415=_problem("The body is not JSON (Content-Type: application/json)."),
                problem_422=_problem("A value breaks a rule; `errors` says which and why. Nothing was saved."),
            ),
        },
        "/audit": {
            "get": _operation(
                "Audit events, newest first.", "audit:view", {"200": _json(_ref("AuditPage"), "A page of events.")}, "400",
                parameters=[
                    _query("action", _TEXT, "Only this action, e.g. session.ended."),
                    _query("actor", _TEXT, "Only this actor (username or label)."),
                    _query("target", _TEXT, "Only this target."),
                    _query("since", {"type": "string", "format": "date-time"}, "Only events at or after this instant."),
                    _query("until", {"type": "string", "format": "date-time"}, "Only events before this instant."),
                    _LIMIT,
                    _query("after", {"type": "string", "pattern": f"^{views.AUDIT_CURSOR}$"}, "The `next` cursor of the previous page."),
                ],
            ),
        },
    },
}


@views.bp.get("/openapi.json")
def openapi_json():
    return jsonify(DOCUMENT)
