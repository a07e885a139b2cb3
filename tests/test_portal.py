"""Portal sign-in and the directory session as a browser sees it: cookies, redirects, timeouts."""

from datetime import timedelta
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

import pytest
from werkzeug.http import http_date

from directory import sessions
from directory.db import db
from tests.conftest import PASSWORD, START, Portal, csrf_from
from tests.factories import audit_actions, make_user, session_rows, set_settings

S = timedelta(seconds=1)


def set_cookies(response) -> dict[str, SimpleCookie]:
    """The response's Set-Cookie headers by cookie name, attributes included."""
    found = {}
    for header in response.headers.getlist("Set-Cookie"):
        cookie = SimpleCookie()
        cookie.load(header)
        for name, morsel in cookie.items():
            found[name] = morsel
    return found


def location(response) -> str:
    parts = urlsplit(response.headers["Location"])
    return parts.path + (f"?{parts.query}" if parts.query else "")


def page_text(client, path="/login") -> str:
    return client.get(path).get_data(as_text=True)


@pytest.fixture
def alice(app):
    return make_user("alice")


# --- signing in -----------------------------------------------------------------------------


def test_signing_in_sets_an_httponly_samesite_browser_session_cookie(alice, portal):
    response = portal.login()
    assert response.status_code == 303 and location(response) == "/"
    cookie = set_cookies(response)["idp_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"
    assert not cookie["expires"] and not cookie["max-age"] and not cookie["secure"]


def test_the_database_keeps_only_the_sha256_of_a_256_bit_token(alice, portal):
    token = set_cookies(portal.login())["idp_session"].value
    assert len(token) >= 43  # 32 random bytes, base64url
    (row,) = session_rows()
    assert row.token_hash == sessions.digest(token) and token not in row.token_hash


def test_the_session_records_address_browser_and_sign_in_time(alice, portal):
    portal.client.environ_base["HTTP_USER_AGENT"] = "Mozilla/5.0 Test"  # it sends from 127.0.0.1
    portal.login()
    (row,) = session_rows()
    assert (row.ip_address, row.user_agent, row.created_at) == ("127.0.0.1", "Mozilla/5.0 Test", START)


def test_usernames_are_matched_without_regard_to_case(alice, portal):
    assert portal.login("ALICE").status_code == 303


@pytest.mark.parametrize("username, password", [("alice", "wrong password"), ("nobody", PASSWORD)])
def test_bad_credentials_get_one_generic_error_and_no_session(alice, portal, username, password):
    response = portal.login(username, password)
    assert response.status_code == 401
    assert "The username or password is incorrect." in response.get_data(as_text=True)
    assert "idp_session" not in set_cookies(response)
    assert session_rows() == [] and audit_actions()[-1] == "signin.failure"


def test_a_disabled_user_cannot_sign_in(alice, portal):
    alice.disabled = True
    db.session.commit()
    response = portal.login()
    assert response.status_code == 401 and session_rows() == []


def test_a_sign_in_without_the_csrf_token_is_refused_and_changes_nothing(alice, client):
    response = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 400 and session_rows() == []


def test_a_csrf_token_from_another_browser_is_refused(alice, app, portal):
    foreign = Portal(app.test_client()).csrf()
    response = portal.client.post("/login", data={"csrf_token": foreign, "username": "alice", "password": PASSWORD})
    assert response.status_code == 400 and session_rows() == []


def test_each_sign_in_issues_a_fresh_token_and_ends_the_one_it_replaces(alice, app, portal):
    planted = "attacker-chosen-value"
    portal.client.set_cookie("idp_session", planted)
    first = set_cookies(portal.login())["idp_session"].value
    second = set_cookies(portal.login())["idp_session"].value
    assert len({planted, first, second}) == 3
    old, new = session_rows()
    assert (old.end_reason, new.ended_at) == ("replaced", None)
    stale = app.test_client()
    stale.set_cookie("idp_session", first)
    assert location(stale.get("/")).startswith("/login")


def test_signing_in_rotates_the_csrf_token(alice, portal):
    before = portal.csrf()
    portal.login()
    assert csrf_from(portal.client.get("/logout").data) != before


@pytest.mark.parametrize(
    "next_path, landing",
    [("/admin/settings", "/admin/settings"), ("//evil.example/x", "/"), ("https://evil.example/", "/"), ("/\\evil", "/")],
)
def test_sign_in_continues_only_to_paths_on_this_site(alice, portal, next_path, landing):
    assert location(portal.login(next=next_path)) == landing


def test_the_home_page_shows_the_sign_in_time_and_both_deadlines(alice, portal):
    portal.login()
    text = page_text(portal.client, "/")
    assert "2026-01-05 09:00:00 UTC" in text  # signed in
    assert "2026-01-05 09:30:00 UTC" in text  # inactivity deadline
    assert "2026-01-05 17:00:00 UTC" in text  # absolute deadline


def test_pages_behind_sign_in_send_anonymous_visitors_to_the_sign_in_page(client):
    assert location(client.get("/")) == "/login?next=/"


# --- inactivity and absolute timeouts -------------------------------------------------------


def test_a_session_is_alive_one_second_before_its_inactivity_deadline(alice, portal, clock):
    portal.login()
    clock.advance(minutes=30, seconds=-1)
    assert portal.client.get("/").status_code == 200


@pytest.mark.parametrize("past_deadline", [timedelta(0), S])
def test_at_and_after_the_inactivity_deadline_the_session_ends_with_a_reason(alice, portal, clock, past_deadline):
    portal.login()
    clock.advance(minutes=30, seconds=past_deadline.total_seconds())
    response = portal.client.get("/")
    assert response.status_code == 302 and location(response) == "/login?next=/"
    assert set_cookies(response)["idp_session"]["expires"]  # the cookie is cleared
    assert "You were signed out after 30 minutes of inactivity." in page_text(portal.client)
    (row,) = session_rows()
    assert (row.end_reason, row.ended_at) == ("idle_timeout", START + timedelta(minutes=30))


def test_every_portal_request_extends_the_inactivity_deadline(alice, portal, clock):
    portal.login()
    for _ in range(3):
        clock.advance(minutes=29)
        assert portal.client.get("/").status_code == 200
    clock.advance(minutes=30, seconds=-1)
    assert portal.client.get("/").status_code == 200
    clock.advance(minutes=30)
    assert portal.client.get("/").status_code == 302


@pytest.mark.parametrize("offset, alive", [(-S, True), (timedelta(0), False), (S, False)])
def test_the_absolute_timeout_ends_even_an_active_session(alice, portal, clock, offset, alive):
    portal.login()
    for _ in range(23):  # a request every 20 minutes up to 7h40m
        clock.advance(minutes=20)
        assert portal.client.get("/").status_code == 200
    clock.advance(minutes=20, seconds=offset.total_seconds())
    response = portal.client.get("/")
    assert (response.status_code == 200) is alive
    if not alive:
        assert "Your session reached its time limit of 8 hours." in page_text(portal.client)
        (row,) = session_rows()
        assert (row.end_reason, row.ended_at) == ("absolute_timeout", START + timedelta(hours=8))


def test_with_the_inactivity_timeout_off_a_session_lasts_until_its_absolute_deadline(alice, portal, clock):
    set_settings(inactivity=None)
    portal.login()
    clock.advance(hours=8, seconds=-1)
    assert portal.client.get("/").status_code == 200
    clock.advance(seconds=1)
    assert portal.client.get("/").status_code == 302


@pytest.mark.parametrize("inactivity, interval", [(timedelta(minutes=30), 60), (timedelta(minutes=5), 30)])
def test_activity_is_written_at_most_once_per_min_of_a_minute_and_a_tenth_of_the_timeout(alice, portal, clock, inactivity, interval):
    set_settings(inactivity=inactivity)
    portal.login()
    clock.advance(seconds=interval - 1)
    portal.client.get("/")
    assert session_rows()[0].last_activity_at == START
    clock.advance(seconds=1)
    portal.client.get("/")
    assert session_rows()[0].last_activity_at == START + timedelta(seconds=interval)
    clock.advance(seconds=interval - 1)
    portal.client.get("/")
    assert session_rows()[0].last_activity_at == START + timedelta(seconds=interval)


def test_settings_in_force_at_sign_in_keep_governing_the_session(alice, portal, clock):
    portal.login()
    set_settings(inactivity=timedelta(minutes=5))
    clock.advance(minutes=29)
    assert portal.client.get("/").status_code == 200


def test_a_session_ended_elsewhere_sends_its_browser_to_sign_in_with_the_reason(alice, portal, clock):
    portal.login()
    (row,) = session_rows()
    sessions.end(row, sessions.EndReason.ENDED_BY_ADMIN, now=clock.now(), actor_label="test")
    assert location(portal.client.get("/")) == "/login?next=/"
    assert "An administrator ended your session." in page_text(portal.client)


def test_an_unknown_session_cookie_is_cleared(client):
    client.set_cookie("idp_session", "never-issued")
    response = client.get("/login")
    assert response.status_code == 200 and set_cookies(response)["idp_session"]["expires"]


# --- persistent login -----------------------------------------------------------------------


def test_keep_me_signed_in_is_offered_only_when_persistent_login_is_on(alice, client):
    assert "Keep me signed in" not in page_text(client)
    set_settings(persistent_login=True)
    assert "Keep me signed in" in page_text(client)


def test_a_persistent_sign_in_cookie_expires_at_the_absolute_deadline(alice, portal):
    set_settings(persistent_login=True)
    cookie = set_cookies(portal.login(remember=True))["idp_session"]
    assert cookie["expires"] == http_date(START + timedelta(hours=8))
    assert session_rows()[0].persistent


def test_without_ticking_the_box_the_cookie_is_a_browser_session_cookie(alice, portal):
    set_settings(persistent_login=True)
    assert not set_cookies(portal.login())["idp_session"]["expires"]


def test_asking_to_stay_signed_in_is_ignored_while_persistent_login_is_off(alice, portal):
    cookie = set_cookies(portal.login(remember=True))["idp_session"]
    assert not cookie["expires"] and not session_rows()[0].persistent


def test_a_persistent_cookie_never_outlives_the_session(alice, portal, clock):
    set_settings(persistent_login=True)
    portal.login(remember=True)
    clock.advance(minutes=5)
    refreshed = set_cookies(portal.client.get("/"))["idp_session"]
    assert refreshed["expires"] == http_date(START + timedelta(hours=8))


# --- signing out ----------------------------------------------------------------------------


def test_get_logout_only_asks_for_confirmation(alice, portal):
    portal.login()
    response = portal.client.get("/logout")
    assert response.status_code == 200 and "Sign out?" in response.get_data(as_text=True)
    assert session_rows()[0].ended_at is None


def test_signing_out_ends_the_session_and_lands_on_the_sign_in_page(alice, app, portal):
    token = set_cookies(portal.login())["idp_session"].value
    response = portal.logout()
    assert response.status_code == 303 and location(response) == "/login"
    assert set_cookies(response)["idp_session"]["expires"]
    assert "You have signed out." in page_text(portal.client)
    assert session_rows()[0].end_reason == "signed_out"
    replay = app.test_client()
    replay.set_cookie("idp_session", token)
    assert replay.get("/").status_code == 302


def test_a_sign_out_without_the_csrf_token_is_refused(alice, portal):
    portal.login()
    assert portal.client.post("/logout").status_code == 400
    assert session_rows()[0].ended_at is None


def test_the_sign_out_destination_setting_applies_to_sign_out_and_expiry(alice, portal, clock):
    set_settings(signout_url="https://intranet.example/bye")
    portal.login()
    assert portal.logout().headers["Location"] == "https://intranet.example/bye"
    portal.login()
    clock.advance(minutes=30)
    assert portal.client.get("/").headers["Location"] == "https://intranet.example/bye"


# --- HTTPS issuer -----------------------------------------------------------------------------


def test_an_https_issuer_gets_host_prefixed_secure_cookies(make_app):
    app = make_app(ISSUER="https://id.example")
    with app.app_context():
        make_user("alice")
    client = app.test_client()
    https = {"base_url": "https://id.example"}
    token = csrf_from(client.get("/login", **https).data)
    response = client.post("/login", data={"csrf_token": token, "username": "alice", "password": PASSWORD}, **https)
    cookies = set_cookies(response)
    assert cookies["__Host-idp_session"]["secure"] and cookies["__Host-idp_ui"]["secure"]
    assert cookies["__Host-idp_session"]["path"] == "/" and not cookies["__Host-idp_session"]["domain"]


# --- health ---------------------------------------------------------------------------------


def test_health_is_ok_while_the_database_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok", "database": "reachable"}


def test_health_is_503_when_the_database_is_unreachable(tmp_path, clock):
    from idp import create_app

    app = create_app(
        {"TESTING": True, "SWEEP_INTERVAL": 0, "DELIVERY_INTERVAL": 0, "SECRET_KEY": "x" * 40, "DATABASE_URL": f"sqlite:///{tmp_path}/missing/dir/db.sqlite3"},
        clock=clock,
    )
    response = app.test_client().get("/healthz")
    assert response.status_code == 503 and response.json["database"] == "unreachable"


def test_pages_cannot_be_framed_sniffed_or_cached(client):
    headers = client.get("/login").headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"] and headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "ended, notice",
    [
        ("idle_timeout", "You were signed out because you were inactive for too long."),
        ("absolute_timeout", "Your session reached its time limit. Please sign in again."),
        ("ended_by_admin", "An administrator ended your session."),
        ("<script>alert(1)</script>", None),
        ("Call 555-0100 to restore your account", None),
        ("IDLE_TIMEOUT", None),
        ("", None),
    ],
)
def test_the_sign_in_page_names_only_a_known_end_reason_from_its_address(client, ended, notice):
    page = client.get("/login", query_string={"ended": ended})
    assert page.status_code == 200
    shown = page.get_data(as_text=True)
    if notice is None:
        assert 'role="status"' not in shown and "alert(1)" not in shown and "555-0100" not in shown
    else:
        assert f'<p class="notice" role="status">{notice}</p>' in shown


def test_the_exact_flashed_message_wins_over_the_addressed_reason(alice, portal, clock):
    portal.login()
    clock.advance(minutes=30)
    page = portal.client.get("/login?ended=idle_timeout")
    shown = page.get_data(as_text=True)
    assert "You were signed out after 30 minutes of inactivity." in shown
    assert "inactive for too long" not in shown
