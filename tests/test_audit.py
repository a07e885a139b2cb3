"""The audit trail: what each action people take leaves in it, the admin's audit page and its
CSV export (/admin/audit, /admin/audit.csv), and how long events are kept (`audit_retention`,
enforced by the sweep).

Events are produced the way people produce them (the portal, the admin pages, the CLI) and
read back from the database or the pages. Time moves only with the clock.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
import responses
from flask_migrate import downgrade, upgrade
from sqlalchemy import bindparam, func, select, text

from directory import audit, logout, settings
from directory.db import UTCDateTime, db
from directory.models import AuditEvent, DirectorySession, User
from directory.policy import OnLimit
from idp import admin_audit, background
from idp.database import MIGRATIONS
from tests.conftest import PASSWORD, START, Portal, csrf_from
from tests.factories import make_oidc_client, make_user, session_rows, set_settings
from tests.test_admin_settings import errors_next_to, full_form, shown_values, stored

ADMIN = "root"
PAGE, CSV = "/admin/audit", "/admin/audit.csv"
VISITOR_IP = "203.0.113.7"
WRONG_PASSWORD = "Tr0ub4dor&3-not-it"
DEFAULT_AUDIT_RETENTION = timedelta(days=365)
ROOT = Path(__file__).resolve().parent.parent


# --- helpers ---------------------------------------------------------------------------------


def events(action: str | None = None) -> list[AuditEvent]:
    """The committed events (of `action`), oldest first."""
    db.session.expire_all()
    query = select(AuditEvent).order_by(AuditEvent.id)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    return list(db.session.scalars(query))


def every_column(event: AuditEvent) -> str:
    """Everything the row holds, as text, to search for what must never be stored."""
    return repr([getattr(event, column.key) for column in AuditEvent.__table__.columns])


def browser_at(app, ip: str = VISITOR_IP) -> Portal:
    """A new browser whose requests come from `ip`."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return Portal(client)


def cli(app, *args: str):
    result = app.test_cli_runner().invoke(args=list(args))
    db.session.rollback()
    return result


def seed(count: int, *, action: str = "settings.changed", first: datetime = START + timedelta(minutes=1), step=timedelta(minutes=1)):
    """`count` events of `action`, one per `step` from `first`, targets t-000, t-001, ..."""
    for number in range(count):
        audit.record(action, now=first + number * step, actor_label="test", target=f"t-{number:03}")
    db.session.commit()


class _Table(HTMLParser):
    """The audit page's table body as rows of cell texts (each cell's text, trimmed)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._body = False
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "tbody":
            self._body = True
        elif tag == "tr" and self._body:
            self.rows.append([])
        elif tag == "td" and self._body:
            self._cell = []
        elif self._cell is not None:
            self._cell.append(" ")  # a line inside the cell

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._body = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def table(response) -> list[list[str]]:
    assert response.status_code == 200, response.status_code
    return _Table(response.get_data(as_text=True)).rows


def targets(response) -> list[str]:
    return [row[3] for row in table(response)]


def next_link(response) -> str | None:
    match = re.search(r'<a href="([^"]+)" rel="next">', response.get_data(as_text=True))
    return match and match.group(1).replace("&amp;", "&")


def csv_rows(response) -> list[list[str]]:
    assert response.status_code == 200, response.status_code
    assert response.mimetype == "text/csv"
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def sign_in(app, username: str, role: str = "user"):
    make_user(username, role=role)
    browser = Portal(app.test_client())
    assert browser.login(username).status_code == 303
    return browser.client


@pytest.fixture
def alice(app) -> User:
    return make_user("alice")


@pytest.fixture
def admin(app):
    """The admin's browser, signed in."""
    return sign_in(app, ADMIN, "admin")


# --- sign-in ---------------------------------------------------------------------------------


def test_a_sign_in_records_who_signed_in_to_which_session_from_where(app, alice):
    assert browser_at(app).login("alice").status_code == 303

    (event,) = events("signin.success")
    (session,) = session_rows(alice)
    assert (event.actor, event.actor_id, event.target, event.target_user_id) == ("alice", alice.id, f"session {session.id}", alice.id)
    assert (event.at, event.ip_address) == (START, VISITOR_IP)


@pytest.mark.parametrize(
    ("username", "password", "reason"),
    [("nobody", PASSWORD, "unknown_user"), ("alice", WRONG_PASSWORD, "bad_password"), ("nobody", WRONG_PASSWORD, "unknown_user")],
    ids=["unknown-user", "wrong-password", "unknown-user-wrong-password"],
)
def test_a_failed_sign_in_records_the_attempted_username_the_reason_and_the_address(app, alice, username, password, reason):
    assert browser_at(app).login(username, password).status_code == 401

    (event,) = events("signin.failure")
    assert (event.actor, event.actor_id, event.target, event.ip_address) == ("system", None, username, VISITOR_IP)
    assert event.detail == {"reason": reason}
    assert session_rows() == []


def test_a_failed_sign_in_stores_the_password_nowhere_in_the_trail(app, alice):
    browser_at(app).login("alice", WRONG_PASSWORD)
    browser_at(app).login("alice", PASSWORD)

    assert [event.action for event in events()][-2:] == ["signin.failure", "signin.success"]
    for event in events():
        assert WRONG_PASSWORD not in every_column(event) and PASSWORD not in every_column(event)


def test_a_disabled_user_signing_in_with_the_right_password_is_recorded_as_disabled(app, alice):
    alice.disabled = True
    db.session.commit()

    assert browser_at(app).login("alice").status_code == 401

    (event,) = events("signin.failure")
    assert (event.target, event.detail) == ("alice", {"reason": "disabled"})


def test_a_sign_in_refused_at_the_session_limit_is_recorded_with_its_reason(app, alice):
    set_settings(max_sessions=1, on_limit=OnLimit.REFUSE)
    assert browser_at(app).login("alice").status_code == 303

    assert browser_at(app, "198.51.100.9").login("alice").status_code == 409

    (event,) = events("signin.refused")
    assert (event.actor, event.target, event.ip_address, event.detail) == ("alice", "alice", "198.51.100.9", {"reason": "session_limit"})


# --- sign-out, expiry and every other ending ---------------------------------------------


def ended_events() -> list[tuple[str, int | None, str, int | None, str]]:
    """(actor, actor_id, target, target_user_id, reason) of each session.ended event."""
    return [(e.actor, e.actor_id, e.target, e.target_user_id, e.detail["reason"]) for e in events("session.ended")]


def test_signing_out_records_that_the_user_ended_their_own_session(app, alice):
    browser = browser_at(app)
    browser.login("alice")
    (session,) = session_rows(alice)

    assert browser.logout().status_code == 303

    assert ended_events() == [("alice", alice.id, f"session {session.id}", alice.id, "signed_out")]


def test_an_expiry_noticed_by_the_next_request_is_recorded_as_the_system_ending_it(app, alice, clock):
    browser = browser_at(app)
    browser.login("alice")
    (session,) = session_rows(alice)

    clock.advance(minutes=31)
    browser.client.get("/")

    assert ended_events() == [("system", None, f"session {session.id}", alice.id, "idle_timeout")]


def test_an_expiry_found_by_the_sweep_is_recorded_with_its_reason(app, alice, clock):
    set_settings(inactivity=None)
    browser_at(app).login("alice")
    (session,) = session_rows(alice)

    clock.advance(hours=8)
    background.sweep_once(app)

    assert ended_events() == [("system", None, f"session {session.id}", alice.id, "absolute_timeout")]


def test_an_admin_ending_a_session_is_recorded_as_that_admin_ending_the_users_session(app, alice, admin):
    browser_at(app).login("alice")
    (session,) = session_rows(alice)
    root = db.session.scalar(select(User).where(User.username == ADMIN))

    token = csrf_from(admin.get("/admin/sessions").data)
    assert admin.post(f"/admin/sessions/{session.id}/end", data={"csrf_token": token}).status_code == 303

    assert ended_events() == [(ADMIN, root.id, f"session {session.id}", alice.id, "ended_by_admin")]


def test_ending_a_session_from_the_command_line_is_recorded_as_the_cli(app, alice):
    browser_at(app).login("alice")
    (session,) = session_rows(alice)

    assert cli(app, "sessions", "end", str(session.id)).exit_code == 0

    assert ended_events() == [("cli", None, f"session {session.id}", alice.id, "ended_by_admin")]


def test_a_sign_in_over_the_session_limit_records_the_oldest_session_ending_with_its_reason(app, alice, clock):
    set_settings(max_sessions=1)
    browser_at(app).login("alice")
    (oldest,) = session_rows(alice)

    clock.advance(minutes=1)
    browser_at(app).login("alice")

    assert ended_events() == [("system", None, f"session {oldest.id}", alice.id, "session_limit")]


# --- settings, roles, logout deliveries ------------------------------------------------------


def test_a_settings_change_records_who_changed_which_setting_from_what_to_what(app, admin):
    token = csrf_from(admin.get("/admin/settings").data)
    form = full_form(settings.load(), csrf_token=token, audit_retention_value="400", audit_retention_unit="d")

    assert admin.post("/admin/settings", data=form, environ_base={"REMOTE_ADDR": VISITOR_IP}).status_code == 303

    (event,) = events("settings.changed")
    assert (event.actor, event.target, event.ip_address, event.detail) == (ADMIN, "audit_retention", VISITOR_IP, {"old": "365d", "new": "400d"})


def test_a_role_change_records_the_user_and_the_old_and_new_role(app, alice):
    assert cli(app, "users", "set-role", "alice", "session-manager").exit_code == 0

    (event,) = events("user.role_changed")
    assert (event.actor, event.target, event.target_user_id) == ("cli", "alice", alice.id)
    assert event.detail == {"old": "user", "new": "session-manager"}


def test_a_logout_notice_that_keeps_failing_is_recorded_as_failed_once_retries_end(app, alice, clock):
    app.config["LOGOUT_RETRY_WINDOW"] = 60
    client, _ = make_oidc_client("CRM")
    browser = browser_at(app)
    browser.login("alice")
    (session,) = session_rows(alice)
    logout.join(session, client.app, subject="alice", now=clock.now())
    db.session.commit()
    browser.logout()

    from idp import delivery

    with responses.RequestsMock() as http:
        http.post("https://crm.example/logout", status=503)
        assert delivery.deliver_due(now=clock.now(), jitter=lambda: 1.0)["retrying"] == 1
        assert events("logout.delivery_failed") == []
        clock.advance(seconds=60)
        assert delivery.deliver_due(now=clock.now(), jitter=lambda: 1.0)["failed"] == 1

    (event,) = events("logout.delivery_failed")
    assert (event.actor, event.target, event.target_user_id, event.at) == ("system", "CRM", alice.id, clock.now())
    assert event.detail == {"channel": "back", "attempts": 2, "error": "HTTP 503 from https://crm.example/logout"}


def test_every_action_the_code_records_can_be_chosen_on_the_audit_page():
    """A new `audit.record("x.y", ...)` must be added to audit.ACTIONS, or nobody can filter for it."""
    recorded = set()
    for path in [*ROOT.joinpath("directory").rglob("*.py"), *ROOT.joinpath("idp").rglob("*.py")]:
        recorded |= set(re.findall(r"""record\(\s*["']([a-z_]+\.[a-z_.]+)["']""", path.read_text()))
    assert {"signin.success", "signin.failure", "session.ended", "settings.changed"} <= recorded  # the scan works
    assert recorded - set(audit.ACTIONS) == set()


# --- the audit page: who may see it ----------------------------------------------------------


@pytest.mark.parametrize("url", [PAGE, CSV])
@pytest.mark.parametrize("role", ["user", "session-manager"])
def test_someone_without_the_audit_permission_is_forbidden(app, role, url):
    browser = sign_in(app, "bob", role)

    response = browser.get(url)

    assert response.status_code == 403
    assert "bob" not in response.get_data(as_text=True).split("</header>", 1)[1]


@pytest.mark.parametrize("url", [PAGE, CSV])
def test_an_anonymous_visitor_is_sent_to_sign_in(client, url):
    response = client.get(url)

    assert response.status_code == 302 and response.location.startswith("/login")


@pytest.mark.parametrize("url", [PAGE, CSV])
def test_an_admin_may_see_the_audit_log(app, admin, url):
    assert admin.get(url).status_code == 200


def test_the_audit_link_is_shown_only_to_those_who_may_see_the_log(app, admin):
    user = sign_in(app, "bob")

    assert f'href="{PAGE}"' in admin.get("/").get_data(as_text=True)
    assert f'href="{PAGE}"' not in user.get("/").get_data(as_text=True)


# --- the audit page: what it shows -----------------------------------------------------------


def test_the_page_shows_when_what_who_to_whom_from_where_and_the_details_newest_first(app, admin, alice):
    browser_at(app).login("alice", WRONG_PASSWORD)
    set_settings(START + timedelta(minutes=1), absolute=timedelta(hours=12))

    rows = table(admin.get(PAGE))

    assert rows[0] == ["2026-01-05 09:01:00 UTC", "Setting changed settings.changed", "test", "absolute", "", "changed: 8h → 12h"]
    assert rows[1] == ["2026-01-05 09:00:00 UTC", "Sign-in failed signin.failure", "system", "alice", VISITOR_IP, "reason: bad_password"]
    assert len(rows) == len(events())


def test_the_page_names_whose_session_an_event_is_about(app, admin, alice):
    browser = browser_at(app)
    browser.login("alice")
    (session,) = session_rows(alice)
    browser.logout()

    (ended,) = table(admin.get(PAGE, query_string={"action": "session.ended"}))

    assert ended[2:5] == ["alice", f"session {session.id} of alice", ""]


def test_nested_details_are_written_out_readably(app, admin):
    audit.record("app.settings_changed", now=START, actor_label="test", target="CRM",
                 changes={"single_logout": {"old": True, "new": False}}, redirect_uris=["https://a.example/cb", "https://b.example/cb"])
    db.session.commit()

    (row,) = [row for row in table(admin.get(PAGE, query_string={"action": "app.settings_changed"}))]

    assert row[5] == "changes: single logout: yes → no redirect uris: https://a.example/cb, https://b.example/cb"


def test_text_people_typed_is_shown_as_text_not_markup(app, admin):
    browser_at(app).login("<script>alert(1)</script>", WRONG_PASSWORD)

    page = admin.get(PAGE).get_data(as_text=True)

    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# --- the audit page: filters -----------------------------------------------------------------


def test_filtering_by_action_shows_only_that_action(app, admin, alice):
    browser_at(app).login("alice", WRONG_PASSWORD)
    browser_at(app).login("alice")

    rows = table(admin.get(PAGE, query_string={"action": "signin.failure"}))

    assert [row[1] for row in rows] == ["Sign-in failed signin.failure"]


def test_the_chosen_action_stays_selected_in_the_form(app, admin):
    page = admin.get(PAGE, query_string={"action": "session.ended"}).get_data(as_text=True)

    assert '<option value="session.ended" selected>' in page


def test_filtering_by_actor_matches_the_username_in_any_case(app, admin, alice):
    browser_at(app).login("alice")
    seed(2)

    assert [row[2] for row in table(admin.get(PAGE, query_string={"actor": "ALICE"}))] == ["alice"]
    assert [row[2] for row in table(admin.get(PAGE, query_string={"actor": "test"}))] == ["test", "test"]


def test_filtering_by_target_finds_events_naming_it_and_events_about_that_user(app, admin, alice):
    browser = browser_at(app)
    browser.login("alice", WRONG_PASSWORD)
    browser.login("alice")
    browser.logout()
    seed(1)

    rows = table(admin.get(PAGE, query_string={"target": "Alice"}))

    assert [row[1].split()[-1] for row in rows] == ["session.ended", "signin.success", "signin.failure", "user.created"]


def test_filtering_by_dates_includes_both_whole_days_in_utc(app, admin):
    for moment, name in [
        (datetime(2026, 1, 2, 23, 59, 59, tzinfo=UTC), "before"),
        (datetime(2026, 1, 3, 0, 0, 0, tzinfo=UTC), "first-instant"),
        (datetime(2026, 1, 4, 23, 59, 59, tzinfo=UTC), "last-second"),
        (datetime(2026, 1, 5, 0, 0, 0, tzinfo=UTC), "after"),
    ]:
        audit.record("settings.changed", now=moment, actor_label="test", target=name)
    db.session.commit()

    shown = targets(admin.get(PAGE, query_string={"from": "2026-01-03", "to": "2026-01-04"}))

    assert shown == ["last-second", "first-instant"]
    assert targets(admin.get(PAGE, query_string={"from": "2026-01-05", "action": "settings.changed"})) == ["after"]
    assert targets(admin.get(PAGE, query_string={"to": "2026-01-02"})) == ["before"]


def test_filters_combine(app, admin, alice):
    browser_at(app).login("alice", WRONG_PASSWORD)
    browser_at(app).login("alice")
    browser_at(app).login("nobody", WRONG_PASSWORD)

    rows = table(admin.get(PAGE, query_string={"action": "signin.failure", "target": "alice", "from": "2026-01-05", "to": "2026-01-05"}))

    assert [(row[1].split()[-1], row[3]) for row in rows] == [("signin.failure", "alice")]


BAD_FILTERS = {
    "unknown-action": ({"action": "signin.hacked"}, "There is no audit action 'signin.hacked'"),
    "malformed-date": ({"from": "05/01/2026"}, "must be a day written YYYY-MM-DD"),
    "impossible-date": ({"to": "2026-02-30"}, "must be a day written YYYY-MM-DD"),
    "week-date": ({"from": "2026-W01-1"}, "must be a day written YYYY-MM-DD"),
    "from-after-to": ({"from": "2026-01-06", "to": "2026-01-05"}, "The 'from' date must not be after the 'to' date."),
    "long-actor": ({"actor": "a" * 151}, "The actor filter is at most 150 characters long."),
    "long-target": ({"target": "t" * 201}, "The target filter is at most 200 characters long."),
}


@pytest.mark.parametrize("url", [PAGE, CSV])
@pytest.mark.parametrize(("query", "message"), BAD_FILTERS.values(), ids=BAD_FILTERS.keys())
def test_a_filter_that_cannot_be_read_is_a_400_saying_what_is_wrong(app, admin, url, query, message):
    response = admin.get(url, query_string=query)

    assert response.status_code == 400
    assert message in response.get_data(as_text=True).replace("&#39;", "'")


@pytest.mark.parametrize("cursor", ["abc", "-5", "１２", "9" * 19, "1.5"], ids=["letters", "negative", "wide-digits", "too-long", "fraction"])
def test_a_page_link_that_is_not_ours_is_a_400(app, admin, cursor):
    response = admin.get(PAGE, query_string={"after": cursor})

    assert response.status_code == 400
    assert "This page link is not valid." in response.get_data(as_text=True)


# --- the audit page: paging ------------------------------------------------------------------


def test_pages_follow_one_another_newest_first_without_gaps_or_repeats_keeping_the_filters(app, admin):
    seed(120)
    expected = [f"t-{number:03}" for number in reversed(range(120))]

    first = admin.get(PAGE, query_string={"action": "settings.changed"})
    second = admin.get(next_link(first))
    third = admin.get(next_link(second))

    assert [len(targets(page)) for page in (first, second, third)] == [50, 50, 20]
    assert targets(first) + targets(second) + targets(third) == expected
    assert "action=settings.changed" in next_link(first) and next_link(third) is None


def test_the_last_page_of_an_unfiltered_log_ends_with_the_oldest_event(app, admin):
    seed(60)

    first = admin.get(PAGE)
    second = admin.get(next_link(first))

    assert len(targets(first)) + len(targets(second)) == len(events()) and next_link(second) is None
    assert targets(first)[0] == "t-059"
    assert targets(second)[-3:] == ["t-000", f"session {session_rows()[0].id} of {ADMIN}", ADMIN]  # the admin's sign-in, creation
    assert "First page" in second.get_data(as_text=True)


# --- CSV export ------------------------------------------------------------------------------


def test_the_export_has_a_header_and_every_matching_event_not_only_one_page(app, admin):
    seed(120)

    rows = csv_rows(admin.get(CSV, query_string={"action": "settings.changed"}))

    assert rows[0] == ["id", "when", "action", "actor", "target", "target_user", "ip_address", "details"]
    assert [row[4] for row in rows[1:]] == [f"t-{number:03}" for number in reversed(range(120))]
    assert rows[1][1:] == ["2026-01-05T11:00:00+00:00", "settings.changed", "test", "t-119", "", "", "{}"]


def test_the_export_without_filters_holds_the_whole_log_as_stored(app, admin, alice):
    browser_at(app).login("alice", WRONG_PASSWORD)

    rows = csv_rows(admin.get(CSV))

    stored_events = list(reversed(events()))
    assert [int(row[0]) for row in rows[1:]] == [event.id for event in stored_events]
    assert rows[1][2:] == ["signin.failure", "system", "alice", "", VISITOR_IP, '{"reason":"bad_password"}']
    signed_in = rows[[row[2] for row in rows].index("signin.success")]
    assert signed_in[3:6] == [ADMIN, f"session {session_rows()[0].id}", ADMIN]


def test_the_export_is_a_download_that_is_never_cached(app, admin):
    response = admin.get(CSV)

    assert response.headers["Content-Disposition"] == 'attachment; filename="audit.csv"'
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("typed", ["=HYPERLINK(\"https://evil.example\")", "+1+1", "-2+3", "@SUM(A1)", "\tTAB"])
def test_a_cell_a_spreadsheet_would_run_as_a_formula_is_exported_as_text(app, admin, typed):
    audit.record("signin.failure", now=START, target=typed, ip="", reason="unknown_user")
    db.session.commit()

    rows = csv_rows(admin.get(CSV, query_string={"action": "signin.failure"}))

    assert rows[1][4] == "'" + typed


def test_commas_quotes_and_line_breaks_survive_the_export(app, admin):
    audit.record("signin.failure", now=START, target='a,"b"\nc', reason="unknown_user")
    db.session.commit()

    rows = csv_rows(admin.get(CSV, query_string={"action": "signin.failure"}))

    assert rows[1][4] == 'a,"b"\nc' and rows[1][7] == '{"reason":"unknown_user"}'


def test_the_export_reads_the_log_a_batch_at_a_time_and_misses_nothing(app, admin, monkeypatch):
    monkeypatch.setattr(admin_audit, "EXPORT_BATCH", 5)
    seed(23)
    seed(3, action="session.ended")

    rows = csv_rows(admin.get(CSV, query_string={"action": "settings.changed"}))

    assert [row[4] for row in rows[1:]] == [f"t-{number:03}" for number in reversed(range(23))]


# --- retention -------------------------------------------------------------------------------


def sweep_in_server(app) -> None:
    background.sweep_once(app)


def sweep_by_command(app) -> None:
    assert cli(app, "sessions", "sweep").exit_code == 0


@pytest.mark.parametrize("sweep", [sweep_in_server, sweep_by_command], ids=["background", "cli"])
def test_the_sweep_deletes_events_older_than_the_audit_retention_and_not_a_second_sooner(app, clock, sweep):
    set_settings(audit_retention=timedelta(days=2))  # its own settings.changed event, at START
    seed(1, first=START)
    seed(1, first=START + timedelta(seconds=1), action="session.ended")

    clock.advance(days=2)
    sweep(app)
    assert [event.at for event in events()] == [START, START, START + timedelta(seconds=1)]

    clock.advance(seconds=1)
    sweep(app)
    assert [(event.action, event.at) for event in events()] == [("session.ended", START + timedelta(seconds=1))]

    clock.advance(seconds=1)
    sweep(app)
    assert events() == []


def test_by_default_events_are_kept_for_365_days(app, clock):
    seed(1, first=START)

    clock.advance(days=365)
    background.sweep_once(app)
    assert len(events()) == 1

    clock.advance(seconds=1)
    background.sweep_once(app)
    assert events() == []


def test_the_sweep_command_says_how_many_audit_events_it_deleted(app, clock):
    set_settings(audit_retention=timedelta(days=1))
    seed(2, first=START, step=timedelta(0))

    clock.advance(days=1, seconds=1)
    result = cli(app, "sessions", "sweep")

    assert result.output == "Ended 0 expired session(s); purged 0 past retention.\nDeleted 3 audit event(s) older than 1 day.\n"


def test_the_sweep_keeps_the_audit_retention_apart_from_the_session_retention(app, alice, clock):
    set_settings(retention=timedelta(days=1), audit_retention=timedelta(days=10))
    browser = browser_at(app)
    browser.login("alice")
    browser.logout()

    clock.advance(days=2)
    background.sweep_once(app)

    assert db.session.scalar(select(func.count()).select_from(DirectorySession)) == 0
    assert [event.action for event in events()][-2:] == ["signin.success", "session.ended"]


# --- the audit_retention setting ------------------------------------------------------------


def save_settings(admin, **changes):
    changes.setdefault("csrf_token", csrf_from(admin.get("/admin/settings").data))
    return admin.post("/admin/settings", data=full_form(stored(), **changes))


def test_the_settings_page_shows_the_audit_retention_and_its_default(app, admin):
    set_settings(audit_retention=timedelta(days=400))

    response = admin.get("/admin/settings")

    values = shown_values(response)
    assert (values["audit_retention_value"], values["audit_retention_unit"]) == ("400", "d")
    assert "Default: 365 days" in response.get_data(as_text=True)


@pytest.mark.parametrize(("value", "unit", "kept"), [("1", "d", timedelta(days=1)), ("3650", "d", timedelta(days=3650)), ("24", "h", timedelta(days=1))])
def test_the_settings_page_stores_an_audit_retention_within_its_range(app, admin, value, unit, kept):
    response = save_settings(admin, audit_retention_value=value, audit_retention_unit=unit)

    assert response.status_code == 303
    assert stored().audit_retention == kept


@pytest.mark.parametrize(
    ("value", "unit", "message"),
    [("0", "d", "must be between 1 day and 3650 days"), ("23", "h", "must be between 1 day and 3650 days"),
     ("3651", "d", "must be between 1 day and 3650 days"), ("a year", "d", "enter a whole number"), ("1", "y", "choose a unit")],
    ids=["0-days", "23-hours", "3651-days", "words", "unknown-unit"],
)
def test_the_settings_page_refuses_an_audit_retention_out_of_range_and_changes_nothing(app, admin, value, unit, message):
    before = events()

    response = save_settings(admin, audit_retention_value=value, audit_retention_unit=unit)

    assert response.status_code == 400
    assert message in errors_next_to(response, "audit_retention")
    assert stored() == settings.SessionSettings()
    assert events() == before


def test_settings_set_changes_the_audit_retention_and_settings_show_prints_it(app):
    result = cli(app, "settings", "set", "--audit-retention", "400d")

    assert (result.exit_code, result.output) == (0, "Changed: audit_retention.\n")
    assert settings.load().audit_retention == timedelta(days=400)
    assert '"audit_retention": "400d"' in cli(app, "settings", "show").output
    (event,) = events("settings.changed")
    assert (event.actor, event.target, event.detail) == ("cli", "audit_retention", {"old": "365d", "new": "400d"})


@pytest.mark.parametrize(
    ("value", "message"),
    [("0d", "audit_retention: must be between 1 day and 3650 days"), ("3651d", "audit_retention: must be between 1 day and 3650 days"),
     ("soon", "--audit-retention: 'soon' is not a duration")],
    ids=["0-days", "3651-days", "not-a-duration"],
)
def test_settings_set_refuses_a_bad_audit_retention_and_changes_nothing(app, value, message):
    result = cli(app, "settings", "set", "--audit-retention", value, "--absolute", "12h")

    assert result.exit_code == 1
    assert result.stdout == "" and result.stderr.startswith("Error: ") and message in result.stderr
    assert settings.load() == settings.SessionSettings()
    assert events() == []


# --- the migration ---------------------------------------------------------------------------


@pytest.fixture
def database_at_0008(app):
    db.drop_all()
    db.session.execute(text("DROP TABLE IF EXISTS alembic_version"))
    db.session.commit()
    upgrade(directory=MIGRATIONS, revision="0008")
    yield
    db.session.rollback()  # a transaction left open would hold the locks the downgrade needs (PostgreSQL)
    downgrade(directory=MIGRATIONS, revision="base")
    db.session.execute(text("DROP TABLE IF EXISTS alembic_version"))
    db.session.commit()


def test_migrating_keeps_stored_settings_and_gives_them_the_default_audit_retention(database_at_0008):
    db.session.execute(text(
        "INSERT INTO directory_settings (id, inactivity_seconds, absolute_seconds, persistent_login, max_sessions, on_limit,"
        " signout_url, retention_seconds, signout_apps_on_expiry, updated_at)"
        " VALUES (1, 600, 7200, :no, NULL, 'refuse', NULL, 86400, :no, :at)"
    ).bindparams(bindparam("at", type_=UTCDateTime())), {"no": False, "at": START})
    db.session.commit()

    upgrade(directory=MIGRATIONS, revision="0009")

    db.session.expire_all()
    loaded = settings.load()
    assert loaded.audit_retention == DEFAULT_AUDIT_RETENTION
    assert (loaded.absolute, loaded.on_limit, loaded.retention) == (timedelta(hours=2), OnLimit.REFUSE, timedelta(days=1))
