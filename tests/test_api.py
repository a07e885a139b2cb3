"""The JSON API under /api/v1, as a script uses it: a client_credentials token from /oidc/token,
one scope per route, RFC 9457 problems for every refusal, and endings that reach applications."""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from directory import logout, sessions, settings
from directory.db import db
from directory.models import AppSession, AuditEvent, LogoutDelivery
from directory.policy import EndReason
from directory.sessions import digest
from idp.api.openapi import DOCUMENT
from idp.oidc import clients
from idp.oidc.models import API_SCOPES, Token
from tests.conftest import START, Portal
from tests.factories import api_token, make_oidc_client, make_user, session_rows

FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
LONDON = "81.2.69.160"  # the bundled GeoLite2 database places it in the United Kingdom
PROBLEM = "application/problem+json"

# Every route, with the one scope it needs.
ROUTES = [
    ("GET", "/api/v1/sessions", "sessions:view"),
    ("GET", "/api/v1/sessions/{id}", "sessions:view"),
    ("DELETE", "/api/v1/sessions/{id}", "sessions:revoke"),
    ("DELETE", "/api/v1/sessions", "sessions:revoke"),
    ("GET", "/api/v1/users/alice/sessions", "sessions:view"),
    ("DELETE", "/api/v1/users/alice/sessions", "sessions:revoke"),
    ("GET", "/api/v1/settings", "sessions:configure"),
    ("PUT", "/api/v1/settings", "sessions:configure"),
    ("GET", "/api/v1/audit", "audit:view"),
]


# --- helpers -------------------------------------------------------------------------------


def sign_in(user, clock, *, ip: str = "10.0.0.1", agent: str = FIREFOX):
    """A live directory session of `user`, opened now."""
    return sessions.open(user, settings.load(), now=clock.now(), ip=ip, user_agent=agent).session


def call(app, method: str, path: str, token: str | None, **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return app.test_client().open(path, method=method, headers=headers, **kwargs)


def client_of(token: str) -> str:
    return db.session.scalar(select(Token.client_id).where(Token.access_token_hash == digest(token)))


def snapshot() -> tuple:
    """What a refused call must leave as it was: sessions, settings, the audit trail."""
    db.session.expire_all()
    rows = [(row.id, row.ended_at, row.end_reason) for row in session_rows()]
    return rows, settings.load(), db.session.scalar(select(func.count()).select_from(AuditEvent))


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.json
    assert body["status"] == status and body["type"] == "about:blank" and body["title"] and body["detail"]
    return body


@pytest.fixture
def alice(app, clock):
    user = make_user("alice")
    sign_in(user, clock)
    return user


@pytest.fixture
def everything(app) -> str:
    return api_token(app, *API_SCOPES, name="Admin script")


# --- authentication and scopes -------------------------------------------------------------


@pytest.mark.parametrize("method, path, scope", ROUTES)
def test_each_route_needs_its_scope_and_changes_nothing_without_it(app, alice, method, path, scope):
    path = path.format(id=session_rows()[0].id)
    others = api_token(app, *(s for s in API_SCOPES if s != scope), name="Almost")
    before = snapshot()

    refused = call(app, method, path, others, json={"max_sessions": 3})
    body = assert_problem(refused, 403)
    assert refused.headers["WWW-Authenticate"] == f'Bearer realm="api", error="insufficient_scope", scope="{scope}"'
    assert scope in body["detail"]
    anonymous = call(app, method, path, None, json={"max_sessions": 3})
    assert_problem(anonymous, 401)
    assert anonymous.headers["WWW-Authenticate"] == 'Bearer realm="api"'  # no token sent: no error code (RFC 6750 3.1)
    assert snapshot() == before

    allowed = call(app, method, path, api_token(app, scope, name="Exact"), json={"max_sessions": 3})
    assert allowed.status_code in (200, 204)


def test_the_document_states_the_scope_each_route_checks():
    declared = {(method.upper(), f"/api/v1{path}", operation["security"][0]["bearer"][0])
                for path, item in DOCUMENT["paths"].items() for method, operation in item.items()}
    assert declared == {(method, path.replace("alice", "{username}"), scope) for method, path, scope in ROUTES}


def test_an_unknown_expired_or_revoked_token_is_refused_with_invalid_token(app, alice, clock):
    token = api_token(app, "sessions:view")
    assert call(app, "GET", "/api/v1/sessions", token).status_code == 200
    expired_soon = api_token(app, "sessions:view", name="Later")
    revoked = api_token(app, "sessions:view", name="Revoked")
    db.session.execute(Token.__table__.update().where(Token.access_token_hash == digest(revoked)).values(revoked_at=clock.now()))
    db.session.commit()
    for presented in ("not-a-token", revoked, token.upper()):
        response = call(app, "GET", "/api/v1/sessions", presented)
        assert_problem(response, 401)
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="api", error="invalid_token"'
    clock.advance(hours=1)
    assert_problem(call(app, "GET", "/api/v1/sessions", expired_soon), 401)


def test_a_browser_session_does_not_open_the_api(app, clock):
    make_user("root", role="admin")
    browser = app.test_client()
    Portal(browser).login("root")
    assert_problem(browser.get("/api/v1/sessions"), 401)
    assert_problem(browser.put("/api/v1/settings", json={"max_sessions": 2}), 401)  # no CSRF page either
    assert settings.load().max_sessions is None


def test_a_token_carries_only_the_api_scopes_its_client_was_registered_with(app):
    viewer, secret = make_oidc_client("Viewer", redirect_uris=[], grant_types=["client_credentials"], scopes=["sessions:view"])
    answer = app.test_client().post("/oidc/token", data={"grant_type": "client_credentials", "scope": "sessions:view sessions:revoke"},
                                    auth=(viewer.client_id, secret))
    assert answer.json["scope"] == "sessions:view"
    assert_problem(call(app, "DELETE", "/api/v1/sessions", answer.json["access_token"]), 403)


def test_clients_create_registers_api_scopes_from_the_command_line(app):
    runner = app.test_cli_runner()
    created = runner.invoke(args=["clients", "create", "--name", "Nightly", "--grant-type", "client_credentials",
                                  "--scope", "sessions:view", "--scope", "audit:view", "--json"])
    assert created.exit_code == 0, created.output
    listed = runner.invoke(args=["clients", "list", "--json"])
    assert '"scope": "audit:view sessions:view"' in listed.output
    refused = runner.invoke(args=["clients", "create", "--name", "Odd", "--grant-type", "client_credentials", "--scope", "root"])
    assert refused.exit_code == 1 and "scopes must be among" in refused.output


@pytest.mark.parametrize("spec, message", [
    ({"grant_types": ["client_credentials"], "scopes": ["sessions:everything"]}, "scopes must be among"),
    ({"grant_types": ["authorization_code", "client_credentials"], "scopes": ["sessions:view"]}, "client_credentials grant alone"),
])
def test_api_scopes_are_registered_only_for_service_clients(app, spec, message):
    with pytest.raises(clients.ClientError, match=message):
        clients.register(clients.Registration(name="Odd", redirect_uris=["https://odd.example/cb"], **spec), now=START)


def test_a_person_signing_in_to_an_app_never_gets_api_scopes(app):
    client, _ = make_oidc_client("CRM")
    assert client.get_allowed_scope("openid sessions:revoke audit:view") == "openid"


# --- sessions ------------------------------------------------------------------------------


def test_a_session_reads_with_who_where_what_and_its_applications(app, clock, everything):
    alice = make_user("alice", role="session-manager")
    row = sign_in(alice, clock, ip=LONDON)
    crm = make_oidc_client("CRM")[0].app
    logout.join(row, crm, subject="alice", now=clock.now())
    db.session.commit()
    clock.advance(minutes=5)
    shown = call(app, "GET", f"/api/v1/sessions/{row.id}", everything).json
    assert shown == {
        "id": row.id, "user": "alice", "role": "session-manager", "ip_address": LONDON,
        "location": shown["location"], "device": "Firefox 133 on Windows",
        "signed_in_at": "2026-01-05T09:00:00+00:00", "last_activity_at": "2026-01-05T09:00:00+00:00",
        "expires_at": "2026-01-05T09:30:00+00:00", "status": "active", "ended_at": None, "end_reason": None, "ended_by": None,
        "applications": [{"id": crm.id, "name": "CRM"}],
    }
    assert shown["location"].endswith("United Kingdom")
    other = sign_in(make_user("bob"), clock, ip="192.168.1.20")
    assert call(app, "GET", f"/api/v1/sessions/{other.id}", everything).json["location"] == "Private network"


def test_ending_a_session_ends_its_applications_queues_logout_and_audits_the_client(app, alice, clock, everything):
    row = session_rows()[0]
    crm = make_oidc_client("CRM")[0].app
    logout.join(row, crm, subject="alice", now=clock.now())
    db.session.commit()

    response = call(app, "DELETE", f"/api/v1/sessions/{row.id}", everything)
    assert response.status_code == 204 and response.data == b""
    (ended,) = session_rows()
    assert ended.end_reason == EndReason.ENDED_BY_ADMIN
    assert db.session.scalar(select(AppSession.end_reason)) == logout.DIRECTORY_SIGNOUT
    assert [(d.channel, d.status) for d in db.session.scalars(select(LogoutDelivery))] == [("back", "pending")]
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "session.ended"))
    assert (event.actor, event.target, event.detail["reason"]) == (f"api:{client_of(everything)}", f"session {row.id}", "ended_by_admin")

    again = call(app, "DELETE", f"/api/v1/sessions/{row.id}", everything)
    assert "already ended" in assert_problem(again, 409)["detail"]
    shown = call(app, "GET", f"/api/v1/sessions/{row.id}", everything).json
    assert (shown["status"], shown["end_reason"], shown["ended_at"]) == ("ended", "ended_by_admin", "2026-01-05T09:00:00+00:00")


def test_ending_all_sessions_or_one_users(app, clock, everything):
    alice, bob = make_user("alice"), make_user("bob")
    for user in (alice, alice, bob, bob):
        sign_in(user, clock)
    assert call(app, "DELETE", "/api/v1/users/alice/sessions", everything).json == {"ended": 2}
    assert call(app, "DELETE", "/api/v1/sessions?user=nobody", everything).json == {"ended": 0}
    assert_problem(call(app, "DELETE", "/api/v1/users/nobody/sessions", everything), 404)
    assert [row.ended_at is None for row in session_rows()] == [False, False, True, True]
    assert call(app, "DELETE", "/api/v1/sessions?user=BOB", everything).json == {"ended": 2}
    sign_in(alice, clock)
    assert call(app, "DELETE", "/api/v1/sessions", everything).json == {"ended": 1}
    assert all(row.ended_at is not None for row in session_rows())


def test_lists_filter_and_page_by_most_recent_activity(app, clock, everything):
    alice, bob = make_user("alice"), make_user("bob")
    opened = []
    for user in (alice, bob, alice, bob, alice):
        opened.append(sign_in(user, clock).id)
        clock.advance(minutes=1)
    crm = make_oidc_client("CRM")[0].app
    logout.join(db.session.get(type(session_rows()[0]), opened[0]), crm, subject="alice", now=clock.now())
    db.session.commit()
    sessions.end(session_rows()[1], EndReason.SIGNED_OUT, now=clock.now(), actor=bob)

    seen, after = [], None
    while True:
        page = call(app, "GET", "/api/v1/sessions?limit=2" + (f"&after={after}" if after else ""), everything).json
        seen += [item["id"] for item in page["items"]]
        after = page["next"]
        if after is None:
            break
    assert seen == opened[::-1]

    def ids(query: str, path: str = "/api/v1/sessions") -> list[int]:
        return [item["id"] for item in call(app, "GET", f"{path}?{query}", everything).json["items"]]

    assert ids("user=alice") == ids("", "/api/v1/users/alice/sessions") == [opened[4], opened[2], opened[0]]
    assert ids("user=nobody") == []
    assert ids("status=ended") == [opened[1]]
    assert ids("status=ended&end_reason=signed_out") == [opened[1]]
    assert ids(f"app={crm.id}") == [opened[0]]
    assert call(app, "GET", f"/api/v1/sessions/{opened[1]}", everything).json["ended_by"] == "bob"
    clock.advance(minutes=31)  # every session is past its inactivity deadline, recorded or not
    assert ids("status=active") == []


@pytest.mark.parametrize("path", [
    "/api/v1/sessions?status=gone", "/api/v1/sessions?limit=0", "/api/v1/sessions?limit=201", "/api/v1/sessions?limit=ten",
    "/api/v1/sessions?after=abc", "/api/v1/sessions?after=1.2.3", "/api/v1/sessions?app=x", "/api/v1/sessions?app=-1",
    "/api/v1/sessions?end_reason=bored", "/api/v1/sessions/abc", "/api/v1/sessions/0", "/api/v1/sessions/99999999999",
    "/api/v1/users/alice/sessions?status=gone", "/api/v1/audit?since=yesterday", "/api/v1/audit?until=2026-01-05",
    "/api/v1/audit?after=x", "/api/v1/audit?action=a%00b", "/api/v1/audit?limit=500",
])
def test_bad_query_and_path_values_are_400_problems(app, alice, everything, path):
    assert_problem(call(app, "GET", path, everything), 400)


def test_cursors_past_every_id_page_as_if_after_the_last_row(app, clock, everything):
    """A cursor's id beyond any row (and PostgreSQL's 32-bit ids) is no error: nothing lies past it."""
    alice = make_user("alice")
    first, second = sign_in(alice, clock).id, sign_in(alice, clock).id
    micros = round(START.timestamp() * 1_000_000)
    page = call(app, "GET", f"/api/v1/sessions?after={micros}.9999999999", everything).json
    assert [item["id"] for item in page["items"]] == [second, first]
    assert call(app, "GET", f"/api/v1/sessions?after={micros - 1}.9999999999", everything).json["items"] == []
    everything_audited = call(app, "GET", "/api/v1/audit?limit=200", everything).json["items"]
    assert call(app, "GET", "/api/v1/audit?after=9999999999&limit=200", everything).json["items"] == everything_audited


def test_unknown_routes_and_methods_are_problems_too(app, everything):
    assert_problem(call(app, "GET", "/api/v1/nothing", everything), 404)
    assert_problem(call(app, "GET", "/api/v1", None), 404)
    assert_problem(call(app, "GET", "/api/v1/sessions/12", everything), 404)
    refused = call(app, "POST", "/api/v1/sessions", everything)
    assert_problem(refused, 405)
    assert set(refused.headers["Allow"].split(", ")) >= {"GET", "DELETE"}
    assert call(app, "GET", "/not-the-api", None).mimetype == "text/html"  # the rest of the site keeps its pages


# --- settings ------------------------------------------------------------------------------


def test_settings_read_as_the_cli_shows_them_one_member_per_field(app, everything):
    shown = call(app, "GET", "/api/v1/settings", everything).json
    assert shown == settings.load().as_json()
    assert list(shown) == sorted(f.name for f in fields(settings.SessionSettings))
    assert set(DOCUMENT["components"]["schemas"]["Settings"]["properties"]) == {f.name for f in fields(settings.SessionSettings)}


def test_putting_settings_changes_the_named_ones_and_audits_the_client(app, alice, clock, everything):
    response = call(app, "PUT", "/api/v1/settings", everything, json={"inactivity": "2h", "max_sessions": 3, "on_limit": "refuse"})
    assert response.status_code == 200
    stored = settings.load()
    assert (stored.inactivity, stored.max_sessions, stored.on_limit.value, stored.absolute) == (timedelta(hours=2), 3, "refuse", timedelta(hours=8))
    assert response.json == stored.as_json()
    changed = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "settings.changed")).all()
    assert {(e.actor, e.target) for e in changed} == {(f"api:{client_of(everything)}", name) for name in ("inactivity", "max_sessions", "on_limit")}
    assert session_rows()[0].inactivity_seconds == 30 * 60  # live sessions keep their limits...
    call(app, "PUT", "/api/v1/settings?apply_to_existing=true", everything, json={"inactivity": "1h"})
    assert session_rows()[0].inactivity_seconds == 3600  # ...unless asked
    assert call(app, "PUT", "/api/v1/settings", everything, json={"inactivity": None}).json["inactivity"] is None


@pytest.mark.parametrize("body, errors", [
    ({"inactivity": "10h", "absolute": "9h"}, {"inactivity": "must not be longer than the absolute timeout"}),
    ({"absolute": "1m", "retention": "0d", "inactivity": None}, {"absolute": "must be between 5 minutes and 365 days", "retention": "must be between 1 day and 3650 days"}),
    ({"max_sessions": 0, "signout_url": "javascript:alert(1)"},
     {"max_sessions": "must be between 1 and 100", "signout_url": "must be an http(s) URL or a path on this site starting with /"}),
    ({"persistent_login": "yes", "on_limit": "panic", "absolute": "8 hours", "max_sessions": True, "colour": "blue"},
     {"persistent_login": "must be true or false", "on_limit": "must be one of end-oldest, refuse",
      "absolute": "must be a duration such as 90s, 30m, 8h or 7d", "max_sessions": "must be a whole number or null",
      "colour": "is not a setting"}),
])
def test_invalid_settings_are_a_422_problem_per_field_and_nothing_is_saved(app, everything, body, errors):
    before = snapshot()
    response = call(app, "PUT", "/api/v1/settings", everything, json={"persistent_login": True, **body})
    assert assert_problem(response, 422)["errors"] == errors
    assert snapshot() == before


def test_a_settings_body_must_be_a_json_object(app, everything):
    assert_problem(call(app, "PUT", "/api/v1/settings", everything, data="max_sessions=3"), 415)
    assert_problem(call(app, "PUT", "/api/v1/settings", everything, data="{", content_type="application/json"), 400)
    assert_problem(call(app, "PUT", "/api/v1/settings", everything, json=[1, 2]), 400)
    assert_problem(call(app, "PUT", "/api/v1/settings?apply_to_existing=yes", everything, json={}), 400)


# --- audit ---------------------------------------------------------------------------------


def test_the_audit_trail_filters_and_pages(app, clock, everything):
    alice = make_user("alice")
    for _ in range(3):
        sign_in(alice, clock)
        clock.advance(minutes=10)
    events = call(app, "GET", "/api/v1/audit?action=signin.success&limit=2", everything).json
    assert [e["action"] for e in events["items"]] == ["signin.success"] * 2 and events["next"]
    rest = call(app, "GET", f"/api/v1/audit?action=signin.success&after={events['next']}", everything).json
    assert len(rest["items"]) == 1 and rest["next"] is None
    assert [e["at"] for e in call(app, "GET", "/api/v1/audit?action=signin.success&since=2026-01-05T09:10:00Z&until=2026-01-05T09:20:00Z",
                                   everything).json["items"]] == ["2026-01-05T09:10:00+00:00"]
    assert call(app, "GET", "/api/v1/audit?actor=alice&target=nobody", everything).json["items"] == []


def test_the_openapi_document_is_public_and_3_1(app):
    response = app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.json["openapi"] == "3.1.0"
    scheme = response.json["components"]["securitySchemes"]["bearer"]
    assert set(scheme["flows"]["clientCredentials"]["scopes"]) == set(API_SCOPES)
