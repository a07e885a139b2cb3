"""The admin's session-settings page, /admin/settings, as people use it through a browser.

Each test changes one thing on a full, valid form built from the stored settings, then checks
what the admin sees (status, Location, page text, the form as re-shown) and what the database
holds (the settings row, audit events, signed-in sessions). Time moves only with the clock.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from html.parser import HTMLParser
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from directory import durations, settings
from directory.db import db
from directory.models import AuditEvent
from directory.policy import OnLimit
from tests.conftest import START, Portal, csrf_from
from tests.factories import make_user, session_rows, set_settings

ADMIN = "root"
PAGE = "/admin/settings"
DEFAULTS = settings.SessionSettings()
NOTHING_SAVED = "Nothing was saved: fix the fields marked below."
CUSTOM = replace(
    DEFAULTS,
    inactivity=timedelta(minutes=45),
    absolute=timedelta(hours=12),
    persistent_login=True,
    max_sessions=5,
    on_limit=OnLimit.REFUSE,
    signout_url="https://intranet.example/bye",
    retention=timedelta(days=7),
)


# --- helpers -------------------------------------------------------------------------------


def full_form(current: settings.SessionSettings, **changes: str | None) -> dict[str, str]:
    """Every field of the settings form holding `current`, as a browser would submit it
    untouched, with `changes` on top. A change of None leaves the field out (an unchecked box)."""
    form = {
        "persistent_login": "on" if current.persistent_login else None,
        "signout_apps_on_expiry": "on" if current.signout_apps_on_expiry else None,
    }
    for name in ("inactivity", "absolute", "retention", "audit_retention"):
        count, unit = durations.largest_unit(getattr(current, name) or getattr(DEFAULTS, name))
        form[f"{name}_value"], form[f"{name}_unit"] = str(count), unit
    form.update(
        inactivity_enabled="on" if current.inactivity else None,
        max_sessions_enabled="on" if current.max_sessions else None,
        max_sessions=str(current.max_sessions or 3),
        on_limit=current.on_limit.value,
        signout_url=current.signout_url or "",
    )
    form.update(changes)
    return {name: value for name, value in form.items() if value is not None}


def stored() -> settings.SessionSettings:
    """The settings as committed, not as this test's session last saw them."""
    db.session.expire_all()
    return settings.load()


def audit_events(action: str = "settings.changed") -> list[tuple[str, str, dict]]:
    """(actor, target, detail) of every audit event for `action`, oldest first."""
    db.session.expire_all()
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
    return [(event.actor, event.target, event.detail) for event in db.session.scalars(query)]


def csrf_of(browser) -> str:
    """The browser's CSRF token, from whatever page "/" leads it to (home, or sign-in)."""
    return csrf_from(browser.get("/", follow_redirects=True).data)


def save(browser, **changes: str | None):
    """Submit the settings form from `browser`: the stored settings with `changes`."""
    changes.setdefault("csrf_token", csrf_of(browser))
    return browser.post(PAGE, data=full_form(stored(), **changes))


def sign_in(app, username: str, role: str = "user"):
    """A new browser, signed in as a new user with `role`."""
    make_user(username, role=role)
    browser = Portal(app.test_client())
    assert browser.login(username).status_code == 303
    return browser.client


def stay_active(clock, minutes: int, *browsers) -> None:
    """Let `minutes` pass, then have each browser load the home page (activity)."""
    clock.advance(minutes=minutes)
    for browser in browsers:
        assert browser.get("/").status_code == 200


def sent_to_sign_in(response) -> bool:
    return response.status_code in (302, 303) and urlsplit(response.location).path == "/login"


class _FormReader(HTMLParser):
    """Reads a page as a browser shows it: each control's value (checked boxes and selected
    options only), and the error messages inside each fieldset with the names it holds."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self.fieldsets: list[tuple[set[str], list[str]]] = []
        self._fieldset: tuple[set[str], list[str]] | None = None
        self._select: str | None = None
        self._error: list[str] | None = None
        self.feed(html)

    def _control(self, name: str, value: str | None) -> None:
        if self._fieldset is not None:
            self._fieldset[0].add(name)
        if value is not None:
            self.values[name] = value

    def handle_starttag(self, tag, attrs):
        attr = dict(attrs)
        if tag == "fieldset":
            self._fieldset = (set(), [])
            self.fieldsets.append(self._fieldset)
        elif tag == "input" and attr.get("name"):
            checkbox = attr.get("type") == "checkbox"
            shown = attr.get("value", "on") if "checked" in attr else None
            self._control(attr["name"], shown if checkbox else attr.get("value", ""))
        elif tag == "select":
            self._select = attr["name"]
            self._control(self._select, None)
        elif tag == "option" and self._select and ("selected" in attr or self._select not in self.values):
            self.values[self._select] = attr["value"]  # the first option until one is selected
        elif tag == "span" and "field-error" in attr.get("class", "").split():
            self._error = []

    def handle_endtag(self, tag):
        if tag == "fieldset":
            self._fieldset = None
        elif tag == "select":
            self._select = None
        elif tag == "span" and self._error is not None:
            if self._fieldset is not None:
                self._fieldset[1].append("".join(self._error).strip())
            self._error = None

    def handle_data(self, data):
        if self._error is not None:
            self._error.append(data)


def shown_values(response) -> dict[str, str]:
    """What the settings form on this page would submit, without the CSRF token."""
    values = _FormReader(response.get_data(as_text=True)).values
    values.pop("csrf_token", None)
    return values


def errors_next_to(response, field: str) -> list[str]:
    """The error messages in the fieldset holding `field` (its control, or `field`_value)."""
    for names, errors in _FormReader(response.get_data(as_text=True)).fieldsets:
        if field in names or f"{field}_value" in names:
            return errors
    raise AssertionError(f"the page has no field {field!r}")


@pytest.fixture
def admin(app, portal):
    """The admin's browser, signed in at the clock's start."""
    make_user(ADMIN, role="admin")
    assert portal.login(ADMIN).status_code == 303
    return portal.client


# --- who may use the page ------------------------------------------------------------------


def test_an_anonymous_visitor_is_sent_to_sign_in_and_then_back_to_the_page(client):
    response = client.get(PAGE)

    assert response.status_code == 302
    assert sent_to_sign_in(response)
    assert parse_qs(urlsplit(response.location).query) == {"next": [PAGE]}


def test_an_anonymous_post_is_sent_to_sign_in_and_changes_nothing(client):
    response = save(client, absolute_value="12", absolute_unit="h")

    assert sent_to_sign_in(response)
    assert stored() == DEFAULTS
    assert audit_events() == []


@pytest.mark.parametrize("role", ["user", "session-manager"])
def test_a_signed_in_person_without_the_configure_permission_is_forbidden_to_view(app, role):
    browser = sign_in(app, "bob", role)

    response = browser.get(PAGE)

    assert response.status_code == 403
    assert "Session settings</h1>" not in response.get_data(as_text=True)


@pytest.mark.parametrize("role", ["user", "session-manager"])
def test_a_signed_in_person_without_the_configure_permission_is_forbidden_to_save(app, role):
    browser = sign_in(app, "bob", role)

    response = save(browser, absolute_value="12", absolute_unit="h", inactivity_enabled=None)

    assert response.status_code == 403


@pytest.mark.parametrize("role", ["user", "session-manager"])
def test_a_forbidden_save_changes_no_setting_and_records_no_change(app, role):
    browser = sign_in(app, "bob", role)

    save(browser, absolute_value="12", absolute_unit="h", inactivity_enabled=None)

    assert stored() == DEFAULTS
    assert audit_events() == []


# --- viewing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "current",
    [
        pytest.param(DEFAULTS, id="defaults"),
        pytest.param(CUSTOM, id="customised"),
        pytest.param(replace(CUSTOM, inactivity=None, max_sessions=None), id="limits-off"),
    ],
)
def test_the_admin_sees_the_current_settings_in_the_form(app, admin, current):
    if current != DEFAULTS:
        set_settings(**vars(current))

    response = admin.get(PAGE)

    assert response.status_code == 200
    assert shown_values(response) == full_form(current)


def test_the_admin_sees_the_default_next_to_each_duration(app, admin):
    set_settings(**vars(CUSTOM))

    text = admin.get(PAGE).get_data(as_text=True)

    assert "Default: 30 minutes" in text
    assert "Default: 8 hours" in text
    assert "Default: 30 days" in text


# --- saving --------------------------------------------------------------------------------

VALID_CHANGES = {
    "absolute_value": "12",
    "absolute_unit": "h",
    "max_sessions_enabled": "on",
    "max_sessions": "5",
    "on_limit": "refuse",
    "signout_url": "/goodbye",
}


def test_saving_valid_changes_sends_the_admin_back_to_the_settings_page(app, admin):
    response = save(admin, **VALID_CHANGES)

    assert response.status_code == 303
    assert urlsplit(response.location).path == PAGE


def test_saving_valid_changes_stores_them(app, admin):
    save(admin, **VALID_CHANGES)

    assert stored() == replace(
        DEFAULTS, absolute=timedelta(hours=12), max_sessions=5, on_limit=OnLimit.REFUSE, signout_url="/goodbye"
    )


def test_saving_valid_changes_says_so_on_the_page_it_leads_to(app, admin):
    response = save(admin, **VALID_CHANGES)

    page = admin.get(response.location).get_data(as_text=True)

    assert "Saved 4 change(s)." in page


def test_saving_records_one_audit_event_per_changed_field_with_old_and_new_values(app, admin):
    save(admin, **VALID_CHANGES)

    assert audit_events() == [
        (ADMIN, "absolute", {"old": "8h", "new": "12h"}),
        (ADMIN, "max_sessions", {"old": None, "new": 5}),
        (ADMIN, "on_limit", {"old": "end-oldest", "new": "refuse"}),
        (ADMIN, "signout_url", {"old": None, "new": "/goodbye"}),
    ]


def test_saving_the_form_unchanged_says_nothing_changed_and_records_nothing(app, admin):
    response = save(admin)

    assert "Nothing changed." in admin.get(response.location).get_data(as_text=True)
    assert stored() == DEFAULTS
    assert audit_events() == []


@pytest.mark.parametrize(
    "box, field",
    [("inactivity_enabled", "inactivity"), ("max_sessions_enabled", "max_sessions")],
)
def test_unchecking_a_limit_switches_it_off(app, admin, box, field):
    set_settings(max_sessions=5)

    response = save(admin, **{box: None})

    assert response.status_code == 303
    assert getattr(stored(), field) is None


@pytest.mark.parametrize(
    "changes, expected",
    [
        pytest.param({"inactivity_value": "1", "inactivity_unit": "m"}, {"inactivity": timedelta(minutes=1)}, id="inactivity-1-minute"),
        pytest.param({"inactivity_value": "60", "inactivity_unit": "s"}, {"inactivity": timedelta(minutes=1)}, id="inactivity-60-seconds"),
        pytest.param(
            {"inactivity_value": "90", "inactivity_unit": "d", "absolute_value": "90", "absolute_unit": "d"},
            {"inactivity": timedelta(days=90), "absolute": timedelta(days=90)},
            id="inactivity-90-days-equal-to-absolute",
        ),
        pytest.param(
            {"inactivity_value": "5", "absolute_value": "5", "absolute_unit": "m"},
            {"inactivity": timedelta(minutes=5), "absolute": timedelta(minutes=5)},
            id="absolute-5-minutes",
        ),
        pytest.param({"absolute_value": "365", "absolute_unit": "d"}, {"absolute": timedelta(days=365)}, id="absolute-365-days"),
        pytest.param({"max_sessions_enabled": "on", "max_sessions": "1"}, {"max_sessions": 1}, id="max-sessions-1"),
        pytest.param({"max_sessions_enabled": "on", "max_sessions": "100"}, {"max_sessions": 100}, id="max-sessions-100"),
        pytest.param({"retention_value": "1", "retention_unit": "d"}, {"retention": timedelta(days=1)}, id="retention-1-day"),
        pytest.param({"retention_value": "3650", "retention_unit": "d"}, {"retention": timedelta(days=3650)}, id="retention-3650-days"),
        pytest.param({"signout_url": "https://intranet.example/bye"}, {"signout_url": "https://intranet.example/bye"}, id="signout-https-url"),
        pytest.param({"persistent_login": "on"}, {"persistent_login": True}, id="persistent-login-on"),
    ],
)
def test_a_value_at_the_edge_of_its_range_is_accepted_and_stored(app, admin, changes, expected):
    response = save(admin, **changes)

    assert response.status_code == 303
    assert stored() == replace(DEFAULTS, **expected)


# --- refusing invalid values ---------------------------------------------------------------


class Refusal(NamedTuple):
    changes: dict[str, str]
    field: str  # where the message must appear
    message: str | None  # None: the rules name no wording, any message will do
    unshowable: tuple[str, ...] = ()  # submitted values no form control can show


INACTIVITY_RANGE = "must be between 1 minute and 90 days"
ABSOLUTE_RANGE = "must be between 5 minutes and 365 days"
RETENTION_RANGE = "must be between 1 day and 3650 days"
SESSIONS_RANGE = "must be between 1 and 100"
WHOLE_NUMBER = "enter a whole number"
DESTINATION = "must be an http(s) URL or a path on this site starting with /"
MAX_SESSIONS_ON = {"max_sessions_enabled": "on"}

REFUSALS = {
    "inactivity-0-minutes": Refusal({"inactivity_value": "0", "inactivity_unit": "m"}, "inactivity", INACTIVITY_RANGE),
    "inactivity-59-seconds": Refusal({"inactivity_value": "59", "inactivity_unit": "s"}, "inactivity", INACTIVITY_RANGE),
    "inactivity-91-days": Refusal(
        {"inactivity_value": "91", "inactivity_unit": "d", "absolute_value": "365", "absolute_unit": "d"},
        "inactivity", INACTIVITY_RANGE,
    ),
    "absolute-4-minutes": Refusal(
        {"inactivity_value": "1", "absolute_value": "4", "absolute_unit": "m"}, "absolute", ABSOLUTE_RANGE
    ),
    "absolute-366-days": Refusal({"absolute_value": "366", "absolute_unit": "d"}, "absolute", ABSOLUTE_RANGE),
    "inactivity-longer-than-absolute": Refusal(
        {"inactivity_value": "9", "inactivity_unit": "h"}, "inactivity", "must not be longer than the absolute timeout"
    ),
    "retention-0-days": Refusal({"retention_value": "0"}, "retention", RETENTION_RANGE),
    "retention-3651-days": Refusal({"retention_value": "3651"}, "retention", RETENTION_RANGE),
    "max-sessions-0": Refusal({**MAX_SESSIONS_ON, "max_sessions": "0"}, "max_sessions", SESSIONS_RANGE),
    "max-sessions-101": Refusal({**MAX_SESSIONS_ON, "max_sessions": "101"}, "max_sessions", SESSIONS_RANGE),
    "inactivity-abc": Refusal({"inactivity_value": "abc"}, "inactivity", WHOLE_NUMBER),
    "inactivity-negative": Refusal({"inactivity_value": "-5"}, "inactivity", WHOLE_NUMBER),
    "inactivity-fraction": Refusal({"inactivity_value": "1.5"}, "inactivity", WHOLE_NUMBER),
    "absolute-empty": Refusal({"absolute_value": ""}, "absolute", WHOLE_NUMBER),
    "retention-abc": Refusal({"retention_value": "abc"}, "retention", WHOLE_NUMBER),
    "max-sessions-abc": Refusal({**MAX_SESSIONS_ON, "max_sessions": "abc"}, "max_sessions", WHOLE_NUMBER),
    "max-sessions-fraction": Refusal({**MAX_SESSIONS_ON, "max_sessions": "1.5"}, "max_sessions", WHOLE_NUMBER),
    "unknown-unit": Refusal({"inactivity_unit": "w"}, "inactivity", "choose a unit", unshowable=("inactivity_unit",)),
    "unknown-on-limit": Refusal({"on_limit": "ask"}, "on_limit", "choose end-oldest or refuse", unshowable=("on_limit",)),
    "signout-javascript": Refusal({"signout_url": "javascript:alert(1)"}, "signout_url", DESTINATION),
    "signout-protocol-relative": Refusal({"signout_url": "//evil.example"}, "signout_url", DESTINATION),
    "signout-backslash": Refusal({"signout_url": "/\\evil.example"}, "signout_url", DESTINATION),
    "signout-no-host": Refusal({"signout_url": "https:evil.example"}, "signout_url", DESTINATION),
    "signout-newline": Refusal({"signout_url": "/bye\r\nSet-Cookie: x=1"}, "signout_url", DESTINATION),
    "signout-longer-than-stored": Refusal({"signout_url": "https://intranet.example/" + "a" * 2000}, "signout_url", None),
}
refusals = pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())


@refusals
def test_an_invalid_value_is_refused_with_a_message_next_to_its_field(app, admin, case):
    response = save(admin, **case.changes)

    assert response.status_code == 400
    assert NOTHING_SAVED in response.get_data(as_text=True)
    errors = errors_next_to(response, case.field)
    assert case.message in errors if case.message else errors


@refusals
def test_an_invalid_value_is_shown_again_as_submitted(app, admin, case):
    response = save(admin, **case.changes)

    submitted = full_form(DEFAULTS, **case.changes)
    expected = {name: value for name, value in submitted.items() if name not in case.unshowable}
    shown = {name: value for name, value in shown_values(response).items() if name not in case.unshowable}
    assert shown == expected


@refusals
def test_an_invalid_value_stores_nothing_and_records_no_change(app, admin, case):
    save(admin, **case.changes)

    assert stored() == DEFAULTS
    assert audit_events() == []


def test_a_refused_form_keeps_the_valid_changes_made_beside_the_invalid_one(app, admin):
    response = save(admin, absolute_value="12", absolute_unit="h", max_sessions_enabled="on", max_sessions="101")

    shown = shown_values(response)
    assert (shown["absolute_value"], shown["absolute_unit"]) == ("12", "h")
    assert stored() == DEFAULTS


@pytest.mark.parametrize("token", [None, "", "not-the-token"], ids=["missing", "empty", "wrong"])
def test_a_save_without_this_browsers_csrf_token_is_refused_and_changes_nothing(app, admin, token):
    response = save(admin, csrf_token=token, absolute_value="12", absolute_unit="h")

    assert response.status_code == 400
    assert "This form has expired or did not come from this site." in response.get_data(as_text=True)
    assert stored() == DEFAULTS
    assert audit_events() == []


def test_a_save_with_another_browsers_csrf_token_is_refused(app, admin):
    other = sign_in(app, "alice")

    response = save(admin, csrf_token=csrf_of(other), absolute_value="12", absolute_unit="h")

    assert response.status_code == 400
    assert stored() == DEFAULTS


# --- sessions already signed in ------------------------------------------------------------

HOUR = 3600


@pytest.fixture
def alice(app):
    """Alice's browser, signed in at the clock's start under the default settings."""
    return sign_in(app, "alice")


@pytest.fixture
def alice_session(app, admin, alice):
    """Alice's session row (the admin signed in first, so it is the second)."""
    _, row = session_rows()
    assert row.user.username == "alice"
    return row


def reload(row):
    """The row as committed."""
    db.session.refresh(row)
    return row


def test_a_changed_limit_does_not_touch_sessions_signed_in_before_it(app, admin, alice_session):
    deadline = alice_session.expires_at

    save(admin, absolute_value="1", absolute_unit="h")

    row = reload(alice_session)
    assert row.absolute_seconds == 8 * HOUR
    assert row.expires_at == deadline


def test_a_changed_limit_does_not_sign_out_a_session_signed_in_before_it(app, clock, admin, alice, alice_session):
    save(admin, absolute_value="1", absolute_unit="h")

    for _ in range(4):  # 80 minutes, active every 20
        stay_active(clock, 20, alice)

    assert reload(alice_session).ended_at is None


def test_applying_a_shorter_limit_to_existing_sessions_rewrites_their_deadline(app, clock, admin, alice, alice_session):
    stay_active(clock, 20, admin, alice)
    stay_active(clock, 20, admin, alice)  # Alice's idle deadline is now 70 minutes after sign-in

    save(admin, absolute_value="1", absolute_unit="h", apply_to_existing="on")

    row = reload(alice_session)
    assert row.absolute_seconds == HOUR
    assert row.expires_at == row.created_at + timedelta(hours=1) == START + timedelta(hours=1)


def test_applying_a_limit_keeps_the_idle_deadline_when_it_comes_first(app, admin, alice_session):
    save(admin, absolute_value="1", absolute_unit="h", apply_to_existing="on")

    row = reload(alice_session)
    assert row.absolute_seconds == HOUR
    assert row.expires_at == row.last_activity_at + timedelta(minutes=30)


def test_applying_to_existing_sessions_is_audited_with_how_many_were_updated(app, admin, alice_session):
    save(admin, absolute_value="1", absolute_unit="h", apply_to_existing="on")

    assert audit_events("settings.applied_to_existing") == [(ADMIN, "", {"sessions": 2})]  # Alice's and the admin's


def test_an_applied_shorter_limit_signs_an_active_person_out_when_it_is_reached(app, clock, admin, alice, alice_session):
    stay_active(clock, 20, admin, alice)
    save(admin, absolute_value="1", absolute_unit="h", apply_to_existing="on")
    stay_active(clock, 20, alice)
    stay_active(clock, 19, alice)  # one minute before the new limit: still signed in

    clock.advance(minutes=1)
    response = alice.get("/")

    assert sent_to_sign_in(response)
    row = reload(alice_session)
    assert row.end_reason == "absolute_timeout"
    assert row.ended_at == START + timedelta(hours=1)


@pytest.mark.parametrize("idle_minutes", [30, 45], ids=["at-the-deadline", "after-it"])
def test_applying_a_longer_limit_never_revives_a_session_that_already_expired(app, clock, admin, alice, alice_session, idle_minutes):
    stay_active(clock, 20, admin)
    stay_active(clock, idle_minutes - 20, admin)  # Alice has been idle for idle_minutes

    save(admin, inactivity_value="2", inactivity_unit="h", apply_to_existing="on")
    response = alice.get("/")

    assert sent_to_sign_in(response)
    row = reload(alice_session)
    assert row.inactivity_seconds == 30 * 60
    assert row.end_reason == "idle_timeout"
