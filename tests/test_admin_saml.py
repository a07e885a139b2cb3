"""The admin's SAML page, /admin/saml, as people use it through a browser.

Each test does one thing through the admin's (or someone else's) browser, then checks what they
see (status, Location, page text, the message beside a field) and what the database holds
(service providers, apps, audit events). Metadata is real: pysaml2's SP side writes it.
"""

from __future__ import annotations

import base64
import html
import re
from urllib.parse import urlsplit

import pytest
import responses
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from saml2 import md
from sqlalchemy import select

from directory.db import db
from directory.models import App
from idp.saml import certs, registry
from idp.saml.models import ServiceProvider
from tests.conftest import START, Portal
from tests.factories import make_sp_metadata, make_user
from tests.test_admin_apps import audit_events, post, sent_to_sign_in, sign_in

ADMIN = "root"
PAGE = "/admin/saml"
WIKI = "https://wiki.example/metadata"
NOTHING_SAVED = "Nothing was saved: fix the fields marked below."
NOTHING_REGISTERED = "Nothing was registered: fix the fields marked below."


# --- helpers -------------------------------------------------------------------------------


@pytest.fixture
def metadata(tmp_path):
    """Real SP metadata for `entity_id` (see `make_sp_metadata` for the options)."""
    return lambda entity_id=WIKI, **options: make_sp_metadata(tmp_path / "sp-keys", entity_id, **options)


def without_certificate(xml: str) -> str:
    """The same metadata with its KeyDescriptor taken out: nothing to check a signature with."""
    stripped = re.sub(r"<ns0:KeyDescriptor.*?</ns0:KeyDescriptor>", "", xml)
    assert stripped != xml
    return stripped


def drop_none(form: dict) -> dict:
    """A change of None leaves the field out, as an unchecked box is left out."""
    return {name: value for name, value in form.items() if value is not None}


def registration(xml: str, **changes) -> dict:
    form = {"metadata_xml": xml, "metadata_url": "", "name": "Wiki", "nameid_format": "persistent",
            "attributes": ["uid", "email", "displayName"], "signed_requests": "metadata", **changes}
    return drop_none(form)


def sp_settings(**changes) -> dict:
    """The settings form of the Wiki fixture, untouched: what a browser submits for it."""
    form = {"name": "Wiki", "nameid_format": "persistent", "attributes": ["uid", "email", "displayName"],
            "single_logout": "on", "idle_value": "7", "idle_unit": "d", "max_value": "30", "max_unit": "d",
            "metadata_xml": "", "metadata_url": "", **changes}
    return drop_none(form)


def stored_sps() -> list[tuple]:
    """Every SP as committed: (app name, entityID, NameID format, attributes, signed requests)."""
    db.session.expire_all()
    rows = db.session.scalars(select(ServiceProvider).order_by(ServiceProvider.id))
    return [(sp.app.name, sp.entity_id, sp.nameid_format, sp.released_attributes, sp.wants_signed_requests) for sp in rows]


def stored_app(name: str = "Wiki") -> tuple:
    """(single_logout, back-channel, front-channel, idle seconds, max seconds) of the app `name`."""
    db.session.expire_all()
    app = db.session.scalar(select(App).where(App.name == name))
    return app.single_logout, app.backchannel_logout, app.frontchannel_logout, app.session_idle_seconds, app.session_max_seconds


def everything_saml() -> tuple:
    """SPs (with their metadata), apps and every app audit event: compared before and after."""
    db.session.expire_all()
    sps = [(sp.entity_id, sp.metadata_xml, sp.app.name, sp.nameid_format, sp.released_attributes, sp.wants_signed_requests)
           for sp in db.session.scalars(select(ServiceProvider))]
    apps = [(a.name, a.single_logout, a.session_idle_seconds, a.session_max_seconds) for a in db.session.scalars(select(App))]
    events = [audit_events(action) for action in ("app.registered", "app.settings_changed", "app.deleted")]
    return sps, apps, events


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def field_error(response, field: str, key) -> str:
    """The message shown beside `field` of the form `key` (an SP's id, or "new")."""
    match = re.search(rf'<span class="field-error" id="{field}_error-{key}">([^<]*)</span>', response.get_data(as_text=True))
    assert match, f"no message beside {field}"
    return html.unescape(match.group(1))


def row(response, name: str) -> str:
    """The list's table row for the SP called `name`, as text."""
    match = re.search(rf"<tr>\s*<td><a href=\"#sp-\d+\">{re.escape(name)}</a>.*?</tr>", response.get_data(as_text=True), re.S)
    assert match, f"no row for {name}"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(0))).split())


@pytest.fixture
def admin(app):
    """The admin's browser, signed in."""
    make_user(ADMIN, role="admin")
    portal = Portal(app.test_client())
    assert portal.login(ADMIN).status_code == 303
    return portal.client


@pytest.fixture
def wiki(app, metadata) -> int:
    """A registered SP, Wiki: front-channel Single Logout, unsigned requests; its id."""
    return registry.add_sp(metadata(), name="Wiki", now=START, actor_label="test").id


ROUTES = {
    "list": lambda sp_id, xml: ("GET", PAGE, {}),
    "register": lambda sp_id, xml: ("POST", PAGE, registration(xml, name="CRM")),
    "settings": lambda sp_id, xml: ("POST", f"{PAGE}/{sp_id}", sp_settings(name="Renamed", single_logout=None)),
    "delete": lambda sp_id, xml: ("POST", f"{PAGE}/{sp_id}/delete", {}),
}


def call(browser, route: str, sp_id: int, xml: str, *, csrf: bool = True):
    method, path, form = ROUTES[route](sp_id, xml)
    return browser.get(path) if method == "GET" else post(browser, path, form, csrf=csrf)


# --- who may use the page ------------------------------------------------------------------


def test_an_anonymous_visitor_is_sent_to_sign_in(client):
    assert sent_to_sign_in(client.get(PAGE))


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("role", ["user", "session-manager"])
def test_a_person_without_the_apps_permission_is_forbidden_and_changes_nothing(app, wiki, metadata, role, route):
    browser = sign_in(app, "bob", role)
    before = everything_saml()

    response = call(browser, route, wiki, metadata("https://crm.example/metadata"))

    assert response.status_code == 403
    assert "Register a SAML service provider" not in response.get_data(as_text=True)
    assert everything_saml() == before


def test_the_navigation_links_to_the_page_only_for_those_who_may_use_it(app, admin):
    other = sign_in(app, "bob", "session-manager")

    assert f'href="{PAGE}">SAML apps</a>' in admin.get("/").get_data(as_text=True)
    assert "SAML apps</a>" not in other.get("/").get_data(as_text=True)


# --- listing -------------------------------------------------------------------------------


def test_the_admin_sees_each_sp_with_its_settings_and_logout_channels(app, admin, metadata):
    registry.add_sp(metadata("https://crm.example/metadata", slo_bindings=("soap",), authn_requests_signed=True),
                    name="CRM", now=START, nameid_format="emailAddress", attributes=["email", "role"])
    registry.add_sp(metadata("https://hr.example/metadata", slo_bindings=()), name="HR", now=START, attributes=[])
    registry.add_sp(metadata(), name="Wiki", now=START)

    response = admin.get(PAGE)

    assert response.status_code == 200
    assert row(response, "CRM") == ("CRM https://crm.example/metadata emailAddress email, role required "
                                    "on offers: SOAP back-channel https://crm.example/acs (HTTP-POST)")
    assert row(response, "HR") == "HR https://hr.example/metadata persistent none not required on offers: none https://hr.example/acs (HTTP-POST)"
    assert row(response, "Wiki") == ("Wiki https://wiki.example/metadata persistent uid, email, displayName not required "
                                     "on offers: browser front-channel https://wiki.example/acs (HTTP-POST)")


def test_the_admin_is_told_when_no_sp_is_registered(app, admin):
    assert "No SAML service provider is registered yet." in admin.get(PAGE).get_data(as_text=True)


def test_the_page_shows_the_urls_and_certificate_our_metadata_publishes(app, admin):
    ours = md.entity_descriptor_from_string(admin.get("/saml/metadata").get_data(as_text=True))
    idp = ours.idpsso_descriptor[0]
    locations = [s.location for s in idp.single_sign_on_service + idp.single_logout_service]
    der = "".join(idp.key_descriptor[0].key_info.x509_data[0].x509_certificate.text.split())
    fingerprint = x509.load_der_x509_certificate(base64.b64decode(der)).fingerprint(hashes.SHA256()).hex(":").upper()

    page = text(admin.get(PAGE))

    assert f"<dt>Metadata URL</dt><dd><code>{ours.entity_id}</code>" in page  # our entityID is our metadata URL
    assert len(locations) == 5
    for location in locations:
        assert f"<code>{location}</code>" in page
    assert f"<code>{fingerprint}</code>, valid until 2036-01-03 09:00:00 UTC <span class=\"hint\">(signs now)</span>" in page


def test_during_a_certificate_rotation_both_are_listed_and_the_signing_one_is_marked(make_app, tmp_path):
    app = make_app(CERTS_PATH=tmp_path / "certs")  # its own certificates: this test changes them
    with app.app_context():
        make_user(ADMIN, role="admin")
        portal = Portal(app.test_client())
        assert portal.login(ADMIN).status_code == 303
        assert app.test_cli_runner().invoke(args=["saml", "rotate-cert"]).exit_code == 0

        page = text(portal.client.get(PAGE))

    assert page.count("<summary>SHA-256") == 2
    assert page.count("(signs now)") == 1 and page.count("(published, not signing: the next or the previous one)") == 1


def test_each_sp_shows_its_signing_certificate_or_that_it_has_none(app, admin, metadata, tmp_path):
    registry.add_sp(metadata(), name="Wiki", now=START)
    registry.add_sp(without_certificate(metadata("https://hr.example/metadata")), name="HR", now=START)
    pem = certs.load(tmp_path / "sp-keys", host="sp.example", now=START).cert_pem
    fingerprint = x509.load_pem_x509_certificate(pem).fingerprint(hashes.SHA256()).hex(":").upper()

    page = text(admin.get(PAGE))

    wiki, hr = page.split("<h2>Wiki</h2>")[1], page.split("<h2>HR</h2>")[1].split("<h2>")[0]
    assert f"<code>{fingerprint}</code>, valid until" in wiki
    assert "none: its AuthnRequests cannot be checked" in hr


# --- registering ---------------------------------------------------------------------------


def test_registering_pasted_metadata_stores_the_sp_and_sends_the_admin_to_it(app, admin, metadata):
    response = post(admin, PAGE, registration(metadata(), nameid_format="transient", attributes=["uid", "role"]))

    ((name, entity, nameid, attributes, signed),) = stored_sps()
    sp_id = db.session.scalar(select(ServiceProvider.id))
    assert response.status_code == 303
    assert response.location.endswith(f"{PAGE}#sp-{sp_id}")
    assert "Registered Wiki." in admin.get(response.location).get_data(as_text=True)
    assert (name, entity, nameid, attributes, signed) == ("Wiki", WIKI, "transient", ["uid", "role"], False)


def test_registering_records_who_did_it(app, admin, metadata):
    post(admin, PAGE, registration(metadata()))

    assert audit_events("app.registered") == [(ADMIN, "Wiki", {"protocol": "saml", "entity_id": WIKI})]


def test_an_sp_registered_without_a_name_is_named_by_its_entity_id(app, admin, metadata):
    post(admin, PAGE, registration(metadata(), name="  "))

    assert [sp[0] for sp in stored_sps()] == [WIKI]


@pytest.mark.parametrize(
    "signs, choice, expected",
    [(True, "metadata", True), (False, "metadata", False), (True, "off", False), (False, "on", True)],
    ids=["metadata-signs", "metadata-does-not-sign", "admin-says-no", "admin-says-yes"],
)
def test_signed_requests_follow_the_metadata_unless_the_admin_chooses(app, admin, metadata, signs, choice, expected):
    post(admin, PAGE, registration(metadata(authn_requests_signed=signs), signed_requests=choice))

    assert [sp[4] for sp in stored_sps()] == [expected]


@responses.activate(assert_all_requests_are_fired=True)
def test_registering_from_a_metadata_url_stores_the_document_served_there(app, admin, metadata):
    served = metadata(slo_bindings=("soap",))
    responses.get("https://wiki.example/saml-metadata", body=served, content_type="application/samlmetadata+xml")

    response = post(admin, PAGE, registration("", metadata_url="https://wiki.example/saml-metadata"))

    db.session.expire_all()
    assert response.status_code == 303
    assert db.session.scalar(select(ServiceProvider.metadata_xml)) == served
    assert stored_app() == (True, True, False, 7 * 86400, 30 * 86400)


INVALID = {
    "not-xml": ({"metadata_xml": "<EntityDescriptor"}, "metadata", "the metadata is not XML"),
    "not-an-sp": ({"metadata_xml": "acs=False"}, "metadata", "has no AssertionConsumerService"),
    "no-metadata": ({"metadata_xml": ""}, "metadata", "paste the service provider's metadata or give its URL"),
    "xml-and-url": ({"metadata_url": "https://wiki.example/md"}, "metadata", "paste the metadata or give its URL, not both"),
    "url-is-a-file": ({"metadata_xml": "", "metadata_url": "/etc/passwd"}, "metadata", "the metadata URL must be an https URL"),
    "url-over-http": ({"metadata_xml": "", "metadata_url": "http://wiki.example/md"}, "metadata", "must use https"),
    "url-not-found": ({"metadata_xml": "", "metadata_url": "https://wiki.example/gone"}, "metadata", "HTTP 404"),
    "unsupported-nameid": ({"nameid_format": "kerberos"}, "nameid_format", "NameID format must be one of"),
    "unknown-attribute": ({"attributes": ["uid", "password"]}, "attributes", "not password"),
    "long-name": ({"name": "x" * 201}, "name", "name must be 1 to 200 characters"),
    "signed-without-certificate": ({"metadata_xml": "no-certificate", "signed_requests": "on"}, "signed_requests",
                                   "has no signing certificate"),
    "unknown-signed-choice": ({"signed_requests": "maybe"}, "signed_requests", "choose what the metadata says, yes or no"),
}


def invalid_registration(metadata, changes: dict) -> dict:
    """`changes` over a valid form; "acs=False" and "no-certificate" stand for such metadata."""
    xml = changes.get("metadata_xml")
    if xml == "acs=False":
        changes = {**changes, "metadata_xml": metadata(acs=False)}
    elif xml == "no-certificate":
        changes = {**changes, "metadata_xml": without_certificate(metadata())}
    return registration(metadata(), **changes)


@pytest.mark.parametrize("changes, field, message", INVALID.values(), ids=INVALID.keys())
def test_an_invalid_registration_is_refused_beside_its_field_and_stores_nothing(app, admin, metadata, changes, field, message):
    form = invalid_registration(metadata, changes)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get("https://wiki.example/gone", status=404)
        response = post(admin, PAGE, form)

    assert response.status_code == 400
    assert NOTHING_REGISTERED in response.get_data(as_text=True)
    assert message in field_error(response, field, "new")
    assert stored_sps() == [] and db.session.scalars(select(App)).all() == []
    assert audit_events("app.registered") == []


def test_registering_an_entity_id_twice_is_refused_and_keeps_the_first(app, admin, wiki, metadata):
    before = everything_saml()

    response = post(admin, PAGE, registration(metadata(slo_bindings=("soap",)), name="Second"))

    assert response.status_code == 400
    assert field_error(response, "metadata", "new") == f"a service provider with entityID {WIKI} is already registered"
    assert everything_saml() == before


def test_every_refusal_is_shown_at_once(app, admin, wiki, metadata):
    response = post(admin, PAGE, registration(metadata(), nameid_format="kerberos", attributes=["password"]))

    assert "is already registered" in field_error(response, "metadata", "new")
    assert "NameID format must be one of" in field_error(response, "nameid_format", "new")
    assert "not password" in field_error(response, "attributes", "new")


def test_a_refused_registration_keeps_what_was_typed(app, admin, metadata):
    response = post(admin, PAGE, registration(metadata(), name="Team wiki", nameid_format="emailAddress",
                                              attributes=["uid", "password"], signed_requests="off"))

    page = response.get_data(as_text=True)
    assert 'name="name" value="Team wiki"' in page
    assert '<option value="emailAddress" selected>' in page
    assert 'value="uid" checked' in page and 'value="email">' in page
    assert 'name="signed_requests" value="off" checked' in page
    assert "wiki.example/acs" in page.split('id="register"')[1]  # the pasted metadata, still there


# --- CSRF ----------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["register", "settings", "delete"])
def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(app, admin, wiki, metadata, route):
    before = everything_saml()

    response = call(admin, route, wiki, metadata("https://crm.example/metadata"), csrf=False)

    assert response.status_code == 400
    assert everything_saml() == before


# --- an SP's settings ----------------------------------------------------------------------


def test_saving_an_sps_settings_stores_them_and_says_so(app, admin, wiki):
    response = post(admin, f"{PAGE}/{wiki}", sp_settings(
        name="Team wiki", nameid_format="emailAddress", attributes=["email", "role"], signed_requests="on",
        single_logout=None, idle_value="12", idle_unit="h", max_value="14",
    ))

    assert response.status_code == 303
    assert "Saved 7 change(s) to Team wiki." in admin.get(response.location).get_data(as_text=True)
    assert stored_sps() == [("Team wiki", WIKI, "emailAddress", ["email", "role"], True)]
    assert stored_app("Team wiki") == (False, False, True, 12 * 3600, 14 * 86400)


def test_saving_an_sps_settings_records_each_change_with_the_admin(app, admin, wiki):
    post(admin, f"{PAGE}/{wiki}", sp_settings(name="Team wiki", attributes=["uid"], single_logout=None, max_value="14"))

    assert audit_events("app.settings_changed") == [(ADMIN, "Team wiki", {"protocol": "saml", "entity_id": WIKI, "changes": {
        "name": {"old": "Wiki", "new": "Team wiki"},
        "released_attributes": {"old": ["uid", "email", "displayName"], "new": ["uid"]},
        "single_logout": {"old": True, "new": False},
        "session_max": {"old": "30d", "new": "14d"},
    }})]


def test_saving_an_sps_settings_unchanged_says_so_and_records_nothing(app, admin, wiki):
    response = post(admin, f"{PAGE}/{wiki}", sp_settings())

    assert "Nothing changed for Wiki." in admin.get(response.location).get_data(as_text=True)
    assert audit_events("app.settings_changed") == []


def test_the_settings_form_shows_what_is_stored(app, admin, wiki):
    post(admin, f"{PAGE}/{wiki}", sp_settings(nameid_format="transient", attributes=["role"], signed_requests="on", single_logout=None))

    page = admin.get(PAGE).get_data(as_text=True).split(f'id="sp-{wiki}"')[1]
    assert '<option value="transient" selected>' in page
    assert 'value="role" checked' in page and 'value="uid">' in page
    assert 'name="signed_requests" value="on" checked' in page
    assert 'name="single_logout" value="on">' in page


INVALID_SETTINGS = {
    "empty-name": ({"name": " "}, "name", "name must be 1 to 200 characters"),
    "unsupported-nameid": ({"nameid_format": "kerberos"}, "nameid_format", "NameID format must be one of"),
    "unknown-attribute": ({"attributes": ["uid", "password"]}, "attributes", "not password"),
    "signed-without-certificate": ({"signed_requests": "on"}, "signed_requests", "has no signing certificate"),
    "idle-longer-than-max": ({"idle_value": "31"}, "idle", "must not be longer than the maximum lifetime"),
    "max-out-of-range": ({"max_value": "366"}, "max", "must be between 5 minutes and 365 days"),
    "not-a-number": ({"idle_value": "1.5"}, "idle", "enter a whole number"),
    "metadata-not-xml": ({"metadata_xml": "<EntityDescriptor"}, "metadata", "the metadata is not XML"),
}


@pytest.mark.parametrize("changes, field, message", INVALID_SETTINGS.values(), ids=INVALID_SETTINGS.keys())
def test_an_invalid_setting_is_refused_beside_its_field_and_nothing_is_saved(app, admin, metadata, changes, field, message):
    sp_id = registry.add_sp(without_certificate(metadata()), name="Wiki", now=START).id
    before = everything_saml()

    # Every other field changed validly too: none of it may be kept.
    form = {"name": "Renamed", "nameid_format": "transient", "attributes": ["uid"], "single_logout": None, "max_value": "14"}
    response = post(admin, f"{PAGE}/{sp_id}", sp_settings(**{**form, **changes}))

    assert response.status_code == 400
    assert NOTHING_SAVED in response.get_data(as_text=True)
    assert message in field_error(response, field, sp_id)
    assert everything_saml() == before


def test_a_refused_settings_form_keeps_what_was_typed(app, admin, wiki):
    response = post(admin, f"{PAGE}/{wiki}", sp_settings(name="Team wiki", idle_value="91", single_logout=None))

    page = response.get_data(as_text=True)
    assert 'name="name" value="Team wiki"' in page
    assert 'name="idle_value" inputmode="numeric" size="6" value="91"' in page
    assert 'name="single_logout" value="on">' in page  # unchecked, as submitted
    assert "<h2>Wiki</h2>" in page and row(response, "Wiki")  # elsewhere, what is stored


@pytest.mark.parametrize("action", ["", "/delete"])
@pytest.mark.parametrize("unknown", [lambda wiki: wiki + 1, lambda wiki: 2**64], ids=["next-id", "beyond-any-id"])
def test_an_unknown_sp_is_not_found_and_nothing_changes(app, admin, wiki, unknown, action):
    before = everything_saml()

    response = post(admin, f"{PAGE}/{unknown(wiki)}{action}", sp_settings(name="Renamed"))

    assert response.status_code == 404
    assert everything_saml() == before


# --- replacing metadata --------------------------------------------------------------------


def test_replacing_metadata_keeps_the_sp_and_takes_its_new_endpoints(app, admin, wiki, metadata):
    new = metadata(slo_bindings=("soap", "redirect"))

    response = post(admin, f"{PAGE}/{wiki}", sp_settings(metadata_xml=new))

    db.session.expire_all()
    assert response.status_code == 303
    assert db.session.scalar(select(ServiceProvider.metadata_xml)) == new
    assert stored_app() == (True, True, False, 7 * 86400, 30 * 86400)  # SOAP now; the browser only without it
    assert "offers: SOAP back-channel, browser front-channel" in row(admin.get(PAGE), "Wiki")


def test_replacing_metadata_is_audited_with_the_channels_it_changed(app, admin, wiki, metadata):
    post(admin, f"{PAGE}/{wiki}", sp_settings(metadata_xml=metadata(slo_bindings=("soap",))))

    ((_, _, detail),) = audit_events("app.settings_changed")
    assert sorted(detail["changes"]) == ["backchannel_logout", "frontchannel_logout", "metadata"]
    assert detail["changes"]["backchannel_logout"] == {"old": False, "new": True}


@responses.activate(assert_all_requests_are_fired=True)
def test_metadata_can_be_replaced_from_its_url(app, admin, wiki, metadata):
    served = metadata(slo_bindings=())
    responses.get("https://wiki.example/saml-metadata", body=served)

    response = post(admin, f"{PAGE}/{wiki}", sp_settings(metadata_url="https://wiki.example/saml-metadata"))

    db.session.expire_all()
    assert response.status_code == 303
    assert db.session.scalar(select(ServiceProvider.metadata_xml)) == served


def test_metadata_for_another_entity_id_is_refused(app, admin, wiki, metadata):
    before = everything_saml()

    response = post(admin, f"{PAGE}/{wiki}", sp_settings(name="Renamed", metadata_xml=metadata("https://other.example/metadata")))

    assert response.status_code == 400
    assert field_error(response, "metadata", wiki) == (
        f"this metadata describes https://other.example/metadata, not {WIKI}; register it as a new service provider instead")
    assert everything_saml() == before


def test_metadata_without_a_certificate_is_refused_while_signatures_are_required(app, admin, metadata):
    sp_id = registry.add_sp(metadata(authn_requests_signed=True), name="Wiki", now=START).id
    before = everything_saml()

    response = post(admin, f"{PAGE}/{sp_id}", sp_settings(signed_requests="on", metadata_xml=without_certificate(metadata())))

    assert response.status_code == 400
    assert "has no signing certificate" in field_error(response, "signed_requests", sp_id)
    assert everything_saml() == before


# --- deleting ------------------------------------------------------------------------------


def test_deleting_an_sp_sends_the_admin_back_to_the_list_saying_so(app, admin, wiki):
    response = post(admin, f"{PAGE}/{wiki}/delete", {})

    assert response.status_code == 303
    assert urlsplit(response.location).path == PAGE
    page = admin.get(response.location).get_data(as_text=True)
    assert "Deleted Wiki." in page and "No SAML service provider is registered yet." in page


def test_deleting_an_sp_removes_it_and_its_app_and_records_who_did(app, admin, wiki, metadata):
    registry.add_sp(metadata("https://crm.example/metadata"), name="CRM", now=START)

    post(admin, f"{PAGE}/{wiki}/delete", {})

    assert [sp[0] for sp in stored_sps()] == ["CRM"]
    assert db.session.scalars(select(App.name)).all() == ["CRM"]
    assert audit_events("app.deleted") == [(ADMIN, "Wiki", {"protocol": "saml", "entity_id": WIKI})]
