"""The sweep: sessions that expired unseen are ended at their deadline; old ones are purged."""

import threading
from datetime import timedelta

from directory import sessions, settings
from idp import background
from tests.conftest import START, Portal
from tests.factories import make_user, session_rows, set_settings

RETENTION = timedelta(days=30)


def sign_in(app, username="alice"):
    Portal(app.test_client()).login(username)


def test_sweep_ends_idle_sessions_at_their_inactivity_deadline(app, clock):
    make_user("alice")
    sign_in(app)
    clock.advance(minutes=45)
    assert sessions.sweep(now=clock.now(), retention=RETENTION) == (1, 0)
    (row,) = session_rows()
    assert (row.end_reason, row.ended_at) == ("idle_timeout", START + timedelta(minutes=30))


def test_sweep_ends_sessions_past_their_absolute_deadline_with_that_reason(app, clock):
    make_user("alice")
    set_settings(inactivity=None)
    sign_in(app)
    clock.advance(hours=9)
    sessions.sweep(now=clock.now(), retention=RETENTION)
    (row,) = session_rows()
    assert (row.end_reason, row.ended_at) == ("absolute_timeout", START + timedelta(hours=8))


def test_sweep_leaves_live_sessions_alone(app, clock):
    make_user("alice")
    sign_in(app)
    clock.advance(minutes=30, seconds=-1)
    assert sessions.sweep(now=clock.now(), retention=RETENTION) == (0, 0)
    assert session_rows()[0].ended_at is None


def test_a_second_sweep_ends_nothing_twice(app, clock):
    make_user("alice")
    sign_in(app)
    clock.advance(hours=1)
    sessions.sweep(now=clock.now(), retention=RETENTION)
    assert sessions.sweep(now=clock.now(), retention=RETENTION) == (0, 0)


def test_ended_sessions_are_kept_for_the_retention_period_then_purged(app, clock):
    make_user("alice")
    sign_in(app)
    clock.advance(minutes=30)  # ends now, at 09:30
    sessions.sweep(now=clock.now(), retention=RETENTION)
    clock.advance(days=30)
    assert sessions.sweep(now=clock.now(), retention=RETENTION) == (0, 0)
    clock.advance(seconds=1)
    assert sessions.sweep(now=clock.now(), retention=RETENTION) == (0, 1)
    assert session_rows() == []


def test_a_swept_sessions_browser_learns_why_it_was_signed_out(app, clock):
    make_user("alice")
    browser = Portal(app.test_client())
    browser.login()
    clock.advance(minutes=31)
    sessions.sweep(now=clock.now(), retention=settings.load().retention)
    assert browser.client.get("/").status_code == 302
    assert "after 30 minutes of inactivity" in browser.client.get("/login").get_data(as_text=True)


def sweepers() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name == "idp-sweeper"}


def test_the_server_starts_its_sweeper_with_the_first_request(make_app):
    app = make_app(SWEEP_INTERVAL=3600, DELIVERY_INTERVAL=3600)
    before = sweepers()
    app.test_client().get("/login")
    app.test_client().get("/login")
    assert len(sweepers() - before) == 1


def test_one_server_sweep_ends_sessions_that_expired_unseen(app, clock):
    make_user("alice")
    sign_in(app)
    clock.advance(minutes=30)
    assert background.sweep_once(app) == (1, 0)
    assert session_rows()[0].end_reason == "idle_timeout"
