"""The session status and activity endpoints a page's script calls, at their exact boundaries
(FrozenClock; the default 30-minute inactivity and 8-hour absolute timeouts)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.factories import make_user, session_rows

INACTIVITY = timedelta(minutes=30)


@pytest.fixture
def alice(app, clock):
    return make_user("alice", now=clock.now())


def status(client):
    return client.get("/session/status")


def activity(portal, *, csrf: bool = True):
    return portal.client.post("/session/activity", data={"csrf_token": portal.csrf()} if csrf else {})


def test_status_gives_the_server_deadlines_and_never_extends_the_session(alice, portal, clock):
    portal.login()
    signed_in = clock.now()
    clock.advance(minutes=20)
    answer = status(portal.client)
    assert answer.status_code == 200
    body = answer.json
    assert body["state"] == "active" and body["ends_by"] == "idle_timeout"
    assert body["inactivity_deadline"] == (signed_in + INACTIVITY).isoformat()
    assert body["absolute_deadline"] == (signed_in + timedelta(hours=8)).isoformat()
    assert body["server_time"] == clock.now().isoformat() and body["seconds_left"] == 600
    assert body["warning_seconds"] == 120 and body["activity_interval_seconds"] == 60
    assert session_rows()[0].last_activity_at == signed_in


def test_activity_extends_the_inactivity_deadline(alice, portal, clock):
    portal.login()
    clock.advance(minutes=29, seconds=59)
    answer = activity(portal)
    assert answer.status_code == 200 and answer.json["seconds_left"] == 30 * 60
    clock.advance(minutes=29, seconds=59)
    assert status(portal.client).json["state"] == "active"


def test_activity_without_the_csrf_token_is_refused_and_extends_nothing(alice, portal, clock):
    portal.login()
    signed_in = clock.now()
    clock.advance(minutes=10)
    assert activity(portal, csrf=False).status_code == 400
    assert session_rows()[0].last_activity_at == signed_in


def test_status_polling_alone_lets_the_session_expire_at_its_exact_deadline(alice, portal, clock):
    portal.login()
    clock.advance(minutes=29, seconds=59)
    assert status(portal.client).json["seconds_left"] == 1
    clock.advance(seconds=1)
    answer = status(portal.client)
    assert answer.status_code == 401
    assert answer.json == {"state": "ended", "reason": "idle_timeout",
                           "message": "You were signed out after 30 minutes of inactivity."}
    assert session_rows()[0].end_reason == "idle_timeout"


def test_the_absolute_deadline_cannot_be_extended_by_activity(alice, portal, clock):
    portal.login()
    for _ in range(16):  # active every 29 minutes, for 7 h 44 min
        clock.advance(minutes=29)
        assert activity(portal).status_code == 200
    body = status(portal.client).json
    assert body["ends_by"] == "absolute_timeout" and body["seconds_left"] == 16 * 60
    token = portal.csrf()  # fetched while the session lives: the script holds it from its page
    clock.advance(minutes=16)
    answer = portal.client.post("/session/activity", data={"csrf_token": token})
    assert answer.status_code == 401 and answer.json["reason"] == "absolute_timeout"


def test_without_a_session_both_answer_401(app, client):
    assert status(client).status_code == 401 and status(client).json["state"] == "signed_out"
