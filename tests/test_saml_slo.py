"""SAML Single Logout, driven by pysaml2's SP side (an independent implementation): SPs send
LogoutRequests over HTTP-Redirect, HTTP-POST and SOAP, read the IdP's LogoutRequests and
LogoutResponses, and answer them; OIDC apps in the same directory session get their logout
tokens. SOAP calls the IdP makes are caught by `responses` and answered by the SP's pysaml2."""

from __future__ import annotations

import base64
import html
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, BINDING_SOAP, saml, samlp
from saml2.client import Saml2Client
from saml2.pack import make_soap_enveloped_saml_thingy
from saml2.sigver import verify_redirect_signature
from sqlalchemy import select

from directory import sessions
from directory.db import db
from directory.models import AppSession, DirectorySession, LogoutDelivery
from directory.policy import EndReason
from idp import delivery
from idp.saml.models import LogoutChain
from tests.conftest import PASSWORD
from tests.factories import make_oidc_client, make_user, session_rows
from tests.peers import FakeRP, logout_token_of
from tests.test_saml_sso import (
    IDP_ENTITY,
    RSA_SHA256,
    SHA256,
    make_sp,
    read_response,
    real_time,  # noqa: F401  (an autouse fixture)
    send,
)

SLO = {BINDING_HTTP_REDIRECT: "http://localhost/saml/slo/redirect", BINDING_HTTP_POST: "http://localhost/saml/slo/post"}
_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


# --- an SP's side ----------------------------------------------------------------------------


class Sp:
    """One registered SP and what it learned when the person signed in to it."""

    def __init__(self, client: Saml2Client, entity_id: str) -> None:
        self.client, self.entity_id = client, entity_id
        self.name_id = self.session_index = None

    @property
    def base(self) -> str:
        return self.entity_id.rsplit("/", 1)[0]

    def sign_in(self, browser) -> None:
        request_id, answer, _ = send(browser, self.client)
        action, fields = form_of(answer)
        assert action == f"{self.base}/acs", action
        result = read_response(self.client, fields, request_id)
        self.name_id = result.assertion.subject.name_id
        self.session_index = result.assertion.authn_statement[0].session_index

    def logout_request(self, *, sign: bool = True, session_index: str | None = None, key_of: Sp | None = None,
                       destination: str = SLO[BINDING_HTTP_POST]):
        """(id, XML) of a LogoutRequest for its session, signed in the XML when `sign` (with the
        key of `key_of`, another SP, to forge one)."""
        signer = (key_of or self).client
        request_id, request = signer.create_logout_request(
            destination, IDP_ENTITY, name_id=self.name_id, session_indexes=[session_index or self.session_index],
            sign=False)
        request.issuer.text = self.entity_id
        return request_id, signer.sign(request, sign_alg=RSA_SHA256, digest_alg=SHA256) if sign else request

    def start_logout(self, browser, binding: str = BINDING_HTTP_REDIRECT, relay_state: str = "back-to-sp", **options):
        """Send the browser with a LogoutRequest to the IdP; returns (request id, answer)."""
        request_id, xml = self.logout_request(sign=binding == BINDING_HTTP_POST, destination=SLO[binding], **options)
        if binding == BINDING_HTTP_REDIRECT:
            info = self.client.apply_binding(binding, str(xml), SLO[binding], relay_state, sign=True, sigalg=RSA_SHA256)
            return request_id, browser.get(local(dict(info["headers"])["Location"]))
        data = {"SAMLRequest": base64.b64encode(str(xml).encode()).decode(), "RelayState": relay_state}
        return request_id, browser.post("/saml/slo/post", data=data)

    def answer_request(self, browser, answer, *, success: bool = True):
        """The browser arrived with the IdP's LogoutRequest: check it names this SP's session,
        answer Success (or Responder) the way the IdP's metadata asks, return the IdP's reply."""
        binding, request = self.read_request(answer)
        status = None if success else samlp.Status(status_code=samlp.StatusCode(value=samlp.STATUS_RESPONDER))
        response = self.client.create_logout_response(request.message, [binding], status=status,
                                                      sign=binding == BINDING_HTTP_POST, sign_alg=RSA_SHA256, digest_alg=SHA256)
        info = self.client.apply_binding(binding, str(response), SLO[binding], "", response=True, sign=True, sigalg=RSA_SHA256)
        if binding == BINDING_HTTP_REDIRECT:
            return browser.get(local(dict(info["headers"])["Location"]))
        return browser.post("/saml/slo/post", data={"SAMLResponse": base64.b64encode(str(response).encode()).decode()})

    def read_request(self, answer):
        """The IdP's LogoutRequest the browser brings (Redirect URL or auto-posted form)."""
        if answer.status_code == 303:
            url = answer.headers["Location"]
            assert url.startswith(f"{self.base}/slo/redirect?"), url
            query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
            assert query["SigAlg"] == RSA_SHA256 and redirect_signed_by_idp(self, query)
            binding, text = BINDING_HTTP_REDIRECT, query["SAMLRequest"]
        else:
            action, fields = form_of(answer)
            assert action == f"{self.base}/slo/post", action
            binding, text = BINDING_HTTP_POST, fields["SAMLRequest"]
        request = self.client.parse_logout_request(text, binding)
        assert request.message.issuer.text == IDP_ENTITY
        self.assert_names_its_session(request.message)
        return binding, request

    def assert_names_its_session(self, message) -> None:
        assert message.name_id.text == self.name_id.text
        assert [index.text for index in message.session_index] == [self.session_index]

    def soap_answer(self, request, *, success: bool = True):
        """`responses` callback: the IdP's SOAP LogoutRequest, answered as the SP would."""
        message = self.client.parse_logout_request(request.body.decode(), BINDING_SOAP).message
        self.assert_names_its_session(message)
        self.soap_calls += 1
        status = None if success else samlp.Status(status_code=samlp.StatusCode(value=samlp.STATUS_RESPONDER))
        response = self.client.create_logout_response(message, [BINDING_SOAP], status=status, sign=True,
                                                      sign_alg=RSA_SHA256, digest_alg=SHA256)
        return 200, {"Content-Type": "text/xml"}, make_soap_enveloped_saml_thingy(str(response))

    soap_calls = 0


def local(url: str) -> str:
    parts = urlsplit(url)
    assert parts.netloc == "localhost", url
    return f"{parts.path}?{parts.query}"


def form_of(answer) -> tuple[str, dict]:
    assert answer.status_code == 200, answer.data[:500]
    page = answer.get_data(as_text=True)
    action = html.unescape(re.search(r'<form id="continue" method="post" action="([^"]+)"', page).group(1))
    return action, {name: html.unescape(value) for name, value in _INPUT.findall(page)}


def redirect_signed_by_idp(sp: Sp, query: dict) -> bool:
    """pysaml2's own check of a Redirect binding signature, with the IdP's metadata certificate."""
    certificates = sp.client.metadata.certs(IDP_ENTITY, "idpsso", "signing")
    return any(verify_redirect_signature(query, sp.client.sec.sec_backend, cert) for _, cert in certificates)


def logout_response_at(sp: Sp, answer, request_id: str):
    """The IdP's LogoutResponse as the SP reads it: signature checked by pysaml2 (in the XML for
    HTTP-POST, in the query for HTTP-Redirect), whatever its status."""
    if answer.status_code == 303:
        url = answer.headers["Location"]
        assert url.startswith(f"{sp.base}/slo/redirect?"), url
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        assert redirect_signed_by_idp(sp, query), "the Redirect LogoutResponse must be signed by the IdP"
        binding, text, relay_state = BINDING_HTTP_REDIRECT, query["SAMLResponse"], query.get("RelayState")
    else:
        action, fields = form_of(answer)
        assert action == f"{sp.base}/slo/post"
        binding, text, relay_state = BINDING_HTTP_POST, fields["SAMLResponse"], fields.get("RelayState")
    xml = sp.client.unravel(text, binding, "logout_response")
    response = sp.client.sec.correctly_signed_logout_response(xml, must=binding == BINDING_HTTP_POST)
    assert response.in_response_to == request_id and response.issuer.text == IDP_ENTITY
    assert response.destination == f"{sp.base}/slo/{'redirect' if binding == BINDING_HTTP_REDIRECT else 'post'}"
    return response, relay_state


def codes(response) -> list[str]:
    code, found = response.status.status_code, []
    while code is not None:
        found.append(code.value)
        code = code.status_code
    return found


SUCCESS = [samlp.STATUS_SUCCESS]
PARTIAL = [samlp.STATUS_SUCCESS, samlp.STATUS_PARTIAL_LOGOUT]


def live_directory_sessions() -> int:
    db.session.expire_all()
    return sum(1 for row in session_rows() if row.ended_at is None)


def app_sessions() -> dict[str, str | None]:
    db.session.expire_all()
    return {row.app.name: row.end_reason for row in db.session.scalars(select(AppSession))}


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def alice(app, clock):
    return make_user("alice", email="alice@example.com", now=clock.now())


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def register(app, tmp_path, client, name: str, slo_bindings=("redirect",)) -> Sp:
    entity_id = f"https://{name}.example/metadata"
    return Sp(make_sp(app, tmp_path, client, entity_id=entity_id, slo_bindings=slo_bindings), entity_id)


@pytest.fixture
def wiki(app, tmp_path, client, portal) -> Sp:
    """Alice signed in at the portal and to the Wiki SP (SLO over HTTP-Redirect)."""
    sp = register(app, tmp_path, client, "wiki")
    portal.login()
    sp.sign_in(client)
    return sp


# --- SP-initiated, one SP ------------------------------------------------------------------------


@pytest.mark.parametrize("binding", [BINDING_HTTP_REDIRECT, BINDING_HTTP_POST])
def test_a_logout_request_ends_the_directory_session_and_gets_a_signed_success_response(binding, wiki, client):
    request_id, answer = wiki.start_logout(client, binding)
    response, relay_state = logout_response_at(wiki, answer, request_id)
    assert codes(response) == SUCCESS and relay_state == "back-to-sp"
    assert live_directory_sessions() == 0 and session_rows()[0].end_reason == "signed_out"
    assert app_sessions() == {"https://wiki.example/metadata": "directory_signout"}
    assert "idp_session=;" in answer.headers.get("Set-Cookie", "") or binding == BINDING_HTTP_POST


def test_after_saml_logout_the_next_sign_in_needs_the_password(wiki, client):
    request_id, answer = wiki.start_logout(client)
    logout_response_at(wiki, answer, request_id)
    _, again, _ = send(client, wiki.client)
    assert again.status_code == 302 and urlsplit(again.headers["Location"]).path == "/login"


def test_an_sp_whose_slo_endpoint_takes_post_gets_its_response_posted_and_xml_signed(app, tmp_path, client, portal):
    sp = register(app, tmp_path, client, "forms", slo_bindings=("post",))
    portal.login()
    sp.sign_in(client)
    request_id, answer = sp.start_logout(client, BINDING_HTTP_POST)
    response, relay_state = logout_response_at(sp, answer, request_id)
    assert codes(response) == SUCCESS and relay_state == "back-to-sp"
    assert f"form-action {sp.base}" in answer.headers["Content-Security-Policy"]


def test_logout_after_an_unnoticed_expiry_records_the_expiry_and_still_signs_out_every_app(app, tmp_path, client, portal, http):
    wiki = register(app, tmp_path, client, "wiki")
    crm = register(app, tmp_path, client, "crm", slo_bindings=("soap",))
    portal.login()
    wiki.sign_in(client)
    crm.sign_in(client)
    (session,) = db.session.scalars(select(DirectorySession)).all()
    deadline = session.expires_at
    session.last_activity_at -= timedelta(minutes=31)  # idle past the 30-minute default, unseen
    session.expires_at -= timedelta(minutes=31)
    db.session.commit()
    http.add_callback(responses.POST, "https://crm.example/slo/soap", callback=crm.soap_answer)
    request_id, answer = wiki.start_logout(client)
    assert codes(logout_response_at(wiki, answer, request_id)[0]) == SUCCESS
    (row,) = session_rows()
    assert (row.end_reason, row.ended_at) == ("idle_timeout", deadline - timedelta(minutes=31))
    assert crm.soap_calls == 1 and set(app_sessions().values()) == {"directory_signout"}


# --- refused LogoutRequests end nothing --------------------------------------------------------


def test_an_unsigned_logout_request_is_refused_and_ends_nothing(wiki, client):
    request_id, xml = wiki.logout_request(sign=False)
    answer = client.post("/saml/slo/post", data={"SAMLRequest": base64.b64encode(str(xml).encode()).decode()})
    assert answer.status_code == 400 and b"cannot be carried out" in answer.data
    assert live_directory_sessions() == 1 and app_sessions() == {"https://wiki.example/metadata": None}


def test_a_logout_request_signed_with_another_sps_key_is_refused(app, tmp_path, client, wiki):
    other = register(app, tmp_path, client, "other")
    request_id, xml = wiki.logout_request(key_of=other)
    answer = client.post("/saml/slo/post", data={"SAMLRequest": base64.b64encode(str(xml).encode()).decode()})
    assert answer.status_code == 400
    assert live_directory_sessions() == 1


def test_a_logout_request_altered_after_signing_is_refused(wiki, client):
    _, xml = wiki.logout_request()
    tampered = str(xml).replace(wiki.session_index, "another-session-index")
    assert tampered != str(xml)
    answer = client.post("/saml/slo/post", data={"SAMLRequest": base64.b64encode(tampered.encode()).decode()})
    assert answer.status_code == 400 and live_directory_sessions() == 1


def test_a_redirect_logout_request_without_its_query_signature_is_refused(wiki, client):
    _, xml = wiki.logout_request(sign=False, destination=SLO[BINDING_HTTP_REDIRECT])
    info = wiki.client.apply_binding(BINDING_HTTP_REDIRECT, str(xml), SLO[BINDING_HTTP_REDIRECT], "", sign=False)
    answer = client.get(local(dict(info["headers"])["Location"]))
    assert answer.status_code == 400 and live_directory_sessions() == 1


def test_a_replayed_logout_request_is_refused(wiki, client, portal):
    _, xml = wiki.logout_request()
    data = {"SAMLRequest": base64.b64encode(str(xml).encode()).decode()}
    assert client.post("/saml/slo/post", data=data).status_code == 303
    portal.login()
    wiki.sign_in(client)
    replay = client.post("/saml/slo/post", data=data)
    assert replay.status_code == 400 and b"already answered" in replay.data
    assert live_directory_sessions() == 1


def test_a_logout_request_naming_no_session_of_that_sp_ends_nothing_and_says_unknown_principal(wiki, client):
    request_id, answer = wiki.start_logout(client, session_index="not-a-session-of-wiki")
    response, _ = logout_response_at(wiki, answer, request_id)
    assert codes(response) == [samlp.STATUS_REQUESTER, samlp.STATUS_UNKNOWN_PRINCIPAL]
    assert live_directory_sessions() == 1 and app_sessions() == {"https://wiki.example/metadata": None}


def test_a_logout_request_naming_another_sps_session_index_ends_nothing(app, tmp_path, client, wiki):
    crm = register(app, tmp_path, client, "crm")
    crm.sign_in(client)
    request_id, answer = wiki.start_logout(client, session_index=crm.session_index)
    assert codes(logout_response_at(wiki, answer, request_id)[0])[1] == samlp.STATUS_UNKNOWN_PRINCIPAL
    assert live_directory_sessions() == 1


# --- propagation ---------------------------------------------------------------------------------


def three_apps(app, tmp_path, client, portal, clock, http):
    """Alice signed in to Wiki (SLO: Redirect and SOAP), CRM (SOAP) and the OIDC app Mail
    (back-channel); CRM and Mail answer their notices. Returns (wiki, crm, Mail's RP, its sid)."""
    wiki = register(app, tmp_path, client, "wiki", slo_bindings=("redirect", "soap"))
    crm = register(app, tmp_path, client, "crm", slo_bindings=("soap",))
    oidc_client, secret = make_oidc_client("Mail")
    rp = FakeRP(app, oidc_client.client_id, secret, redirect_uri="https://mail.example/cb")
    portal.login()
    wiki.sign_in(client)
    crm.sign_in(client)
    code = rp.sign_in(client, rp.authorization_url(), username="alice", password=PASSWORD)["code"]
    mail_sid = rp.verify_id_token(rp.exchange(code)["id_token"], nonce=rp.nonce, now=clock.now())["sid"]
    http.add_callback(responses.POST, "https://crm.example/slo/soap", callback=crm.soap_answer)
    http.add(responses.POST, "https://mail.example/logout", status=200)
    return wiki, crm, rp, mail_sid


def test_two_saml_sps_and_an_oidc_app_slo_from_sp_1_reaches_sp_2_by_soap_and_the_oidc_app_by_logout_token(
        app, tmp_path, client, portal, clock, http):
    wiki, crm, rp, mail_sid = three_apps(app, tmp_path, client, portal, clock, http)

    request_id, answer = wiki.start_logout(client)

    response, _ = logout_response_at(wiki, answer, request_id)
    assert codes(response) == SUCCESS
    assert crm.soap_calls == 1
    notified = sorted(row.app_session.app.name for row in db.session.scalars(select(LogoutDelivery)))
    assert notified == ["Mail", "https://crm.example/metadata"]  # the SP that asked is answered, not notified
    (call,) = [c for c in http.calls if c.request.url == "https://mail.example/logout"]
    assert rp.verify_logout_token(logout_token_of(call.request), now=clock.now())["sid"] == mail_sid
    assert set(app_sessions().values()) == {"directory_signout"} and live_directory_sessions() == 0


def test_an_sp_that_cannot_be_reached_makes_the_answer_partial_logout_and_its_notice_is_retried(
        app, tmp_path, client, portal, clock, http):
    wiki = register(app, tmp_path, client, "wiki")
    crm = register(app, tmp_path, client, "crm", slo_bindings=("soap",))
    portal.login()
    wiki.sign_in(client)
    crm.sign_in(client)
    http.add(responses.POST, "https://crm.example/slo/soap", status=503)
    request_id, answer = wiki.start_logout(client)
    assert codes(logout_response_at(wiki, answer, request_id)[0]) == PARTIAL
    (row,) = db.session.scalars(select(LogoutDelivery)).all()
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "HTTP 503 from https://crm.example/slo/soap")


def test_an_sp_answering_soap_with_a_failure_status_makes_the_answer_partial(app, tmp_path, client, portal, http):
    wiki = register(app, tmp_path, client, "wiki")
    crm = register(app, tmp_path, client, "crm", slo_bindings=("soap",))
    portal.login()
    wiki.sign_in(client)
    crm.sign_in(client)
    http.add_callback(responses.POST, "https://crm.example/slo/soap", callback=lambda r: crm.soap_answer(r, success=False))
    request_id, answer = wiki.start_logout(client)
    assert codes(logout_response_at(wiki, answer, request_id)[0]) == PARTIAL
    assert "answered urn:oasis:names:tc:SAML:2.0:status:Responder" in db.session.scalar(select(LogoutDelivery.last_error))


def test_an_sp_reachable_only_through_the_browser_is_visited_before_the_asking_sp_gets_its_answer(
        app, tmp_path, client, portal):
    wiki = register(app, tmp_path, client, "wiki")
    crm = register(app, tmp_path, client, "crm", slo_bindings=("post",))
    portal.login()
    wiki.sign_in(client)
    crm.sign_in(client)
    request_id, answer = wiki.start_logout(client)
    back = crm.answer_request(client, answer)
    response, relay_state = logout_response_at(wiki, back, request_id)
    assert codes(response) == SUCCESS and relay_state == "back-to-sp"
    assert db.session.scalars(select(LogoutChain)).all() == []


def test_a_browser_visited_sp_answering_with_a_failure_makes_the_answer_partial(app, tmp_path, client, portal):
    wiki = register(app, tmp_path, client, "wiki")
    crm = register(app, tmp_path, client, "crm")
    portal.login()
    wiki.sign_in(client)
    crm.sign_in(client)
    request_id, answer = wiki.start_logout(client)
    back = crm.answer_request(client, answer, success=False)
    assert codes(logout_response_at(wiki, back, request_id)[0]) == PARTIAL


def test_signing_out_at_the_portal_visits_each_browser_sp_in_turn_then_lands_on_the_sign_in_page(
        app, tmp_path, client, portal):
    wiki = register(app, tmp_path, client, "wiki")
    crm = register(app, tmp_path, client, "crm", slo_bindings=("post",))
    portal.login()
    wiki.sign_in(client)
    crm.sign_in(client)
    answer = portal.logout()
    first = wiki if answer.status_code == 303 else crm
    second = crm if first is wiki else wiki
    answer = first.answer_request(client, answer)
    answer = second.answer_request(client, answer)
    assert answer.status_code == 303 and answer.headers["Location"] == "/login"
    assert live_directory_sessions() == 0 and set(app_sessions().values()) == {"directory_signout"}


def test_a_logout_answer_for_no_sign_out_in_progress_is_refused(wiki, client):
    never_sent = samlp.LogoutRequest(id="id-the-idp-never-sent", issuer=saml.Issuer(text=IDP_ENTITY))
    unasked = wiki.client.create_logout_response(never_sent, [BINDING_HTTP_POST], sign=True, sign_alg=RSA_SHA256, digest_alg=SHA256)
    answer = client.post("/saml/slo/post", data={"SAMLResponse": base64.b64encode(str(unasked).encode()).decode()})
    assert answer.status_code == 400 and b"does not belong to a sign-out in progress" in answer.data
    assert live_directory_sessions() == 1


# --- no browser ------------------------------------------------------------------------------------


def test_an_admin_ending_the_session_reaches_two_saml_sps_and_an_oidc_app_without_a_browser(
        app, tmp_path, client, portal, clock, http):
    wiki, crm, _, _ = three_apps(app, tmp_path, client, portal, clock, http)
    http.add_callback(responses.POST, "https://wiki.example/slo/soap", callback=wiki.soap_answer)

    (session,) = db.session.scalars(select(DirectorySession)).all()
    sessions.end(session, EndReason.ENDED_BY_ADMIN, now=clock.now(), actor_label="test")
    assert delivery.deliver_due(now=clock.now()) == {"sent": 3, "retrying": 0, "failed": 0}
    assert wiki.soap_calls == crm.soap_calls == 1


def test_a_soap_logout_request_from_an_sp_ends_the_session_and_is_answered_over_soap(app, tmp_path, client, portal, http):
    wiki = register(app, tmp_path, client, "wiki", slo_bindings=("soap",))
    crm = register(app, tmp_path, client, "crm", slo_bindings=("soap",))
    portal.login()
    wiki.sign_in(client)
    crm.sign_in(client)
    http.add_callback(responses.POST, "https://crm.example/slo/soap", callback=crm.soap_answer)
    request_id, xml = wiki.logout_request(destination="http://localhost/saml/slo/soap")
    answer = client.post("/saml/slo/soap", data=make_soap_enveloped_saml_thingy(str(xml)), content_type="text/xml")
    assert answer.status_code == 200 and answer.mimetype == "text/xml"
    response = wiki.client.parse_logout_request_response(answer.get_data(as_text=True), BINDING_SOAP).response
    assert response.in_response_to == request_id and codes(response) == SUCCESS
    assert crm.soap_calls == 1 and live_directory_sessions() == 0


def test_an_unsigned_soap_logout_request_gets_a_soap_fault_and_ends_nothing(app, tmp_path, client, portal):
    wiki = register(app, tmp_path, client, "wiki", slo_bindings=("soap",))
    portal.login()
    wiki.sign_in(client)
    _, xml = wiki.logout_request(sign=False, destination="http://localhost/saml/slo/soap")
    answer = client.post("/saml/slo/soap", data=make_soap_enveloped_saml_thingy(str(xml)), content_type="text/xml")
    assert answer.status_code == 400 and b"<faultstring>" in answer.data
    assert live_directory_sessions() == 1
