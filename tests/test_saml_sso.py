"""SAML Web Browser SSO: pysaml2's SP side (an independent implementation) sends AuthnRequests
over HTTP-Redirect and HTTP-POST and reads the IdP's Responses."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

import pytest
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, BINDING_SOAP, samlp
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.sigver import get_xmlsec_binary
from sqlalchemy import select

from directory.db import db
from directory.models import AppSession
from idp.saml import certs, registry
from tests.conftest import START
from tests.factories import make_sp_metadata, make_user, session_rows

IDP_ENTITY = "http://localhost/saml/metadata"
SP_ENTITY = "https://sp.example/metadata"
ACS = "https://sp.example/acs"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SSO = {BINDING_HTTP_REDIRECT: "http://localhost/saml/sso/redirect", BINDING_HTTP_POST: "http://localhost/saml/sso/post"}
SLO_BINDINGS = {"redirect": BINDING_HTTP_REDIRECT, "post": BINDING_HTTP_POST, "soap": BINDING_SOAP}
_FIELD = re.compile(r'name="(SAMLResponse|RelayState)" value="([^"]*)"')


@pytest.fixture(autouse=True)
def real_time(clock):
    """pysaml2 dates its messages by the system clock: run the app clock from the same instant."""
    clock.advance(seconds=(datetime.now(UTC) - START).total_seconds())


@pytest.fixture
def user(app, clock):
    return make_user("alice", email="alice@example.com", display_name="Alice Liddell", now=clock.now())


def make_sp(app, tmp_path, client, *, signed: bool = False, nameid_format: str = "persistent", entity_id: str = SP_ENTITY,
            attributes=None, slo_bindings: tuple[str, ...] = ("redirect",)) -> Saml2Client:
    """Register an SP and return its pysaml2 client, holding the key its metadata publishes.
    `slo_bindings`: its SingleLogoutService endpoints, at <base>/slo/<binding>."""
    folder = tmp_path / f"sp-{len(list(tmp_path.glob('sp-*')))}"
    metadata = make_sp_metadata(folder, entity_id, authn_requests_signed=signed, slo_bindings=slo_bindings)
    registry.add_sp(metadata, now=START, actor_label="test", nameid_format=nameid_format, attributes=attributes)
    pair = certs.load(folder, host="sp.example", now=START)
    base = entity_id.rsplit("/", 1)[0]
    config = SPConfig().load({
        "entityid": entity_id,
        "service": {"sp": {
            "endpoints": {"assertion_consumer_service": [(f"{base}/acs", BINDING_HTTP_POST)],
                          "single_logout_service": [(f"{base}/slo/{name}", SLO_BINDINGS[name]) for name in slo_bindings]},
            "authn_requests_signed": signed, "want_assertions_signed": True, "want_response_signed": True,
        }},
        "key_file": str(pair.key_file), "cert_file": str(pair.cert_file),
        "xmlsec_binary": get_xmlsec_binary(),
        "metadata": {"inline": [client.get("/saml/metadata").data.decode()]},
    })
    return Saml2Client(config=config)


@pytest.fixture
def sp(app, tmp_path, client):
    return make_sp(app, tmp_path, client)


def send(client, sp: Saml2Client, binding: str = BINDING_HTTP_REDIRECT, *, sign: bool = False, relay_state: str = "rs-1",
         request=None, **options):
    """Send an AuthnRequest through the browser; returns (request id, the IdP's answer, the request)."""
    destination = SSO[binding]
    if request is None:
        request = sp.create_authn_request(destination, sign=sign and binding == BINDING_HTTP_POST,
                                          sign_alg=RSA_SHA256, digest_alg=SHA256, **options)
    request_id, xml = request
    if binding == BINDING_HTTP_REDIRECT:
        info = sp.apply_binding(binding, str(xml), destination, relay_state, sign=sign, sigalg=RSA_SHA256 if sign else None)
        location = dict(info["headers"])["Location"]
        parts = urlsplit(location)
        answer = client.get(f"{parts.path}?{parts.query}")
    else:
        answer = client.post("/saml/sso/post", data={"SAMLRequest": base64.b64encode(str(xml).encode()).decode(), "RelayState": relay_state})
    return request_id, answer, request


def follow(client, answer, hops: int = 5):
    while answer.status_code in (302, 303) and hops:
        parts = urlsplit(answer.headers["Location"])
        answer = client.get(f"{parts.path}?{parts.query}" if parts.query else parts.path)
        hops -= 1
    return answer


def posted(answer) -> dict:
    """The auto-posting form's fields; asserts it targets the ACS."""
    assert answer.status_code == 200, answer.data[:500]
    page = answer.data.decode()
    assert f'action="{ACS}"' in page
    fields = dict(_FIELD.findall(page))
    assert "SAMLResponse" in fields
    return fields


def sign_in_at_form(portal, answer):
    """The browser landed on the sign-in form: enter the password, come back to the IdP."""
    assert answer.status_code == 302 and urlsplit(answer.headers["Location"]).path == "/login"
    query = dict(parse_qsl(urlsplit(answer.headers["Location"]).query))
    form = follow(portal.client, answer)
    assert b'name="password"' in form.data
    back = portal.login(next=query["next"], fresh=query.get("fresh", ""))
    assert back.status_code == 303
    return follow(portal.client, back)


def read_response(sp: Saml2Client, fields: dict, request_id: str):
    return sp.parse_authn_request_response(fields["SAMLResponse"], BINDING_HTTP_POST, outstanding={request_id: "/"})


def app_session_sids() -> list[str]:
    db.session.expire_all()
    return list(db.session.scalars(select(AppSession.sid)))


# --- sign-in through the form, both bindings ---------------------------------------------------


@pytest.mark.parametrize("binding", [BINDING_HTTP_REDIRECT, BINDING_HTTP_POST])
def test_sso_without_a_session_signs_in_at_the_form_and_posts_a_signed_assertion(binding, client, portal, user, sp):
    request_id, answer, _ = send(client, sp, binding)
    answer = follow(client, answer, hops=1) if answer.status_code == 303 else answer  # POST: bounce over GET
    fields = posted(sign_in_at_form(portal, answer))
    assert fields["RelayState"] == "rs-1"
    result = read_response(sp, fields, request_id)  # verifies signatures against our metadata
    assert result.name_id.format == "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
    assert len(result.name_id.text) == 64
    values = {value for values in result.ava.values() for value in values}
    assert {"alice", "alice@example.com", "Alice Liddell"} <= values
    assertion = result.assertion
    assert assertion.conditions.audience_restriction[0].audience[0].text == SP_ENTITY
    statement = assertion.authn_statement[0]
    assert [statement.session_index] == app_session_sids()
    signed_in = session_rows()[0]
    assert statement.authn_instant == signed_in.authenticated_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert statement.authn_context.authn_context_class_ref.text == "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
    assert statement.session_not_on_or_after
    assert result.response.in_response_to == request_id
    assert result.response.destination == ACS
    assert assertion.subject.subject_confirmation[0].subject_confirmation_data.not_on_or_after


def test_the_response_uses_rsa_sha256_and_sha256_digests_only(client, portal, user, sp):
    portal.login()
    _, answer, _ = send(client, sp)
    xml = base64.b64decode(posted(answer)["SAMLResponse"]).decode()
    assert xml.count(f'Algorithm="{RSA_SHA256}"') == 2  # the response and the assertion
    assert xml.count(f'Algorithm="{SHA256}"') == 2
    assert "sha1" not in xml


def test_the_post_page_allows_only_its_own_script_and_posting_to_the_acs(client, portal, user, sp):
    portal.login()
    _, answer, _ = send(client, sp)
    csp = answer.headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    assert f'<script nonce="{nonce}">' in answer.data.decode()
    assert "form-action https://sp.example" in csp


# --- an existing session -----------------------------------------------------------------------


@pytest.mark.parametrize("binding", [BINDING_HTTP_REDIRECT, BINDING_HTTP_POST])
def test_a_directory_session_signs_in_without_a_form(binding, client, portal, user, sp):
    portal.login()
    request_id, answer, _ = send(client, sp, binding)
    fields = posted(answer)
    assert b'name="password"' not in answer.data
    assert read_response(sp, fields, request_id).name_id.text


def test_force_authn_asks_for_the_password_again_and_updates_the_authn_instant(client, portal, user, sp, clock):
    portal.login()
    first_id, answer, _ = send(client, sp)
    before = read_response(sp, posted(answer), first_id).assertion.authn_statement[0].authn_instant
    clock.advance(seconds=90)
    request_id, answer, _ = send(client, sp, force_authn="true")
    fields = posted(sign_in_at_form(portal, answer))
    after = read_response(sp, fields, request_id).assertion.authn_statement[0].authn_instant
    assert after > before


@pytest.mark.parametrize("binding", [BINDING_HTTP_REDIRECT, BINDING_HTTP_POST])
def test_is_passive_without_a_session_answers_no_passive(binding, client, user, sp):
    request_id, answer, _ = send(client, sp, binding, is_passive="true")
    answer = follow(client, answer, hops=1) if answer.status_code == 303 else answer  # POST: bounce over GET
    fields = posted(answer)
    xml = base64.b64decode(fields["SAMLResponse"]).decode()
    assert samlp.STATUS_RESPONDER in xml and samlp.STATUS_NO_PASSIVE in xml
    assert f'InResponseTo="{request_id}"' in xml


def test_is_passive_with_a_session_signs_in(client, portal, user, sp):
    portal.login()
    request_id, answer, _ = send(client, sp, is_passive="true")
    assert read_response(sp, posted(answer), request_id).name_id.text


# --- refusals: an error page, never the ACS ---------------------------------------------------


def refused(answer):
    assert answer.status_code == 400
    page = answer.data.decode()
    assert "SAMLResponse" not in page and "<form" not in page.split("<main>", 1)[-1]
    return page


def test_an_unregistered_acs_url_is_refused_with_a_page(client, portal, user, sp):
    portal.login()
    _, answer, _ = send(client, sp, assertion_consumer_service_url="https://evil.example/acs")
    assert "AssertionConsumerServiceURL" in refused(answer)
    assert app_session_sids() == []


def test_an_unknown_sp_is_refused(app, client, portal, user, sp, tmp_path):
    stranger = make_sp(app, tmp_path, client, entity_id="https://other.example/metadata")
    registry.remove_sp("https://other.example/metadata", now=START)
    portal.login()
    _, answer, _ = send(client, stranger)
    assert "not registered" in refused(answer)


def test_a_replayed_request_is_refused(client, portal, user, sp):
    portal.login()
    _, answer, request = send(client, sp)
    posted(answer)
    _, again, _ = send(client, sp, request=request)
    assert "already answered" in refused(again)


def test_a_stale_request_is_refused(client, portal, user, sp, clock):
    portal.login()
    request = sp.create_authn_request(SSO[BINDING_HTTP_REDIRECT])
    clock.advance(minutes=6)
    portal.login()  # the session is still alive at the new time
    _, answer, _ = send(client, sp, request=request)
    assert "too old" in refused(answer)


def test_a_request_from_the_future_is_refused(client, portal, user, sp, clock):
    clock.advance(minutes=-2)
    portal.login()
    _, answer, _ = send(client, sp)
    assert "too old, or dated in the future" in refused(answer)


def test_an_sp_that_signs_must_sign(app, client, portal, user, tmp_path):
    signer = make_sp(app, tmp_path, client, signed=True)
    portal.login()
    _, answer, _ = send(client, signer)
    assert "must sign its requests" in refused(answer)
    for binding in (BINDING_HTTP_REDIRECT, BINDING_HTTP_POST):
        request_id, answer, _ = send(client, signer, binding, sign=True)
        assert read_response(signer, posted(answer), request_id).name_id.text


def test_a_get_to_the_post_endpoint_without_our_marker_is_refused(client, portal, user, sp):
    portal.login()
    _, xml = sp.create_authn_request(SSO[BINDING_HTTP_POST])
    answer = client.get("/saml/sso/post", query_string={"SAMLRequest": base64.b64encode(str(xml).encode()).decode()})
    refused(answer)


# --- NameID formats ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["transient", "emailAddress", "unspecified"])
def test_nameid_formats(fmt, app, client, portal, user, tmp_path):
    sp = make_sp(app, tmp_path, client, nameid_format=fmt)
    portal.login()
    request_id, answer, _ = send(client, sp)
    name_id = read_response(sp, posted(answer), request_id).name_id.text
    expected = {"transient": app_session_sids()[0], "emailAddress": "alice@example.com", "unspecified": "alice"}[fmt]
    assert name_id == expected


def test_a_tampered_redirect_signature_is_refused(app, client, portal, user, tmp_path):
    signer = make_sp(app, tmp_path, client, signed=True)
    portal.login()
    _, xml = signer.create_authn_request(SSO[BINDING_HTTP_REDIRECT], sign=False)  # the query carries the signature
    info = signer.apply_binding(BINDING_HTTP_REDIRECT, str(xml), SSO[BINDING_HTTP_REDIRECT], "rs-1", sign=True, sigalg=RSA_SHA256)
    query = dict(parse_qsl(urlsplit(dict(info["headers"])["Location"]).query))
    query["RelayState"] = "rs-2"  # covered by the signature
    assert "must sign its requests" in refused(client.get("/saml/sso/redirect", query_string=query))


def test_sso_with_a_session_counts_as_directory_activity(client, portal, user, sp, clock):
    portal.login()
    clock.advance(minutes=2)  # past the activity throttle; the request is dated by the real clock
    _, answer, _ = send(client, sp)
    posted(answer)
    assert session_rows(user)[0].last_activity_at == clock.now()


def test_force_authn_with_is_passive_answers_no_passive(client, portal, user, sp):
    portal.login()
    _, answer, _ = send(client, sp, force_authn="true", is_passive="true")
    assert samlp.STATUS_NO_PASSIVE in base64.b64decode(posted(answer)["SAMLResponse"]).decode()


def test_garbage_is_refused(client, portal, user, sp):
    portal.login()
    refused(client.post("/saml/sso/post", data={"SAMLRequest": "bm90IHhtbA=="}))
    refused(client.get("/saml/sso/redirect", query_string={"SAMLRequest": "!!"}))
    refused(client.get("/saml/sso/redirect"))
