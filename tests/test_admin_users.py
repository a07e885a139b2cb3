"""The users page, /admin/users, as admins use it through a browser, and the `users` commands.

Each test does one thing through a browser or the CLI, then checks what people see (status,
page text, where their browser is sent) and what the database holds (users, sessions, app
sessions, logout notices, audit events).
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from directory import accounts, logout
from directory.db import db
from directory.models import AppSession, AuditEvent, LogoutDelivery, Role, User
from tests.conftest import PASSWORD, START, Portal
from tests.factories import make_app_record, make_oidc_client, make_user, session_rows
from tests.test_admin_apps import access_token_for, audit_events, post, sent_to_sign_in, sign_in
from tests.test_cli import assert_error, cli, ok, snapshot

ADMIN = "root"
PAGE = "/admin/users"
NEW_PASSWORD = "a brand new passphrase"
DISABLED_MESSAGE = "Your account was disabled by an administrator."


# --- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def admin(app):
    """The admin's browser, signed in."""
    return sign_in(app, ADMIN, "admin")


@pytest.fixture
def alice(app) -> Portal:
    """Alice's browser, signed in, with an application session in her directory session (an
    app offering back-channel logout), as after her first sign-in to it."""
    browser = Portal(app.test_client())
    make_user("alice", email="alice@example.org", display_name="Alice Liddell")
    assert browser.login("alice").status_code == 303
    logout.join(session_rows()[-1], make_app_record("CRM", backchannel_logout=True), subject="alice", now=START)
    db.session.commit()
    return browser


def user_named(username: str) -> User:
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.username == username))


def act(browser, username: str, action: str, **form):
    """Post one of the user page's forms."""
    return post(browser, f"{PAGE}/{user_named(username).id}", {"action": action, **form})


def text(response) -> str:
    return response.get_data(as_text=True)


def live_sessions(username: str) -> list:
    return [row for row in session_rows(user_named(username)) if row.ended_at is None]


def where_sent(browser) -> str:
    """The page a browser lands on when it next asks for the home page."""
    return text(browser.get("/", follow_redirects=True))


def new_user(**changes) -> dict:
    form = {"username": "Carol", "email": "carol@example.org", "display_name": "Carol C", "role": "session-manager",
            "password": NEW_PASSWORD, **changes}
    return {name: value for name, value in form.items() if value is not None}


def routes(user_id: int) -> dict[str, tuple[str, str, dict]]:
    """Every route of the users and roles pages: (method, path, a valid form)."""
    role_id = db.session.scalar(select(Role.id).where(Role.name == "user"))
    return {
        "list": ("GET", PAGE, {}),
        "create": ("POST", PAGE, new_user()),
        "show": ("GET", f"{PAGE}/{user_id}", {}),
        "disable": ("POST", f"{PAGE}/{user_id}", {"action": "disable"}),
        "enable": ("POST", f"{PAGE}/{user_id}", {"action": "enable"}),
        "reset_password": ("POST", f"{PAGE}/{user_id}", {"action": "reset_password", "password": NEW_PASSWORD}),
        "sign_out": ("POST", f"{PAGE}/{user_id}", {"action": "sign_out"}),
        "set_role": ("POST", f"{PAGE}/{user_id}", {"action": "set_role", "role": "admin"}),
        "roles": ("GET", "/admin/roles", {}),
        "create_role": ("POST", "/admin/roles", {"name": "auditor", "permissions": ["audit:view"]}),
        "update_role": ("POST", f"/admin/roles/{role_id}", {"permissions": list(accounts.PERMISSIONS)}),
        "delete_role": ("POST", f"/admin/roles/{role_id}/delete", {}),
    }


ROUTES = ["list", "create", "show", "disable", "enable", "reset_password", "sign_out", "set_role",
          "roles", "create_role", "update_role", "delete_role"]


# --- who may use the pages -------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("role", ["user", "session-manager"])
def test_every_route_is_forbidden_without_users_manage_and_changes_nothing(app, alice, role, route):
    browser = sign_in(app, "bob", role)
    if route == "enable":
        accounts.disable_user(user_named("alice"), now=START)
    method, path, form = routes(user_named("alice").id)[route]
    before = snapshot()

    response = browser.get(path) if method == "GET" else post(browser, path, form)

    assert response.status_code == 403
    assert snapshot() == before


@pytest.mark.parametrize("route", ["list", "show", "roles"])
def test_an_anonymous_visitor_is_sent_to_sign_in(app, alice, route):
    method, path, _ = routes(user_named("alice").id)[route]

    assert sent_to_sign_in(app.test_client().get(path))


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(app, admin, alice):
    before = snapshot()

    response = admin.post(f"{PAGE}/{user_named('alice').id}", data={"action": "disable"})

    assert response.status_code == 400
    assert snapshot() == before


def test_the_navigation_links_to_users_only_for_those_who_may_manage_them(app, admin):
    other = sign_in(app, "bob", "session-manager")

    assert f'href="{PAGE}"' in text(admin.get("/"))
    assert f'href="{PAGE}"' not in text(other.get("/"))


# --- the list ----------------------------------------------------------------------------------


def test_the_list_shows_each_user_with_role_status_and_live_session_count(app, admin, alice):
    make_user("bob", role="session-manager")
    accounts.disable_user(user_named("bob"), now=START)

    page = text(admin.get(PAGE))

    rows = {name: page.split(f">{name}</a>")[1].split("</tr>")[0] for name in ("alice", "bob", ADMIN)}
    assert all(cell in rows["alice"] for cell in ("Alice Liddell", "alice@example.org", "<td>user</td>", "<td>active</td>", "<td>1</td>"))
    assert all(cell in rows["bob"] for cell in ("<td>session-manager</td>", "<td>disabled</td>", "<td>0</td>"))
    assert "<td>admin</td>" in rows[ADMIN]


@pytest.mark.parametrize("search", ["LIDD", "@example.org", "alic"])
def test_search_matches_username_email_or_display_name_in_any_case(app, admin, alice, search):
    make_user("bob", email="bob@example.net", display_name="Robert")

    page = text(admin.get(PAGE, query_string={"q": search}))

    assert ">alice</a>" in page
    assert ">bob</a>" not in page and f">{ADMIN}</a>" not in page


def test_search_takes_percent_and_underscore_literally(app, admin):
    make_user("a_b")
    make_user("axb")

    page = text(admin.get(PAGE, query_string={"q": "a_"}))

    assert ">a_b</a>" in page and ">axb</a>" not in page


def test_the_list_pages_by_username_fifty_at_a_time(app, admin):
    role = db.session.scalar(select(Role).where(Role.name == "user"))
    db.session.add_all(User(username=f"user{n:03}", password_hash="-", role=role, created_at=START) for n in range(60))
    db.session.commit()
    names = [ADMIN] + [f"user{n:03}" for n in range(60)]  # by username

    first = text(admin.get(PAGE))
    second = text(admin.get(PAGE, query_string={"after": "user048"}))

    assert [name for name in names if f">{name}</a>" in first] == names[:50]
    assert 'href="/admin/users?after=user048">Next page' in first and "First page" not in first
    assert [name for name in names if f">{name}</a>" in second] == names[50:]
    assert "Next page" not in second and "First page" in second


# --- creating ----------------------------------------------------------------------------------


def test_creating_a_user_stores_them_with_the_role_and_audits_it(app, admin):
    response = post(admin, PAGE, new_user())

    carol = user_named("carol")
    assert response.status_code == 303 and response.location.endswith(f"{PAGE}/{carol.id}")
    assert (carol.email, carol.display_name, carol.role.name, carol.disabled) == ("carol@example.org", "Carol C", "session-manager", False)
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "user.created", AuditEvent.target == "carol"))
    assert (event.actor, event.ip_address, event.detail) == (ADMIN, "127.0.0.1", {"role": "session-manager"})
    assert Portal(app.test_client()).login("carol", NEW_PASSWORD).status_code == 303


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"username": "bad name"}, "a username is 1 to 150"),
        ({"username": "ALICE"}, "user &#39;alice&#39; already exists"),
        ({"password": "short"}, "a password is 8 to 1024 characters long"),
        ({"role": "nobody"}, "there is no role &#39;nobody&#39;"),
        ({"email": "not-an-address"}, "an email address looks like"),
        ({"display_name": "x" * 201}, "a display name is at most 200 characters"),
    ],
)
def test_creating_a_user_with_bad_input_is_refused_with_the_reason_and_changes_nothing(app, admin, alice, changes, message):
    before = snapshot()

    response = post(admin, PAGE, new_user(**changes))

    assert response.status_code == 400
    assert message in text(response) and "Nothing was created" in text(response)
    assert snapshot() == before


# --- disabling and enabling --------------------------------------------------------------------


def test_disabling_ends_the_users_sessions_and_app_sessions_and_queues_their_logout_notices(app, admin, alice):
    response = act(admin, "alice", "disable")

    assert response.status_code == 303
    assert user_named("alice").disabled
    [ended] = session_rows(user_named("alice"))
    assert (ended.end_reason, ended.ended_at, ended.ended_by_id) == ("user_disabled", START, user_named(ADMIN).id)
    app_session = db.session.scalar(select(AppSession))
    assert app_session.ended_at == START
    assert [(d.channel, d.status) for d in db.session.scalars(select(LogoutDelivery))] == [("back", "pending")]
    assert [event[0] for event in audit_events("user.disabled")] == [ADMIN]
    assert audit_events("session.ended")[-1][2] == {"reason": "user_disabled"}


def test_a_disabled_users_browser_is_sent_to_sign_in_and_told_why(app, admin, alice):
    act(admin, "alice", "disable")

    assert sent_to_sign_in(alice.client.get("/"))
    assert DISABLED_MESSAGE in where_sent(alice.client)


def test_a_disabled_user_cannot_sign_in_and_the_failure_is_audited(app, admin, alice):
    act(admin, "alice", "disable")

    response = Portal(app.test_client()).login("alice")

    assert response.status_code == 401
    assert audit_events("signin.failure")[-1] == ("system", "alice", {"reason": "disabled"})
    assert live_sessions("alice") == []


def test_disabling_stops_the_tokens_of_an_oidc_app_the_user_signed_in_to(app, admin):
    make_user("alice")
    client, secret = make_oidc_client("CRM")
    rp, tokens = access_token_for(app, client.client_id, secret)
    assert rp.introspect(tokens["access_token"])["active"] is True

    act(admin, "alice", "disable")

    assert rp.introspect(tokens["access_token"])["active"] is False
    assert "error" in rp.refresh(tokens["refresh_token"])
    assert [(d.app_session.app.name, d.channel, d.status) for d in db.session.scalars(select(LogoutDelivery))] == [("CRM", "back", "pending")]


def test_enabling_lets_a_disabled_user_sign_in_again(app, admin, alice):
    act(admin, "alice", "disable")

    response = act(admin, "alice", "enable")

    assert response.status_code == 303 and not user_named("alice").disabled
    assert [event[0] for event in audit_events("user.enabled")] == [ADMIN]
    assert Portal(app.test_client()).login("alice").status_code == 303


def test_an_admin_cannot_disable_themselves(app, admin):
    before = snapshot()

    response = act(admin, ADMIN, "disable")

    assert response.status_code == 400 and "you cannot disable your own account" in text(response)
    assert snapshot() == before
    assert admin.get(PAGE).status_code == 200


@pytest.mark.parametrize(("action", "message"), [("disable", "is already disabled"), ("enable", "is not disabled"), ("explode", "choose one of the actions")])
def test_an_action_that_does_not_apply_is_refused_and_changes_nothing(app, admin, alice, action, message):
    if action == "disable":
        accounts.disable_user(user_named("alice"), now=START)
    before = snapshot()

    response = act(admin, "alice", action)

    assert response.status_code == 400 and message in text(response)
    assert snapshot() == before


def test_an_unknown_user_is_not_found(app, admin):
    assert admin.get(f"{PAGE}/999").status_code == 404
    assert post(admin, f"{PAGE}/999", {"action": "disable"}).status_code == 404


# --- passwords, signing out, roles -----------------------------------------------------------


def test_resetting_a_password_ends_the_users_sessions_and_only_the_new_one_works(app, admin, alice):
    response = act(admin, "alice", "reset_password", password=NEW_PASSWORD)

    assert response.status_code == 303
    assert [row.end_reason for row in session_rows(user_named("alice"))] == ["password_changed"]
    assert db.session.scalar(select(AppSession.ended_at)) == START
    assert "Your password was changed" in where_sent(alice.client)
    assert Portal(app.test_client()).login("alice", PASSWORD).status_code == 401
    assert Portal(app.test_client()).login("alice", NEW_PASSWORD).status_code == 303
    assert [event[0] for event in audit_events("user.password_changed")] == [ADMIN]


def test_a_too_short_new_password_is_refused_and_the_old_one_and_the_sessions_stay(app, admin, alice):
    before = snapshot()

    response = act(admin, "alice", "reset_password", password="short")

    assert response.status_code == 400 and "a password is 8 to 1024 characters long" in text(response)
    assert snapshot() == before


def test_sign_out_everywhere_ends_every_session_of_that_user_and_no_one_elses(app, admin, alice):
    second = Portal(app.test_client())
    second.login("alice")
    bob = sign_in(app, "bob")

    response = act(admin, "alice", "sign_out")

    assert response.status_code == 303
    assert [row.end_reason for row in session_rows(user_named("alice"))] == ["ended_by_admin", "ended_by_admin"]
    assert db.session.scalar(select(AppSession.ended_at)) == START
    assert len(db.session.scalars(select(LogoutDelivery)).all()) == 1
    assert "An administrator ended your session." in where_sent(alice.client)
    assert bob.get("/").status_code == 200
    assert [event[0] for event in audit_events("user.signed_out_everywhere")] == [ADMIN]


def test_signing_yourself_out_everywhere_keeps_the_session_you_asked_from(app, admin):
    elsewhere = Portal(app.test_client())
    elsewhere.login(ADMIN)

    act(admin, ADMIN, "sign_out")

    assert admin.get(PAGE).status_code == 200
    assert sent_to_sign_in(elsewhere.client.get("/"))


def test_setting_a_role_applies_to_the_users_live_session_at_once(app, admin, alice):
    assert alice.client.get(PAGE).status_code == 403

    response = act(admin, "alice", "set_role", role="admin")

    assert response.status_code == 303 and user_named("alice").role.name == "admin"
    assert alice.client.get(PAGE).status_code == 200
    assert audit_events("user.role_changed") == [(ADMIN, "alice", {"old": "user", "new": "admin"})]


def test_setting_an_unknown_role_is_refused_and_changes_nothing(app, admin, alice):
    before = snapshot()

    response = act(admin, "alice", "set_role", role="nobody")

    assert response.status_code == 400 and "there is no role" in text(response)
    assert snapshot() == before


def test_an_admin_cannot_take_users_manage_away_from_themselves(app, admin):
    before = snapshot()

    response = act(admin, ADMIN, "set_role", role="session-manager")

    assert response.status_code == 400 and "you cannot take users:manage away from yourself" in text(response)
    assert snapshot() == before


# --- the `users` commands --------------------------------------------------------------------


def test_users_list_json_gives_each_user_with_role_status_and_live_sessions(app, alice):
    make_user("bob", role="session-manager")
    accounts.disable_user(user_named("bob"), now=START)

    rows = json.loads(ok(cli(app, "users", "list", "--json")))

    assert [(r["username"], r["role"], r["status"], r["live_sessions"]) for r in rows] == [
        ("alice", "user", "active", 1), ("bob", "session-manager", "disabled", 0)]
    assert (rows[0]["email"], rows[0]["display_name"], rows[0]["created_at"]) == ("alice@example.org", "Alice Liddell", START.isoformat())


def test_users_list_prints_a_table(app, alice):
    lines = ok(cli(app, "users", "list")).splitlines()

    assert lines[0].split() == ["USERNAME", "ROLE", "STATUS", "SESSIONS", "EMAIL"]
    assert lines[1].split() == ["alice", "user", "active", "1", "alice@example.org"]


def test_users_disable_ends_the_sessions_and_app_sessions_and_audits_the_cli(app, alice):
    out = ok(cli(app, "users", "disable", "Alice"))

    assert out == "Disabled 'alice'; 1 session(s) ended.\n"
    assert user_named("alice").disabled
    assert [row.end_reason for row in session_rows()] == ["user_disabled"]
    assert db.session.scalar(select(AppSession.ended_at)) == START
    assert [(d.channel, d.status) for d in db.session.scalars(select(LogoutDelivery))] == [("back", "pending")]
    assert audit_events("user.disabled") == [("cli", "alice", {})]
    assert Portal(app.test_client()).login("alice").status_code == 401


def test_users_enable_lets_the_user_sign_in_again(app, alice):
    ok(cli(app, "users", "disable", "alice"))

    assert ok(cli(app, "users", "enable", "alice")) == "Enabled 'alice'.\n"
    assert not user_named("alice").disabled
    assert Portal(app.test_client()).login("alice").status_code == 303


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("disable", "nobody"), "no user 'nobody'"),
        (("enable", "nobody"), "no user 'nobody'"),
        (("enable", "alice"), "is not disabled"),
    ],
)
def test_users_disable_and_enable_refusals_exit_1_and_change_nothing(app, alice, args, message):
    before = snapshot()

    assert_error(cli(app, "users", *args), message)
    assert snapshot() == before


def test_users_disable_of_a_disabled_user_exits_1_and_changes_nothing(app, alice):
    ok(cli(app, "users", "disable", "alice"))
    before = snapshot()

    assert_error(cli(app, "users", "disable", "alice"), "already disabled")
    assert snapshot() == before
