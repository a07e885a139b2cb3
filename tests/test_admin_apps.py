"""The admin's applications page, /admin/apps, as people use it through a browser.

Each test does one thing through the admin's (or someone else's) browser, then checks what
they see (status, Location, page text) and what the database holds (apps, clients, tokens,
audit events). Registered apps are exercised by the independent FakeRP, never by shortcuts.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from directory.db import db
from directory.models import App, AuditEvent
from directory.sessions import digest
from idp.oidc.models import OAuthClient, Token
from tests.conftest import PASSWORD, Portal, csrf_from
from tests.factories import make_oidc_client, make_user
from tests.peers import FakeRP

ADMIN = "root"
PAGE = "/admin/apps"
REDIRECT = "https://crm.example/cb"
NOTHING_SAVED = "Nothing was saved: fix the fields marked below."
NOT_SHOWN_AGAIN = "it will not be shown again"


# --- helpers -------------------------------------------------------------------------------


def registration(**changes) -> dict:
    """A valid "Register an application" form as a browser submits it, with `changes` on top;
    a change of None leaves the field out (an unchecked box)."""
    form = {
        "name": "CRM",
        "redirect_uris": REDIRECT,
        "post_logout_redirect_uris": "",
        "backchannel_logout_uri": "https://crm.example/logout",
        "frontchannel_logout_uri": "",
        "grant_types": ["authorization_code", "refresh_token"],
        "id_token_alg": "RS256",
        **changes,
    }
    return {name: value for name, value in form.items() if value is not None}


def app_settings(**changes) -> dict:
    """A valid settings form for one app: Single Logout on, 7 days unused, 30 days at most."""
    form = {"single_logout": "on", "idle_value": "7", "idle_unit": "d", "max_value": "30", "max_unit": "d", **changes}
    return {name: value for name, value in form.items() if value is not None}


def csrf_of(browser) -> str:
    """The browser's CSRF token, from whatever page "/" leads it to (home, or sign-in)."""
    return csrf_from(browser.get("/", follow_redirects=True).data)


def post(browser, path: str, form: dict, *, csrf: bool = True):
    return browser.post(path, data={**form, "csrf_token": csrf_of(browser)} if csrf else form)


def register(browser, **changes):
    return post(browser, PAGE, registration(**changes))


def shown(response, label: str) -> str:
    """A value shown on the "registered" page next to `label` (Client ID, Client secret)."""
    match = re.search(rf"<dt>{label}</dt><dd><code>([^<]+)</code>", response.get_data(as_text=True))
    assert match, f"the page shows no {label}"
    return match.group(1)


def stored_apps() -> list[tuple]:
    """Every app as committed: (name, single_logout, idle seconds, max seconds)."""
    db.session.expire_all()
    rows = db.session.scalars(select(App).order_by(App.id))
    return [(a.name, a.single_logout, a.session_idle_seconds, a.session_max_seconds) for a in rows]


def stored_clients() -> list[OAuthClient]:
    db.session.expire_all()
    return list(db.session.scalars(select(OAuthClient).order_by(OAuthClient.id)))


def audit_events(action: str) -> list[tuple[str, str, dict]]:
    """(actor, target, detail) of every audit event for `action`, oldest first."""
    db.session.expire_all()
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
    return [(event.actor, event.target, event.detail) for event in db.session.scalars(query)]


def every_stored_value() -> list[str]:
    """Every column of every row of every table, as text."""
    db.session.expire_all()
    return [str(value) for table in db.metadata.sorted_tables for row in db.session.execute(table.select()) for value in row]


def sign_in(app, username: str, role: str = "user"):
    """A new browser, signed in as a new user with `role`."""
    make_user(username, role=role)
    browser = Portal(app.test_client())
    assert browser.login(username).status_code == 303
    return browser.client


def sent_to_sign_in(response) -> bool:
    return response.status_code in (302, 303) and urlsplit(response.location).path == "/login"


def access_token_for(app, client_id: str, secret: str | None) -> tuple[FakeRP, dict]:
    """Alice signs in to the app through a browser of her own; the app redeems the code."""
    rp = FakeRP(app, client_id, secret, redirect_uri=REDIRECT)
    result = rp.sign_in(app.test_client(), rp.authorization_url(), username="alice", password=PASSWORD)
    assert "code" in result, result
    return rp, rp.exchange(result["code"])


@pytest.fixture
def admin(app, portal):
    """The admin's browser, signed in."""
    make_user(ADMIN, role="admin")
    assert portal.login(ADMIN).status_code == 303
    return portal.client


@pytest.fixture
def crm(app):
    """A registered confidential app, CRM, and a person, alice, who uses it: (client_id, secret)."""
    make_user("alice", email="alice@example.org")
    client, secret = make_oidc_client("CRM")
    return client.client_id, secret


def routes(client_id: str) -> dict[str, tuple[str, str, dict]]:
    """Every route of the page: (method, path, a valid form)."""
    return {
        "list": ("GET", PAGE, {}),
        "register": ("POST", PAGE, registration(name="Wiki")),
        "settings": ("POST", f"{PAGE}/{client_id}/settings", app_settings(single_logout=None)),
        "delete": ("POST", f"{PAGE}/{client_id}/delete", {}),
    }


def call(browser, route: str, client_id: str):
    method, path, form = routes(client_id)[route]
    return browser.get(path) if method == "GET" else post(browser, path, form)


ROUTES = ["list", "register", "settings", "delete"]


# --- who may use the page ------------------------------------------------------------------


def test_an_anonymous_visitor_is_sent_to_sign_in_and_then_back_to_the_page(client):
    response = client.get(PAGE)

    assert sent_to_sign_in(response)
    assert parse_qs(urlsplit(response.location).query) == {"next": [PAGE]}


@pytest.mark.parametrize("route", ROUTES[1:])
def test_an_anonymous_post_is_sent_to_sign_in_and_changes_nothing(client, crm, route):
    before = stored_apps()

    response = call(client, route, crm[0])

    assert sent_to_sign_in(response)
    assert stored_apps() == before and len(stored_clients()) == 1


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("role", ["user", "session-manager"])
def test_a_signed_in_person_without_the_apps_permission_is_forbidden(app, crm, role, route):
    browser = sign_in(app, "bob", role)

    response = call(browser, route, crm[0])

    assert response.status_code == 403
    assert "Register an application" not in response.get_data(as_text=True)


@pytest.mark.parametrize("route", ROUTES[1:])
@pytest.mark.parametrize("role", ["user", "session-manager"])
def test_a_forbidden_post_changes_no_app_and_records_nothing(app, crm, role, route):
    browser = sign_in(app, "bob", role)
    before = stored_apps()

    call(browser, route, crm[0])

    assert stored_apps() == before and len(stored_clients()) == 1
    assert [action for action in db.session.scalars(select(AuditEvent.action)) if action.startswith("app.")] == ["app.registered"]


def test_the_navigation_links_to_the_page_only_for_those_who_may_use_it(app, admin):
    other = sign_in(app, "bob", "session-manager")

    assert f'href="{PAGE}">Applications</a>' in admin.get("/").get_data(as_text=True)
    assert "Applications</a>" not in other.get("/").get_data(as_text=True)


# --- listing -------------------------------------------------------------------------------


def test_the_admin_sees_each_app_with_its_client_id_type_uris_and_switches(app, admin):
    crm, _ = make_oidc_client("CRM", frontchannel_logout_uri="https://crm.example/front", trusted=True)
    spa, _ = make_oidc_client("SPA", public=True, backchannel_logout_uri=None)

    response = admin.get(PAGE)

    text = response.get_data(as_text=True)
    assert response.status_code == 200
    for expected in ("CRM", crm.client_id, "confidential", "https://crm.example/cb", "back-channel: https://crm.example/logout",
                     "front-channel: https://crm.example/front", "SPA", spa.client_id, "public", "https://spa.example/cb"):
        assert expected in text
    assert "Register an application" in text


def test_the_admin_is_told_when_no_app_is_registered(app, admin):
    assert "No application is registered yet." in admin.get(PAGE).get_data(as_text=True)


# --- registering ---------------------------------------------------------------------------


def test_registering_a_confidential_app_shows_its_client_id_and_secret_once(app, admin):
    response = register(admin)

    (client,) = stored_clients()
    assert response.status_code == 201
    assert shown(response, "Client ID") == client.client_id
    assert shown(response, "Client secret")
    assert NOT_SHOWN_AGAIN in response.get_data(as_text=True)


def test_the_secret_is_never_shown_again(app, admin):
    secret = shown(register(admin), "Client secret")

    later = admin.get(PAGE).get_data(as_text=True)

    assert secret not in later
    assert "CRM" in later


def test_only_the_secrets_sha256_is_stored(app, admin):
    secret = shown(register(admin), "Client secret")

    (client,) = stored_clients()
    assert client.secret_hash == digest(secret)
    assert not [value for value in every_stored_value() if secret in value]


def test_registering_stores_the_app_as_submitted_and_audits_it(app, admin):
    register(admin, post_logout_redirect_uris="https://crm.example/bye\r\n\r\nhttps://crm.example/out ", trusted="on", id_token_alg="ES256")

    (client,) = stored_clients()
    assert (client.app.name, client.app.trusted, client.app.backchannel_logout) == ("CRM", True, True)
    assert client.redirect_uris == [REDIRECT]
    assert client.post_logout_redirect_uris == ["https://crm.example/bye", "https://crm.example/out"]
    assert client.grant_types == ["authorization_code", "refresh_token"]
    assert client.id_token_signed_response_alg == "ES256"
    assert audit_events("app.registered") == [(ADMIN, "CRM", {"protocol": "oidc", "client_id": client.client_id})]


def test_a_public_app_is_registered_without_a_secret(app, admin):
    response = register(admin, public="on", grant_types=["authorization_code"])

    (client,) = stored_clients()
    assert response.status_code == 201
    assert client.secret_hash is None
    assert NOT_SHOWN_AGAIN not in response.get_data(as_text=True)


def test_a_registered_app_can_sign_people_in_with_the_secret_shown(app, admin):
    make_user("alice")
    response = register(admin, trusted="on")  # trusted: no consent screen in this walk

    _, tokens = access_token_for(app, shown(response, "Client ID"), shown(response, "Client secret"))

    assert tokens.get("access_token"), tokens


INVALID = {
    "no-name": ({"name": "  "}, "name must be 1 to 200 characters"),
    "http-to-another-host": ({"redirect_uris": "http://crm.example/cb"}, "must use https"),
    "fragment": ({"redirect_uris": "https://crm.example/cb#top"}, "without a fragment"),
    "javascript": ({"redirect_uris": "javascript:alert(1)"}, "must be an absolute http(s) URL"),
    "public-client-credentials": ({"public": "on", "grant_types": ["client_credentials"]}, "a public client cannot use client_credentials"),
    "no-grant-type": ({"grant_types": None}, "grant types must be among"),
    "javascript-logout": ({"backchannel_logout_uri": "javascript:alert(1)"}, "back-channel logout URI"),
}
invalid = pytest.mark.parametrize("changes, message", INVALID.values(), ids=INVALID.keys())


@invalid
def test_an_invalid_registration_is_refused_with_its_message(app, admin, changes, message):
    response = register(admin, **changes)

    text = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Nothing was registered" in text and message in text


@invalid
def test_an_invalid_registration_stores_nothing(app, admin, changes, message):
    register(admin, **changes)

    assert stored_apps() == [] and stored_clients() == []
    assert audit_events("app.registered") == []


def test_a_refused_registration_keeps_what_was_typed(app, admin):
    response = register(admin, name="Wiki", redirect_uris="http://wiki.example/cb", trusted="on", id_token_alg="ES256")

    text = response.get_data(as_text=True)
    assert 'name="name" value="Wiki"' in text
    assert ">http://wiki.example/cb</textarea>" in text
    assert 'name="trusted" value="on" checked' in text
    assert '<option value="ES256" selected>' in text


# --- CSRF ----------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES[1:])
def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(app, admin, crm, route):
    method, path, form = routes(crm[0])[route]
    before = stored_apps()

    response = post(admin, path, form, csrf=False)

    assert response.status_code == 400
    assert stored_apps() == before and len(stored_clients()) == 1
    assert audit_events("app.settings_changed") == audit_events("app.deleted") == []


# --- an app's settings ---------------------------------------------------------------------


def test_saving_an_apps_settings_sends_the_admin_back_to_the_list_saying_so(app, admin, crm):
    response = post(admin, f"{PAGE}/{crm[0]}/settings", app_settings(single_logout=None, idle_value="1"))

    assert response.status_code == 303
    assert urlsplit(response.location).path == PAGE
    assert "Saved 2 change(s) to CRM." in admin.get(response.location).get_data(as_text=True)


def test_saving_an_apps_settings_stores_single_logout_and_the_lifetimes(app, admin, crm):
    post(admin, f"{PAGE}/{crm[0]}/settings", app_settings(single_logout=None, idle_value="12", idle_unit="h", max_value="14"))

    assert stored_apps() == [("CRM", False, 12 * 3600, 14 * 86400)]


def test_saving_an_apps_settings_records_the_changes_with_the_admin(app, admin, crm):
    post(admin, f"{PAGE}/{crm[0]}/settings", app_settings(single_logout=None, max_value="14"))

    assert audit_events("app.settings_changed") == [
        (ADMIN, "CRM", {"client_id": crm[0], "changes": {
            "single_logout": {"old": True, "new": False},
            "session_max": {"old": "30d", "new": "14d"},
        }}),
    ]


def test_saving_an_apps_settings_unchanged_says_so_and_records_nothing(app, admin, crm):
    response = post(admin, f"{PAGE}/{crm[0]}/settings", app_settings())

    assert "Nothing changed for CRM." in admin.get(response.location).get_data(as_text=True)
    assert audit_events("app.settings_changed") == []


@pytest.mark.parametrize(
    "changes, expected",
    [
        pytest.param({"idle_value": "1", "idle_unit": "m", "max_value": "5", "max_unit": "m"}, (60, 300), id="lowest"),
        pytest.param({"idle_value": "90", "max_value": "365"}, (90 * 86400, 365 * 86400), id="highest"),
        pytest.param({"idle_value": "30", "max_value": "30"}, (30 * 86400, 30 * 86400), id="idle-equal-to-max"),
    ],
)
def test_lifetimes_at_the_edges_of_their_ranges_are_accepted(app, admin, crm, changes, expected):
    response = post(admin, f"{PAGE}/{crm[0]}/settings", app_settings(**changes))

    assert response.status_code == 303
    assert stored_apps() == [("CRM", True, *expected)]


OUT_OF_RANGE = {
    "idle-59-seconds": ({"idle_value": "59", "idle_unit": "s"}, "must be between 1 minute and 90 days"),
    "idle-91-days": ({"idle_value": "91", "max_value": "365"}, "must be between 1 minute and 90 days"),
    "max-4-minutes": ({"idle_value": "1", "idle_unit": "m", "max_value": "4", "max_unit": "m"}, "must be between 5 minutes and 365 days"),
    "max-366-days": ({"max_value": "366"}, "must be between 5 minutes and 365 days"),
    "idle-longer-than-max": ({"idle_value": "31"}, "must not be longer than the maximum lifetime"),
    "not-a-number": ({"idle_value": "1.5"}, "enter a whole number"),
    "unknown-unit": ({"max_unit": "w"}, "choose a unit"),
}
out_of_range = pytest.mark.parametrize("changes, message", OUT_OF_RANGE.values(), ids=OUT_OF_RANGE.keys())


@out_of_range
def test_an_out_of_range_lifetime_is_refused_with_its_message(app, admin, crm, changes, message):
    response = post(admin, f"{PAGE}/{crm[0]}/settings", app_settings(single_logout=None, **changes))

    text = response.get_data(as_text=True)
    assert response.status_code == 400
    assert NOTHING_SAVED in text and message in text


@out_of_range
def test_an_out_of_range_lifetime_changes_nothing_and_records_nothing(app, admin, crm, changes, message):
    before = stored_apps()

    post(admin, f"{PAGE}/{crm[0]}/settings", app_settings(single_logout=None, **changes))

    assert stored_apps() == before == [("CRM", True, 7 * 86400, 30 * 86400)]
    assert audit_events("app.settings_changed") == []


def test_a_refused_settings_form_keeps_what_was_typed(app, admin, crm):
    response = post(admin, f"{PAGE}/{crm[0]}/settings", app_settings(single_logout=None, idle_value="91"))

    text = response.get_data(as_text=True)
    assert 'name="idle_value" inputmode="numeric" size="6" value="91"' in text
    assert 'name="single_logout" value="on">' in text  # unchecked, as submitted


@pytest.mark.parametrize("action", ["settings", "delete"])
def test_an_unknown_client_id_is_not_found_and_changes_nothing(app, admin, crm, action):
    before = stored_apps()

    response = post(admin, f"{PAGE}/no-such-client/{action}", app_settings(single_logout=None))

    assert response.status_code == 404
    assert stored_apps() == before
    assert audit_events("app.settings_changed") == audit_events("app.deleted") == []


# --- deleting ------------------------------------------------------------------------------


def test_deleting_an_app_sends_the_admin_back_to_the_list_saying_so(app, admin, crm):
    response = post(admin, f"{PAGE}/{crm[0]}/delete", {})

    assert response.status_code == 303
    assert urlsplit(response.location).path == PAGE
    assert "Deleted CRM." in admin.get(response.location).get_data(as_text=True)


def test_deleting_an_app_removes_it_and_records_who_did(app, admin, crm):
    post(admin, f"{PAGE}/{crm[0]}/delete", {})

    assert stored_apps() == [] and stored_clients() == []
    assert audit_events("app.deleted") == [(ADMIN, "CRM", {"client_id": crm[0]})]


def test_deleting_an_app_stops_the_tokens_it_was_issued(app, admin, crm):
    rp, tokens = access_token_for(app, *crm)
    assert rp.userinfo(tokens["access_token"]).status_code == 200

    post(admin, f"{PAGE}/{crm[0]}/delete", {})

    assert rp.userinfo(tokens["access_token"]).status_code == 401
    assert db.session.scalars(select(Token)).all() == []
