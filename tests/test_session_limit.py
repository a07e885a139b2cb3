"""The concurrent-session limit: end the oldest, or refuse and let the person choose."""

import threading

import pytest

from directory.policy import OnLimit
from tests.conftest import PASSWORD, Portal, csrf_from
from tests.factories import audit_actions, make_user, session_rows, set_settings


@pytest.fixture
def alice(app):
    return make_user("alice")


def browsers(app, count: int) -> list[Portal]:
    return [Portal(app.test_client()) for _ in range(count)]


def live(rows, now=None):
    """Rows not ended (and, given `now`, not yet past their deadline)."""
    return [row for row in rows if row.ended_at is None and (now is None or row.expires_at > now)]


def test_without_a_limit_a_user_may_hold_many_sessions(alice, app):
    for browser in browsers(app, 5):
        assert browser.login().status_code == 303
    assert len(live(session_rows())) == 5


def test_end_oldest_ends_the_oldest_session_to_make_room(alice, app, clock):
    set_settings(max_sessions=2)
    first, second, third = browsers(app, 3)
    for browser in (first, second, third):
        assert browser.login().status_code == 303
        clock.advance(minutes=1)
    oldest, *rest = session_rows()
    assert oldest.end_reason == "session_limit" and [row.ended_at for row in rest] == [None, None]
    response = first.client.get("/")
    assert response.status_code == 302
    assert "reached its session limit" in first.client.get("/login").get_data(as_text=True)
    assert second.client.get("/").status_code == 200 and third.client.get("/").status_code == 200


def test_refuse_shows_the_active_sessions_and_opens_none(alice, app):
    set_settings(max_sessions=1, on_limit=OnLimit.REFUSE)
    first, second = browsers(app, 2)
    first.client.environ_base["HTTP_USER_AGENT"] = "Firefox on the office PC"
    first.login()
    response = second.login()
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "Session limit reached" in page and "Firefox on the office PC" in page
    assert len(session_rows()) == 1 and audit_actions()[-1] == "signin.refused"
    assert first.client.get("/").status_code == 200


def _end_and_sign_in(browser: Portal, page: str, password: str):
    row = session_rows()[0]
    return browser.client.post(
        "/login/end-session",
        data={"csrf_token": csrf_from(page), "username": "alice", "password": password, "session_id": row.id},
    )


def test_after_a_refusal_ending_a_session_needs_the_password_again(alice, app):
    set_settings(max_sessions=1, on_limit=OnLimit.REFUSE)
    first, second = browsers(app, 2)
    first.login()
    page = second.login().get_data(as_text=True)
    assert _end_and_sign_in(second, page, "wrong password").status_code == 401
    assert live(session_rows()) == session_rows()


def test_after_a_refusal_ending_one_session_signs_the_person_in(alice, app):
    set_settings(max_sessions=1, on_limit=OnLimit.REFUSE)
    first, second = browsers(app, 2)
    first.login()
    page = second.login().get_data(as_text=True)
    response = _end_and_sign_in(second, page, PASSWORD)
    assert response.status_code == 303
    old, new = session_rows()
    assert (old.end_reason, new.ended_at) == ("ended_by_user", None)
    assert second.client.get("/").status_code == 200 and first.client.get("/").status_code == 302


def test_the_session_limit_page_cannot_end_another_users_session(alice, app):
    make_user("bob")
    set_settings(max_sessions=1, on_limit=OnLimit.REFUSE)
    bobs, first, second = browsers(app, 3)
    bobs.login("bob")
    first.login()
    page = second.login().get_data(as_text=True)
    bob_row = session_rows()[0]
    second.client.post(
        "/login/end-session",
        data={"csrf_token": csrf_from(page), "username": "alice", "password": PASSWORD, "session_id": bob_row.id},
    )
    assert session_rows()[0].ended_at is None and bobs.client.get("/").status_code == 200


def test_expired_sessions_do_not_count_against_the_limit(alice, app, clock):
    set_settings(max_sessions=1, on_limit=OnLimit.REFUSE)
    first, second = browsers(app, 2)
    first.login()
    clock.advance(minutes=30)
    assert second.login().status_code == 303


@pytest.mark.parametrize("on_limit, status", [(OnLimit.END_OLDEST, 303), (OnLimit.REFUSE, 409)])
def test_racing_sign_ins_never_exceed_the_limit(alice, app, clock, on_limit, status):
    """Four browsers sign in at once, five rounds; the limit of one holds after each round."""
    set_settings(max_sessions=1, on_limit=on_limit)
    for _ in range(5):
        racers = browsers(app, 4)
        forms = [{"csrf_token": racer.csrf(), "username": "alice", "password": PASSWORD} for racer in racers]
        start = threading.Barrier(len(racers))
        statuses = []

        def sign_in(racer, form):
            start.wait()
            statuses.append(racer.client.post("/login", data=form).status_code)

        threads = [threading.Thread(target=sign_in, args=pair) for pair in zip(racers, forms)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(live(session_rows(), clock.now())) == 1
        assert status in statuses and set(statuses) <= {303, 409}
        clock.advance(minutes=31)  # everything expires before the next round


def test_an_account_disabled_while_its_password_was_being_checked_gets_no_session(app, clock):
    from sqlalchemy import update

    from directory import sessions, settings
    from directory.db import db
    from directory.models import User

    alice = make_user("alice", now=clock.now())  # loaded (and so "enabled") before the disable lands
    with db.engine.begin() as other_connection:  # an admin's request, committed in between
        other_connection.execute(update(User).where(User.id == alice.id).values(disabled=True))
    result = sessions.open(alice, settings.load(), now=clock.now())
    assert isinstance(result, sessions.Refused) and result.disabled
    assert session_rows() == []
