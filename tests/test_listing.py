"""directory/listing.py on its own: which sessions each filter finds, in which order, page by page.

Sessions are opened and ended through `directory.sessions`, as the app does; times come from
explicit `now` values, so ties in last activity are exact.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from directory import listing, logout, sessions, settings
from directory.listing import SessionFilter
from directory.policy import EndReason
from tests.conftest import START
from tests.factories import make_app_record, make_user

MINUTE = timedelta(minutes=1)
LATER = START + 10 * MINUTE  # every session opened below is still alive then (30 minutes idle)


def opened(user, at=START):
    return sessions.open(user, settings.load(), now=at).session


def ids(page) -> list[int]:
    return [row.id for row in page.rows]


def every_page(wanted=SessionFilter(), *, limit: int, now=LATER) -> list[list[int]]:
    """The ids of each page, following the cursors to the end."""
    pages, after = [], None
    while True:
        page = listing.sessions_page(wanted, now=now, limit=limit, after=after)
        pages.append(ids(page))
        if page.next_cursor is None:
            return pages
        after = page.next_cursor


@pytest.fixture
def alice(app):
    return make_user("alice")


@pytest.fixture
def bob(app):
    return make_user("bob")


def test_sessions_come_most_recent_activity_first_and_by_id_among_equals(alice, bob):
    early = opened(alice, START)
    tied = [opened(alice, START + MINUTE), opened(bob, START + MINUTE)]
    late = opened(bob, START + 2 * MINUTE)

    page = listing.sessions_page(SessionFilter(), now=LATER)

    assert ids(page) == [late.id, tied[1].id, tied[0].id, early.id]
    assert page.next_cursor is None


def test_the_user_filter_finds_only_that_users_sessions(alice, bob):
    mine = [opened(alice), opened(alice, START + MINUTE)]
    opened(bob)

    page = listing.sessions_page(SessionFilter(user_id=alice.id), now=LATER)

    assert ids(page) == [mine[1].id, mine[0].id]


def test_active_and_ended_split_the_sessions_between_them(alice):
    live = opened(alice)
    ended = opened(alice, START + MINUTE)
    sessions.end(ended, EndReason.SIGNED_OUT, now=START + 2 * MINUTE, actor=alice)

    assert ids(listing.sessions_page(SessionFilter(status="active"), now=LATER)) == [live.id]
    assert ids(listing.sessions_page(SessionFilter(status="ended"), now=LATER)) == [ended.id]


def test_a_session_past_its_deadline_that_no_sweep_has_ended_counts_as_ended_not_active(alice):
    stale = opened(alice, START)  # 30 minutes of inactivity end it at 09:30
    fresh = opened(alice, START + 20 * MINUTE)
    after_the_deadline = START + 31 * MINUTE

    assert stale.ended_at is None
    assert ids(listing.sessions_page(SessionFilter(status="active"), now=after_the_deadline)) == [fresh.id]
    assert ids(listing.sessions_page(SessionFilter(status="ended"), now=after_the_deadline)) == [stale.id]
    assert ids(listing.sessions_page(SessionFilter(status="active"), now=START + 29 * MINUTE)) == [fresh.id, stale.id]


def test_the_end_reason_filter_finds_sessions_ended_for_that_reason(alice, bob):
    by_admin = opened(alice)
    by_user = opened(alice, START + MINUTE)
    opened(bob)
    sessions.end(by_admin, EndReason.ENDED_BY_ADMIN, now=START + 2 * MINUTE, actor=bob)
    sessions.end(by_user, EndReason.ENDED_BY_USER, now=START + 2 * MINUTE, actor=alice)

    assert ids(listing.sessions_page(SessionFilter(end_reason="ended_by_admin"), now=LATER)) == [by_admin.id]
    assert ids(listing.sessions_page(SessionFilter(end_reason="ended_by_user", status="ended"), now=LATER)) == [by_user.id]
    assert ids(listing.sessions_page(SessionFilter(end_reason="ended_by_user", status="active"), now=LATER)) == []


def test_the_app_filter_finds_sessions_that_signed_in_to_the_app_once_each(alice, bob):
    crm, wiki = make_app_record("CRM"), make_app_record("Wiki")
    both, wiki_only, none = opened(alice), opened(bob, START + MINUTE), opened(bob, START + 2 * MINUTE)
    for session, app in ((both, crm), (both, wiki), (wiki_only, wiki)):
        logout.join(session, app, subject="s", now=START)
    # A second app session of CRM in the same directory session (the first one ended).
    sessions.end(both, EndReason.SIGNED_OUT, now=START + 3 * MINUTE, actor=alice)
    logout.join(both, crm, subject="s", now=START + 3 * MINUTE)

    assert ids(listing.sessions_page(SessionFilter(app_id=crm.id), now=LATER)) == [both.id]
    assert ids(listing.sessions_page(SessionFilter(app_id=wiki.id), now=LATER)) == [wiki_only.id, both.id]
    assert none.id not in ids(listing.sessions_page(SessionFilter(app_id=wiki.id), now=LATER))


def test_filters_combine(alice, bob):
    crm = make_app_record("CRM")
    target = opened(alice)
    for session in (target, opened(alice, START + MINUTE), opened(bob)):
        logout.join(session, crm, subject="s", now=START)
    sessions.end(target, EndReason.ENDED_BY_ADMIN, now=START + 2 * MINUTE, actor=bob)

    wanted = SessionFilter(user_id=alice.id, status="ended", app_id=crm.id, end_reason="ended_by_admin")

    assert ids(listing.sessions_page(wanted, now=LATER)) == [target.id]


def test_keyset_pages_visit_every_session_once_in_order_even_across_ties(alice):
    # Seven sessions, five of them sharing one instant of last activity: pages of two split the tie.
    opened_at = [START, START + MINUTE, START + MINUTE, START + MINUTE, START + MINUTE, START + MINUTE, START + 2 * MINUTE]
    rows = [opened(alice, at) for at in opened_at]
    expected = [row.id for row in sorted(rows, key=lambda row: (row.last_activity_at, row.id), reverse=True)]

    pages = every_page(limit=2)

    assert pages == [expected[0:2], expected[2:4], expected[4:6], expected[6:7]]


def test_a_page_exactly_full_at_the_end_has_no_next_cursor(alice):
    rows = [opened(alice, START + n * MINUTE) for n in range(4)]

    assert every_page(limit=2) == [[rows[3].id, rows[2].id], [rows[1].id, rows[0].id]]


def test_pages_follow_the_filter(alice, bob):
    mine = [opened(alice, START + n * MINUTE) for n in range(3)]
    for n in range(3):
        opened(bob, START + n * MINUTE)

    assert every_page(SessionFilter(user_id=alice.id), limit=2) == [[mine[2].id, mine[1].id], [mine[0].id]]


def test_the_page_size_is_kept_between_one_and_the_maximum(alice):
    for n in range(3):
        opened(alice, START + n * MINUTE)

    assert len(listing.sessions_page(SessionFilter(), now=LATER, limit=0).rows) == 1
    assert len(listing.sessions_page(SessionFilter(), now=LATER, limit=10_000).rows) == 3


@pytest.mark.parametrize("cursor", ["abc", "1", "1.2.3", "x.1", "1.x", "99999999999999999999999.1"])
def test_a_cursor_not_made_by_the_listing_is_refused(app, cursor):
    with pytest.raises(listing.BadCursor):
        listing.sessions_page(SessionFilter(), now=LATER, after=cursor)


def test_apps_of_names_each_sessions_apps_once_by_name_and_no_app_as_an_empty_list(alice):
    wiki, crm = make_app_record("wiki"), make_app_record("CRM")
    first, second, bare = opened(alice), opened(alice), opened(alice)
    for app in (wiki, crm):
        logout.join(first, app, subject="s", now=START)
    logout.join(second, wiki, subject="s", now=START)
    sessions.end(second, EndReason.SIGNED_OUT, now=START, actor=alice)
    logout.join(second, wiki, subject="s", now=START)  # a second app session of the same app

    found = listing.apps_of([first.id, second.id, bare.id])

    assert {session_id: [app.name for app in apps] for session_id, apps in found.items()} == {
        first.id: ["CRM", "wiki"], second.id: ["wiki"], bare.id: [],
    }
    assert listing.apps_of([]) == {}


def test_a_page_carries_the_apps_of_its_rows(alice):
    crm = make_app_record("CRM")
    session = opened(alice)
    logout.join(session, crm, subject="s", now=START)

    page = listing.sessions_page(SessionFilter(), now=LATER)

    assert {session_id: [app.name for app in apps] for session_id, apps in page.apps.items()} == {session.id: ["CRM"]}
