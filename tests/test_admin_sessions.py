"""The admin's sessions pages, /admin/sessions, as people use them through a browser.

People sign in through their own browsers (test clients with a real User-Agent and an IP
address); apps are signed in to by the independent FakeRP. Each test checks what the admin
sees (status, Location, page text) and what the database holds (sessions, application
sessions, logout notices, audit events).
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from sqlalchemy import select

from directory import accounts, sessions, settings
from directory.db import db
from directory.models import AppSession, AuditEvent, LogoutDelivery, Role, RolePermission
from directory.policy import EndReason
from idp import delivery, whereabouts
from tests.conftest import PASSWORD, START, Portal, csrf_from
from tests.factories import audit_actions, make_oidc_client, make_user, session_rows
from tests.peers import FakeRP

PAGE = "/admin/sessions"
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
SAFARI_IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
                 "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")
LONDON = "81.2.69.160"  # the bundled GeoLite2 database: Willesden, United Kingdom


# --- helpers -------------------------------------------------------------------------------


def browser_of(app, username: str, *, role: str = "user", ip: str = "127.0.0.1", agent: str = FIREFOX, new_user: bool = True):
    """A new browser (its own address and User-Agent) signed in as `username`."""
    if new_user:
        make_user(username, role=role)
    browser = app.test_client()
    browser.environ_base.update(REMOTE_ADDR=ip, HTTP_USER_AGENT=agent)
    assert Portal(browser).login(username).status_code == 303
    return browser


def post(browser, path: str, **form):
    """Submit a form as the page would, with the browser's CSRF token."""
    token = csrf_from(browser.get("/", follow_redirects=True).data)
    return browser.post(path, data={"csrf_token": token, **form})


def text(response) -> str:
    return response.get_data(as_text=True)


def row_of(html: str, session_id: int) -> str:
    """The list's table row for one session."""
    rows = [row for row in html.split("<tr>") if f'href="{PAGE}/{session_id}"' in row]
    assert len(rows) == 1, f"session {session_id} is listed {len(rows)} times"
    return rows[0]


def listed_ids(html: str) -> list[int]:
    return [int(found) for found in re.findall(rf'<td><a href="{PAGE}/(\d+)"', html)]


def flash(response) -> str:
    match = re.search(r'<p class="notice info" role="status">([^<]*)</p>', response)
    return match.group(1) if match else ""


def followed(browser, response) -> str:
    """The page a 303 leads to, as the browser shows it (with its flash)."""
    assert response.status_code == 303, response.status_code
    return text(browser.get(response.location))


def state(user=None) -> list[tuple]:
    """Every directory session: (id, ended_at, end_reason, ended_by_id)."""
    return [(row.id, row.ended_at, row.end_reason, row.ended_by_id) for row in session_rows(user)]


def everything() -> tuple:
    """What an action could change: sessions, app sessions, logout notices, audit events."""
    db.session.expire_all()
    app_sessions = [(row.id, row.ended_at) for row in db.session.scalars(select(AppSession).order_by(AppSession.id))]
    return state(), app_sessions, db.session.scalars(select(LogoutDelivery.id)).all(), audit_actions()


def sign_in_to_app(app, browser, name: str, **fields) -> dict:
    """Alice, in `browser`, signs in to a newly registered OIDC app; returns its tokens."""
    client, secret = make_oidc_client(name, **fields)
    rp = FakeRP(app, client.client_id, secret, redirect_uri=f"https://{name.lower()}.example/cb")
    result = rp.sign_in(browser, rp.authorization_url(), username="alice", password=PASSWORD)
    assert "code" in result, result
    return {"rp": rp, **rp.exchange(result["code"])}


def find(username: str):
    return accounts.find_user(username)


def notices() -> list[tuple[str, str, str]]:
    db.session.expire_all()
    rows = db.session.scalars(select(LogoutDelivery).order_by(LogoutDelivery.id))
    return [(row.app_session.app.name, row.channel, row.status) for row in rows]


def ended_events() -> list[tuple[str, str, str]]:
    """(actor, target user id, reason) of each session.ended audit event."""
    db.session.expire_all()
    query = select(AuditEvent).where(AuditEvent.action == "session.ended").order_by(AuditEvent.id)
    return [(event.actor, event.target_user_id, event.detail["reason"]) for event in db.session.scalars(query)]


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def admin(app):
    return browser_of(app, "root", role="admin")


@pytest.fixture
def alice_browser(app):
    """Alice, signed in from a London address with Firefox on Windows."""
    return browser_of(app, "alice", ip=LONDON)


@pytest.fixture
def alice_session(alice_browser):
    (row,) = session_rows(find("alice"))
    return row


def routes(session_id: int, user_id: int) -> dict[str, tuple[str, str, dict]]:
    return {
        "list": ("GET", PAGE, {}),
        "detail": ("GET", f"{PAGE}/{session_id}", {}),
        "confirm": ("GET", f"{PAGE}/end-all", {}),
        "end": ("POST", f"{PAGE}/{session_id}/end", {}),
        "end-user": ("POST", f"{PAGE}/users/{user_id}/end", {}),
        "end-all": ("POST", f"{PAGE}/end-all", {"confirm": "yes", "include_mine": "on"}),
    }


def call(browser, route: str, session_id: int, user_id: int):
    method, path, form = routes(session_id, user_id)[route]
    return browser.get(path) if method == "GET" else post(browser, path, **form)


VIEWS, ACTIONS = ["list", "detail"], ["confirm", "end", "end-user", "end-all"]


# --- who may use the pages -----------------------------------------------------------------


def test_an_anonymous_visitor_is_sent_to_sign_in_and_then_back(client):
    response = client.get(PAGE)

    assert response.status_code == 302 and urlsplit(response.location).path == "/login"
    assert parse_qs(urlsplit(response.location).query) == {"next": [PAGE]}


@pytest.mark.parametrize("route", VIEWS + ACTIONS)
def test_a_plain_user_is_forbidden_everywhere_and_nothing_changes(app, alice_browser, route):
    alice = find("alice")
    bob = browser_of(app, "bob")
    before = everything()

    response = call(bob, route, session_rows(alice)[0].id, alice.id)

    assert response.status_code == 403
    assert "Sessions</h1>" not in text(response)
    assert everything() == before


@pytest.mark.parametrize("route", ACTIONS)
def test_seeing_sessions_is_not_enough_to_end_them(app, alice_browser, route):
    """A custom role with sessions:view only: the list works, with no End buttons; actions are 403."""
    db.session.add(Role(name="viewer", grants=[RolePermission(permission="sessions:view")]))
    db.session.commit()
    viewer = browser_of(app, "vic", role="viewer")
    alice = find("alice")
    before = everything()

    listed = viewer.get(PAGE)
    response = call(viewer, route, session_rows(alice)[0].id, alice.id)

    assert listed.status_code == 200 and "alice" in text(listed)
    assert "End this session" not in text(listed) and "End every session" not in text(listed)
    assert response.status_code == 403
    assert everything() == before


@pytest.mark.parametrize("role", ["session-manager", "admin"])
def test_a_session_manager_and_an_admin_can_see_and_end_a_session(app, alice_session, role):
    manager = browser_of(app, "meg", role=role)

    listed = manager.get(PAGE)
    response = post(manager, f"{PAGE}/{alice_session.id}/end", back=PAGE)

    assert listed.status_code == 200 and "alice" in text(listed)
    assert response.status_code == 303 and response.location == PAGE
    assert flash(followed(manager, response)) == "Ended 1 session of alice."
    assert state(find("alice")) == [(alice_session.id, START, "ended_by_admin", find("meg").id)]


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(app, admin, alice_session):
    before = everything()

    response = admin.post(f"{PAGE}/{alice_session.id}/end")

    assert response.status_code == 400
    assert everything() == before


def test_the_navigation_links_to_the_page_only_for_those_who_may_see_sessions(app, admin):
    manager, user = browser_of(app, "meg", role="session-manager"), browser_of(app, "bob")

    assert f'href="{PAGE}">Sessions</a>' in text(admin.get("/"))
    assert f'href="{PAGE}">Sessions</a>' in text(manager.get("/"))
    assert ">Sessions</a>" not in text(user.get("/"))
    assert 'href="/account/sessions">My sessions</a>' in text(user.get("/"))


# --- what the list shows -------------------------------------------------------------------


def test_each_row_shows_the_user_role_address_place_device_times_and_status(app, admin, alice_session):
    html = text(admin.get(PAGE))

    row = row_of(html, alice_session.id)
    for expected in ("alice", "<td>user</td>", LONDON, "Willesden, United Kingdom", "Firefox 133 on Windows",
                     "2026-01-05 09:00:00 UTC", "2026-01-05 09:30:00 UTC", "Active", "none"):
        assert expected in row, expected
    assert "<td>admin</td>" in row_of(html, session_rows(find("root"))[0].id)


@pytest.mark.parametrize(("ip", "place"), [
    ("8.8.8.8", "United States"),
    ("127.0.0.1", "Private network"),
    ("10.1.2.3", "Private network"),
])
def test_the_location_comes_from_the_address_and_private_addresses_read_private_network(app, admin, ip, place):
    browser_of(app, "bob", ip=ip, agent=SAFARI_IPHONE)
    (bob_session,) = session_rows(find("bob"))

    row = row_of(text(admin.get(PAGE)), bob_session.id)

    assert f"<td>{place}</td>" in row
    assert "Mobile Safari 17 on iOS" in row


def test_an_ended_session_shows_its_reason_who_ended_it_and_when(app, admin, alice_session, clock):
    clock.advance(minutes=5)
    post(admin, f"{PAGE}/{alice_session.id}/end")

    row = row_of(text(admin.get(PAGE)), alice_session.id)

    assert "<td>Ended</td>" in row and "Ended by an administrator<div>by root</div>" in row and "2026-01-05 09:05:00 UTC" in row
    assert "End this session" not in row


def test_a_session_past_its_deadline_reads_ended_before_any_sweep(app, admin, alice_session, clock):
    clock.advance(minutes=20)
    admin.get("/")  # the admin stays active; alice does not
    clock.advance(minutes=11)

    row = row_of(text(admin.get(PAGE)), alice_session.id)

    assert "<td>Ended</td>" in row and "Inactivity timeout" in row and "by " not in row and "2026-01-05 09:30:00 UTC" in row


def test_rows_come_most_recent_activity_first_fifty_a_page_with_a_next_link(app, admin, clock):
    alice = make_user("alice")
    for _ in range(55):
        clock.advance(seconds=1)
        sessions.open(alice, settings.load(), now=clock.now())
    expected = [row.id for row in reversed(session_rows())]  # the admin's own session came first

    first = text(admin.get(PAGE))
    next_url = re.search(r'<a href="([^"]+)" rel="next">Next</a>', first).group(1).replace("&amp;", "&")
    second = text(admin.get(next_url))

    assert listed_ids(first) == expected[:50]
    assert listed_ids(second) == expected[50:]
    assert 'rel="next"' not in second and "First page" in second


def test_the_next_link_keeps_the_filters(app, admin, clock):
    alice = make_user("alice")
    for _ in range(51):
        clock.advance(seconds=1)
        sessions.open(alice, settings.load(), now=clock.now())

    first = text(admin.get(f"{PAGE}?user=alice&status=active"))
    next_url = re.search(r'<a href="([^"]+)" rel="next">Next</a>', first).group(1).replace("&amp;", "&")

    assert parse_qs(urlsplit(next_url).query).keys() == {"user", "status", "after"}
    assert len(listed_ids(text(admin.get(next_url)))) == 1


# --- filters -------------------------------------------------------------------------------


@pytest.fixture
def mixed(app, admin, alice_browser):
    """alice: a live session with CRM; bob: one session ended by the admin, one live."""
    sign_in_to_app(app, alice_browser, "CRM")
    browser_of(app, "bob")
    browser_of(app, "bob", new_user=False)
    first_of_bob = session_rows(find("bob"))[0]
    post(admin, f"{PAGE}/{first_of_bob.id}/end")
    return {
        "alice": session_rows(find("alice"))[0].id,
        "bob-ended": first_of_bob.id,
        "bob-live": session_rows(find("bob"))[1].id,
        "root": session_rows(find("root"))[0].id,
    }


def test_filtering_by_user(admin, mixed):
    assert sorted(listed_ids(text(admin.get(f"{PAGE}?user=BOB")))) == [mixed["bob-ended"], mixed["bob-live"]]


def test_filtering_by_status(admin, mixed):
    assert mixed["bob-ended"] not in listed_ids(text(admin.get(f"{PAGE}?status=active")))
    assert listed_ids(text(admin.get(f"{PAGE}?status=ended"))) == [mixed["bob-ended"]]


def test_filtering_by_end_reason(admin, mixed):
    assert listed_ids(text(admin.get(f"{PAGE}?reason=ended_by_admin"))) == [mixed["bob-ended"]]
    assert listed_ids(text(admin.get(f"{PAGE}?reason=password_changed"))) == []


def test_filtering_by_application(admin, mixed):
    (crm_id,) = db.session.scalars(select(AppSession.app_id)).all()

    html = text(admin.get(f"{PAGE}?app={crm_id}"))

    assert listed_ids(html) == [mixed["alice"]]
    assert "<td>CRM</td>" in row_of(html, mixed["alice"])
    assert f'<option value="{crm_id}" selected>CRM</option>' in html


@pytest.mark.parametrize(("query", "message"), [
    ("status=gone", "Status must be one of: active, ended."),
    ("reason=bored", "End reason must be one of: idle_timeout, "),
    ("app=abc", "No application has the id &#39;abc&#39;."),
    ("app=999", "No application has the id &#39;999&#39;."),
    ("app=99999999999999", "No application has the id"),
    ("user=nobody", "No user is named &#39;nobody&#39;."),
    ("after=not-a-cursor", "This page link is not valid."),
])
def test_a_bad_filter_value_is_a_400_that_says_what_is_wrong_and_lists_nothing(admin, mixed, query, message):
    response = admin.get(f"{PAGE}?{query}")

    assert response.status_code == 400
    assert message in text(response)
    assert listed_ids(text(response)) == []


# --- ending sessions -----------------------------------------------------------------------


def test_ending_a_session_ends_its_app_sessions_and_queues_their_logout_notices(app, admin, alice_browser):
    crm = sign_in_to_app(app, alice_browser, "CRM", frontchannel_logout_uri="https://crm.example/front")
    (alice_session,) = session_rows(find("alice"))

    response = post(admin, f"{PAGE}/{alice_session.id}/end", back=f"{PAGE}?user=alice")

    assert response.location == f"{PAGE}?user=alice"
    (app_session,) = db.session.scalars(select(AppSession)).all()
    db.session.refresh(app_session)
    assert (app_session.ended_at, app_session.end_reason) == (START, "directory_signout")
    assert notices() == [("CRM", "back", "pending")]  # no front-channel: alice's browser is not here
    assert crm["rp"].refresh(crm["refresh_token"]).get("error") == "invalid_grant"
    assert ended_events() == [("root", find("alice").id, "ended_by_admin")]


def test_the_person_whose_session_was_ended_is_told_at_their_next_request(app, admin, alice_session, alice_browser):
    post(admin, f"{PAGE}/{alice_session.id}/end")

    response = alice_browser.get("/", follow_redirects=True)

    assert "An administrator ended your session." in text(response)
    assert urlsplit(alice_browser.get("/").location).path == "/login"


def test_ending_a_session_that_already_ended_ends_nothing_more(app, admin, alice_session):
    post(admin, f"{PAGE}/{alice_session.id}/end")

    response = post(admin, f"{PAGE}/{alice_session.id}/end")

    assert flash(followed(admin, response)) == "Ended 0 sessions of alice."
    assert audit_actions().count("session.ended") == 1


def test_ending_an_unknown_session_is_404(admin):
    assert post(admin, f"{PAGE}/4242/end").status_code == 404
    assert admin.get(f"{PAGE}/4242").status_code == 404
    assert post(admin, f"{PAGE}/users/4242/end").status_code == 404
    assert admin.get(f"{PAGE}/99999999999").status_code == 404  # beyond any row id: not a database error


def test_an_action_only_redirects_back_to_a_sessions_page(admin, alice_session):
    response = post(admin, f"{PAGE}/{alice_session.id}/end", back="https://evil.example/")

    assert response.location == PAGE


def test_ending_all_of_a_users_sessions_leaves_everyone_elses(app, admin, alice_browser):
    browser_of(app, "alice", new_user=False, ip="8.8.8.8")
    browser_of(app, "bob")
    sign_in_to_app(app, alice_browser, "CRM")

    response = post(admin, f"{PAGE}/users/{find('alice').id}/end")

    assert flash(followed(admin, response)) == "Ended 2 sessions of alice."
    assert [reason for _, _, reason, _ in state(find("alice"))] == ["ended_by_admin", "ended_by_admin"]
    assert [ended_at for _, ended_at, _, _ in state(find("bob"))] == [None]
    assert notices() == [("CRM", "back", "pending")]


def test_ending_every_session_asks_for_confirmation_first(app, admin, alice_session):
    browser_of(app, "bob")
    before = everything()

    page = admin.get(f"{PAGE}/end-all")
    unconfirmed = post(admin, f"{PAGE}/end-all")

    assert page.status_code == 200 and "End every session?" in text(page)
    assert "3 active sessions now" in text(page)
    assert 'name="include_mine"' in text(page)
    assert unconfirmed.status_code == 200 and "End every session?" in text(unconfirmed)
    assert everything() == before


def test_ending_every_session_keeps_the_admins_own_by_default(app, admin, alice_browser):
    browser_of(app, "bob")
    sign_in_to_app(app, alice_browser, "CRM")

    response = post(admin, f"{PAGE}/end-all", confirm="yes")

    assert flash(followed(admin, response)) == "Ended 2 sessions in the directory; yours was kept."
    assert [row.ended_at for row in session_rows(find("root"))] == [None]
    assert all(row.end_reason == "ended_by_admin" for user in ("alice", "bob") for row in session_rows(find(user)))
    assert notices() == [("CRM", "back", "pending")]
    assert sorted(ended_events()) == sorted([("root", find("alice").id, "ended_by_admin"), ("root", find("bob").id, "ended_by_admin")])
    assert admin.get(PAGE).status_code == 200


def test_ending_every_session_including_ones_own_signs_the_admin_out_too(app, admin, alice_session):
    response = post(admin, f"{PAGE}/end-all", confirm="yes", include_mine="on")

    assert response.status_code == 303
    assert [row.end_reason for row in session_rows()] == ["ended_by_admin", "ended_by_admin"]
    assert urlsplit(admin.get(PAGE).location).path == "/login"


# --- one session's page --------------------------------------------------------------------


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def deliver(clock) -> dict[str, int]:
    return delivery.deliver_due(now=clock.now(), jitter=lambda: 1.0)


def notice_of(html: str, app_name: str) -> str:
    rows = [row for row in html.split("<tr>") if f"<td>{app_name}</td>" in row]
    assert len(rows) == 1
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", rows[0])).strip()


def test_the_session_page_shows_its_details_and_each_apps_logout_delivery(app, admin, alice_browser, clock, http):
    for name in ("CRM", "Wiki"):
        sign_in_to_app(app, alice_browser, name)
    (alice_session,) = session_rows(find("alice"))
    detail = f"{PAGE}/{alice_session.id}"

    live = text(admin.get(detail))
    post(admin, f"{detail}/end", back=detail)
    queued = text(admin.get(detail))
    http.post("https://crm.example/logout", status=200)
    http.post("https://wiki.example/logout", status=500)
    deliver(clock)
    tried = text(admin.get(detail))
    clock.advance(seconds=86400 + 60)
    admin = browser_of(app, "root", new_user=False)  # the admin's own session expired meanwhile
    deliver(clock)
    given_up = text(admin.get(detail))

    for expected in ("alice", LONDON, "Willesden, United Kingdom", "Firefox 133 on Windows", "Active"):
        assert expected in live
    assert notice_of(live, "CRM").endswith("open not notified")
    assert notice_of(queued, "CRM").endswith("back-channel: queued")
    assert "<dt>End reason</dt><dd>Ended by an administrator</dd>" in queued and "<dt>Ended by</dt><dd>root</dd>" in queued
    assert notice_of(tried, "CRM").endswith("back-channel: delivered 2026-01-05 09:00:00 UTC")
    assert notice_of(tried, "Wiki").endswith(
        "back-channel: retrying (1 attempt so far; last error: HTTP 500 from https://wiki.example/logout)")
    assert notice_of(given_up, "Wiki").endswith("back-channel: failed after 2 attempts: HTTP 500 from https://wiki.example/logout")


def test_an_app_without_single_logout_reads_not_notified(app, admin, alice_browser):
    sign_in_to_app(app, alice_browser, "CRM")
    db.session.scalars(select(AppSession)).one().app.single_logout = False
    db.session.commit()
    (alice_session,) = session_rows(find("alice"))

    post(admin, f"{PAGE}/{alice_session.id}/end")
    html = text(admin.get(f"{PAGE}/{alice_session.id}"))

    assert notice_of(html, "CRM").endswith("ended 2026-01-05 09:00:00 UTC not notified")


def test_a_session_without_apps_says_so(admin, alice_session):
    assert "This session signed in to no application." in text(admin.get(f"{PAGE}/{alice_session.id}"))


def test_every_end_reason_can_be_filtered_on_and_reads_in_words(admin):
    html = text(admin.get(PAGE))

    for reason in EndReason:
        assert f'<option value="{reason.value}">{whereabouts.REASONS[reason.value]}</option>' in html
    assert '<option value="ended_by_admin">Ended by an administrator</option>' in html


def test_the_expiry_reason_is_kept_when_an_admin_ends_an_expired_session(app, admin, alice_session, clock):
    clock.advance(minutes=20)
    admin.get("/")
    clock.advance(minutes=11)

    response = post(admin, f"{PAGE}/{alice_session.id}/end")

    assert flash(followed(admin, response)) == "Ended 0 sessions of alice."
    assert state(find("alice")) == [(alice_session.id, START + timedelta(minutes=30), "idle_timeout", None)]
