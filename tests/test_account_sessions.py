"""Self-service, /account/sessions: a person sees and ends their own sessions, and only theirs.

Each person signs in through browsers of their own (test clients with a User-Agent and an
address); checks are on what they see and on the database rows.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from directory import sessions, settings
from directory.db import db
from directory.models import AppSession, DirectorySession
from tests.conftest import START, csrf_from
from tests.factories import audit_actions, session_rows
from tests.test_admin_sessions import (
    FIREFOX,
    LONDON,
    SAFARI_IPHONE,
    browser_of,
    ended_events,
    everything,
    find,
    flash,
    followed,
    notices,
    post,
    sign_in_to_app,
    state,
    text,
)

PAGE = "/account/sessions"


def shown_rows(html: str) -> list[str]:
    return html.split("<tbody>")[1].split("</tbody>")[0].split("<tr>")[1:]


@pytest.fixture
def laptop(app):
    """Alice at home: Firefox on Windows, from a London address."""
    return browser_of(app, "alice", ip=LONDON, agent=FIREFOX)


@pytest.fixture
def phone(app, laptop):
    """Alice's second session: Safari on her iPhone, on a private network."""
    return browser_of(app, "alice", ip="10.0.0.7", agent=SAFARI_IPHONE, new_user=False)


def sessions_of(username: str) -> list[DirectorySession]:
    return session_rows(find(username))


# --- who may use it ------------------------------------------------------------------------


def test_an_anonymous_visitor_is_sent_to_sign_in(client):
    response = client.get(PAGE)

    assert response.status_code == 302 and urlsplit(response.location).path == "/login"


@pytest.mark.parametrize("path", [f"{PAGE}/1/end", f"{PAGE}/end-others"])
def test_an_anonymous_post_is_sent_to_sign_in_and_ends_nothing(client, laptop, path):
    before = everything()

    response = client.post(path, data={"csrf_token": csrf_from(client.get("/login").data)})

    assert response.status_code == 302 and urlsplit(response.location).path == "/login"
    assert everything() == before


def test_a_post_without_the_csrf_token_is_refused(laptop, phone):
    before = everything()

    response = laptop.post(f"{PAGE}/end-others")

    assert response.status_code == 400
    assert everything() == before


# --- what it shows -------------------------------------------------------------------------


def test_a_person_sees_each_of_their_sessions_with_place_device_and_this_one_marked(app, laptop, phone):
    browser_of(app, "bob", ip="8.8.8.8")
    laptop_session, phone_session = sessions_of("alice")

    html = text(phone.get(PAGE))

    rows = shown_rows(html)
    assert len(rows) == 2  # not bob's
    (laptop_row,) = [row for row in rows if LONDON in row]
    (phone_row,) = [row for row in rows if "10.0.0.7" in row]
    for expected in ("Firefox 133 on Windows", "Willesden, United Kingdom", "2026-01-05 09:00:00 UTC", "2026-01-05 09:30:00 UTC", "Active"):
        assert expected in laptop_row, expected
    assert "End this session" in laptop_row and "(this browser)" not in laptop_row
    assert "Mobile Safari 17 on iOS" in phone_row and "Private network" in phone_row
    assert "(this browser)" in phone_row and "End this session" not in phone_row
    assert "8.8.8.8" not in html and "United States" not in html


def test_the_apps_each_session_signed_in_to_are_listed(app, laptop, phone):
    sign_in_to_app(app, laptop, "CRM")

    rows = shown_rows(text(phone.get(PAGE)))

    assert [("CRM" in row, "none" in row) for row in rows] == [(False, True), (True, False)]


# --- ending --------------------------------------------------------------------------------


def test_ending_another_of_ones_sessions_signs_that_browser_and_its_apps_out(app, laptop, phone):
    crm = sign_in_to_app(app, laptop, "CRM")
    laptop_session, phone_session = sessions_of("alice")

    response = post(phone, f"{PAGE}/{laptop_session.id}/end")

    assert response.location == PAGE
    assert flash(followed(phone, response)) == "Ended 1 session."
    alice = find("alice")
    assert state(alice) == [(laptop_session.id, START, "ended_by_user", alice.id), (phone_session.id, None, None, None)]
    assert [row.end_reason for row in db.session.scalars(select(AppSession))] == ["directory_signout"]
    assert notices() == [("CRM", "back", "pending")]
    assert crm["rp"].refresh(crm["refresh_token"]).get("error") == "invalid_grant"
    assert ended_events() == [("alice", alice.id, "ended_by_user")]
    assert "This session was ended from another of your sessions." in text(laptop.get("/", follow_redirects=True))
    assert phone.get(PAGE).status_code == 200


def test_the_ended_session_then_reads_ended_by_the_user(app, laptop, phone):
    laptop_session, _ = sessions_of("alice")
    post(phone, f"{PAGE}/{laptop_session.id}/end")

    html = text(phone.get(PAGE))

    (row,) = [row for row in shown_rows(html) if LONDON in row]
    assert "Ended: Ended by the user<div>by alice</div>" in row and "End this session" not in row


def test_someone_elses_session_is_not_found_and_stays_alive(app, laptop):
    bob = browser_of(app, "bob")
    (alice_session,) = sessions_of("alice")
    before = everything()

    response = post(bob, f"{PAGE}/{alice_session.id}/end")

    assert response.status_code == 404
    assert everything() == before


def test_an_unknown_session_is_not_found(laptop):
    assert post(laptop, f"{PAGE}/4242/end").status_code == 404
    assert post(laptop, f"{PAGE}/99999999999/end").status_code == 404


def test_the_current_session_is_not_ended_from_here_but_by_signing_out(laptop):
    (current,) = sessions_of("alice")

    response = post(laptop, f"{PAGE}/{current.id}/end")

    assert flash(followed(laptop, response)) == "That is the session you are using: sign out to end it."
    assert state(find("alice")) == [(current.id, None, None, None)]


def test_ending_all_other_sessions_keeps_this_one_and_leaves_other_people_alone(app, laptop, phone):
    tablet = browser_of(app, "alice", new_user=False)
    browser_of(app, "bob")
    sign_in_to_app(app, laptop, "CRM")

    response = post(tablet, f"{PAGE}/end-others")

    assert flash(followed(tablet, response)) == "Ended 2 other sessions."
    alice = find("alice")
    assert [(reason, by) for _, _, reason, by in state(alice)] == [
        ("ended_by_user", alice.id), ("ended_by_user", alice.id), (None, None),
    ]
    assert [row.ended_at for row in sessions_of("bob")] == [None]
    assert notices() == [("CRM", "back", "pending")]
    assert audit_actions().count("session.ended") == 2
    assert tablet.get(PAGE).status_code == 200
    assert urlsplit(laptop.get(PAGE).location).path == "/login"


def test_with_no_other_session_nothing_is_ended(laptop):
    response = post(laptop, f"{PAGE}/end-others")

    assert flash(followed(laptop, response)) == "Ended 0 other sessions."
    assert "session.ended" not in audit_actions()


def test_the_list_pages_through_many_sessions(app, laptop, clock):
    alice = find("alice")
    for _ in range(52):
        clock.advance(seconds=1)
        sessions.open(alice, settings.load(), now=clock.now())

    first = text(laptop.get(PAGE))
    next_url = re.search(r'<a href="([^"]+)" rel="next">Next</a>', first).group(1)
    second = text(laptop.get(next_url))

    assert len(shown_rows(first)) == 50 and len(shown_rows(second)) == 3
    assert "(this browser)" in second  # the laptop's session is the oldest activity
