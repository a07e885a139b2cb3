"""Application sessions and the logout outbox: who is told when a directory session ends."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from directory import logout, sessions
from directory.db import db
from directory.models import AppSession, LogoutDelivery
from directory.policy import EndReason
from tests.conftest import START, Portal
from tests.factories import audit_actions, make_app_record, make_user, session_rows, set_settings

LEASE = timedelta(seconds=30)
WINDOW = timedelta(hours=24)


@pytest.fixture
def signed_in(app):
    """Alice's live directory session."""
    make_user("alice")
    Portal(app.test_client()).login()
    return session_rows()[0]


def deliveries() -> list[LogoutDelivery]:
    db.session.expire_all()
    return list(db.session.scalars(select(LogoutDelivery).order_by(LogoutDelivery.id)))


def test_joining_twice_gives_the_same_application_session_with_a_random_sid(signed_in):
    crm = make_app_record("CRM")
    first = logout.join(signed_in, crm, subject="alice", now=START)
    assert logout.join(signed_in, crm, subject="alice", now=START) is first
    assert len(first.sid) >= 32 and str(signed_in.id) != first.sid and signed_in.token_hash not in first.sid


def test_signing_out_ends_every_application_session_and_queues_one_notice_per_channel(signed_in, clock):
    crm = make_app_record("CRM", backchannel_logout=True)
    wiki = make_app_record("Wiki", backchannel_logout=True, frontchannel_logout=True)
    for app in (crm, wiki):
        logout.join(signed_in, app, subject="alice", now=START)
    db.session.commit()
    sessions.end(signed_in, EndReason.SIGNED_OUT, now=clock.now(), browser=True)
    rows = deliveries()
    assert sorted((row.app_session.app.name, row.channel) for row in rows) == [("CRM", "back"), ("Wiki", "back"), ("Wiki", "front")]
    assert all(row.status == "pending" and row.next_attempt_at == START for row in rows)
    assert all(s.end_reason == "directory_signout" for s in db.session.scalars(select(AppSession)))


def test_without_a_browser_only_back_channel_notices_are_queued(signed_in, clock):
    wiki = make_app_record("Wiki", backchannel_logout=True, frontchannel_logout=True)
    logout.join(signed_in, wiki, subject="alice", now=START)
    db.session.commit()
    sessions.end(signed_in, EndReason.ENDED_BY_ADMIN, now=clock.now(), actor_label="test")
    assert [row.channel for row in deliveries()] == ["back"]


def test_an_app_with_single_logout_off_keeps_no_notice_but_its_session_ends(signed_in, clock):
    app = make_app_record("Legacy", backchannel_logout=True, single_logout=False)
    joined = logout.join(signed_in, app, subject="alice", now=START)
    db.session.commit()
    sessions.end(signed_in, EndReason.SIGNED_OUT, now=clock.now())
    db.session.expire_all()
    assert deliveries() == [] and joined.ended_at == START


def test_expiry_leaves_application_sessions_alone_by_default(signed_in, clock):
    crm = make_app_record("CRM", backchannel_logout=True)
    joined = logout.join(signed_in, crm, subject="alice", now=START)
    db.session.commit()
    clock.advance(hours=1)
    sessions.sweep(now=clock.now(), retention=timedelta(days=30))
    db.session.expire_all()
    assert joined.ended_at is None and deliveries() == []


def test_expiry_signs_apps_out_when_the_session_was_opened_with_that_setting(app, clock):
    set_settings(signout_apps_on_expiry=True)
    make_user("alice")
    Portal(app.test_client()).login()
    (session,) = session_rows()
    logout.join(session, make_app_record("CRM", backchannel_logout=True), subject="alice", now=START)
    db.session.commit()
    clock.advance(hours=1)
    sessions.sweep(now=clock.now(), retention=timedelta(days=30))
    assert [row.channel for row in deliveries()] == ["back"]


def queue_one(signed_in, clock) -> LogoutDelivery:
    logout.join(signed_in, make_app_record("CRM", backchannel_logout=True), subject="alice", now=START)
    db.session.commit()
    sessions.end(signed_in, EndReason.SIGNED_OUT, now=clock.now())
    return deliveries()[0]


def test_a_claimed_notice_is_leased_to_one_worker_until_its_lease_runs_out(signed_in, clock):
    queue_one(signed_in, clock)
    assert len(logout.claim(now=clock.now(), lease=LEASE)) == 1
    assert logout.claim(now=clock.now() + LEASE - timedelta(seconds=1), lease=LEASE) == []
    assert len(logout.claim(now=clock.now() + LEASE, lease=LEASE)) == 1


def test_a_sent_notice_is_never_claimed_again(signed_in, clock):
    queue_one(signed_in, clock)
    (claimed,) = logout.claim(now=clock.now(), lease=LEASE)
    logout.record(claimed, now=clock.now(), error=None, window=WINDOW, jitter=1.0)
    db.session.commit()
    assert deliveries()[0].status == "sent"
    assert logout.claim(now=clock.now() + timedelta(days=2), lease=LEASE) == []


def test_a_failed_attempt_is_retried_after_the_back_off(signed_in, clock):
    queue_one(signed_in, clock)
    (claimed,) = logout.claim(now=clock.now(), lease=LEASE)
    logout.record(claimed, now=clock.now(), error="HTTP 503", window=WINDOW, jitter=1.0)
    db.session.commit()
    row = deliveries()[0]
    assert (row.status, row.attempts, row.next_attempt_at, row.last_error) == ("pending", 1, START + timedelta(seconds=10), "HTTP 503")
    assert logout.claim(now=START + timedelta(seconds=9), lease=LEASE) == []
    assert len(logout.claim(now=START + timedelta(seconds=10), lease=LEASE)) == 1


def test_a_notice_still_failing_after_the_window_is_marked_failed_and_audited(signed_in, clock):
    queue_one(signed_in, clock)
    (claimed,) = logout.claim(now=clock.now(), lease=LEASE)
    logout.record(claimed, now=START + WINDOW, error="connection refused", window=WINDOW, jitter=1.0)
    db.session.commit()
    assert deliveries()[0].status == "failed" and audit_actions()[-1] == "logout.delivery_failed"


def test_reauthenticating_keeps_the_session_and_its_applications_but_rotates_the_token(signed_in, clock):
    crm = make_app_record("CRM", backchannel_logout=True)
    joined = logout.join(signed_in, crm, subject="alice", now=START)
    db.session.commit()
    old_hash = signed_in.token_hash
    clock.advance(minutes=5)
    token = sessions.reauthenticate(signed_in, now=clock.now())
    (row,) = session_rows()
    assert row.token_hash == sessions.digest(token) != old_hash
    assert (row.authenticated_at, row.created_at, row.ended_at) == (clock.now(), START, None)
    db.session.expire_all()
    assert joined.ended_at is None
