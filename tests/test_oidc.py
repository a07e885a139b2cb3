"""OpenID Connect flows, driven by an independent relying party (authlib's client, joserfc)."""

import base64
import json
import re
import threading
from datetime import timedelta
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from directory.db import db
from directory.models import AppSession
from idp.oidc.models import Token
from tests.conftest import PASSWORD, START, Portal
from tests.factories import make_oidc_client, make_user, session_rows
from tests.peers import FakeRP

REDIRECT = "https://crm.example/cb"


@pytest.fixture
def crm(app):
    make_user("alice", email="alice@example.org")
    return make_oidc_client("CRM")


@pytest.fixture
def rp(app, crm):
    client, secret = crm
    return FakeRP(app, client.client_id, secret, redirect_uri=REDIRECT)


@pytest.fixture
def browser(app):
    return app.test_client()


def signed_in_tokens(rp, browser, clock, **params) -> dict:
    result = rp.sign_in(browser, rp.authorization_url(**params), username="alice", password=PASSWORD)
    return rp.exchange(result["code"])


# --- discovery and keys -------------------------------------------------------------------------


def test_discovery_names_every_endpoint_on_the_issuer(app, rp):
    metadata = rp.metadata
    assert metadata["issuer"] == "http://localhost"
    for name in ("authorization", "token", "userinfo", "introspection", "revocation"):
        assert metadata[f"{name}_endpoint"].startswith("http://localhost/oidc/")
    assert metadata["code_challenge_methods_supported"] == ["S256"]


def test_the_jwks_publishes_one_rs256_and_one_es256_public_key(rp):
    published = {key.alg for key in rp.jwks().keys}
    assert published == {"RS256", "ES256"}


# --- the authorization code flow ----------------------------------------------------------------


def test_a_first_sign_in_shows_the_form_then_returns_a_code_with_the_state(rp, browser):
    result = rp.sign_in(browser, rp.authorization_url(), username="alice", password=PASSWORD)
    assert result["_login_form_shown"] and result["state"] == rp.state and result["code"]


def test_with_a_directory_session_an_app_signs_in_without_a_form(app, rp, browser):
    Portal(browser).login()
    result = rp.sign_in(browser, rp.authorization_url())
    assert not result["_login_form_shown"] and result["code"]


def test_the_id_token_carries_the_sessions_claims(rp, browser, clock):
    clock.advance(minutes=5)
    tokens = signed_in_tokens(rp, browser, clock)
    claims = rp.verify_id_token(tokens["id_token"], nonce=rp.nonce, now=clock.now(), access_token=tokens["access_token"])
    (app_session,) = db.session.scalars(select(AppSession))
    assert claims["sub"] == "alice" and claims["amr"] == ["pwd"]
    assert claims["auth_time"] == int((START + timedelta(minutes=5)).timestamp())
    assert claims["sid"] == app_session.sid and claims["sid"] != str(session_rows()[0].id)
    assert claims["exp"] - claims["iat"] == 3600


def test_the_id_token_is_es256_for_an_app_that_asks_for_it(app, browser, clock):
    make_user("alice")
    client, secret = make_oidc_client("Wiki", id_token_alg="ES256")
    rp = FakeRP(app, client.client_id, secret, redirect_uri="https://wiki.example/cb")
    tokens = signed_in_tokens(rp, browser, clock)
    header = json.loads(base64.urlsafe_b64decode(tokens["id_token"].split(".")[0] + "=="))
    es256_kid = next(key.kid for key in rp.jwks().keys if key.alg == "ES256")
    assert (header["alg"], header["kid"]) == ("ES256", es256_kid)
    assert rp.verify_id_token(tokens["id_token"], nonce=rp.nonce, now=clock.now())["aud"] in ([client.client_id], client.client_id)


def test_userinfo_releases_the_claims_of_the_granted_scopes(rp, browser, clock):
    tokens = signed_in_tokens(rp, browser, clock)
    response = rp.userinfo(tokens["access_token"])
    assert response.status_code == 200
    assert response.json() == {"sub": "alice", "name": "alice", "preferred_username": "alice", "email": "alice@example.org"}


def test_an_authorization_request_counts_as_directory_activity(rp, browser, clock):
    Portal(browser).login()
    clock.advance(minutes=20)
    rp.sign_in(browser, rp.authorization_url())
    assert session_rows()[0].last_activity_at == START + timedelta(minutes=20)


def test_a_code_works_once(rp, browser, clock):
    result = rp.sign_in(browser, rp.authorization_url(), username="alice", password=PASSWORD)
    first = rp.exchange(result["code"])
    assert rp.exchange(result["code"])["error"] == "invalid_grant"
    assert rp.userinfo(first["access_token"]).status_code == 401  # the replay revoked them


def test_two_racing_redemptions_of_a_code_issue_tokens_once(rp, browser, clock):
    result = rp.sign_in(browser, rp.authorization_url(), username="alice", password=PASSWORD)
    start, answers = threading.Barrier(2), []

    def redeem():
        start.wait()
        answers.append(rp.exchange(result["code"]))

    threads = [threading.Thread(target=redeem) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted("access_token" in answer for answer in answers) == [False, True]


def test_a_code_expires_sixty_seconds_after_it_was_issued(rp, browser, clock):
    result = rp.sign_in(browser, rp.authorization_url(), username="alice", password=PASSWORD)
    clock.advance(seconds=60)
    assert rp.exchange(result["code"])["error"] == "invalid_grant"


def test_a_code_issued_under_a_long_lived_sso_session_is_still_fresh(rp, browser, clock):
    Portal(browser).login()
    clock.advance(minutes=25)  # auth_time is 25 minutes old, the code is new
    result = rp.sign_in(browser, rp.authorization_url())
    assert "access_token" in rp.exchange(result["code"])


def test_a_wrong_pkce_verifier_fails(rp, browser):
    result = rp.sign_in(browser, rp.authorization_url(), username="alice", password=PASSWORD)
    rp.code_verifier = "x" * 64
    assert rp.exchange(result["code"])["error"] == "invalid_grant"


def test_plain_pkce_is_refused(rp, browser):
    url = rp.authorization_url().replace("code_challenge_method=S256", "code_challenge_method=plain")
    result = rp.sign_in(browser, url, username="alice", password=PASSWORD)
    assert result["error"] == "invalid_request"


def test_a_public_client_must_use_pkce(app, browser):
    make_user("alice")
    client, _ = make_oidc_client("Spa", public=True, redirect_uris=["https://spa.example/cb"])
    rp = FakeRP(app, client.client_id, None, redirect_uri="https://spa.example/cb")
    url = rp.authorization_url()
    without = "&".join(p for p in urlsplit(url).query.split("&") if not p.startswith("code_challenge"))
    result = rp.sign_in(browser, f"/oidc/authorize?{without}", username="alice", password=PASSWORD)
    assert result["error"] == "invalid_request"


@pytest.mark.parametrize(
    "change", [{"redirect_uri": "https://evil.example/cb"}, {"redirect_uri": "https://crm.example/cb/extra"}, {"client_id": "unknown"}]
)
def test_an_unregistered_redirect_uri_or_client_is_never_redirected_to(rp, browser, change):
    query = parse_qs(urlsplit(rp.authorization_url()).query)
    query.update({key: [value] for key, value in change.items()})
    response = browser.get("/oidc/authorize", query_string={key: values[0] for key, values in query.items()})
    assert response.status_code == 400 and "Location" not in response.headers
    assert "not sent anywhere" in response.get_data(as_text=True)


# --- prompt and max_age -------------------------------------------------------------------------


def test_prompt_none_without_a_session_answers_login_required(rp, browser):
    result = rp.sign_in(browser, rp.authorization_url(prompt="none"))
    assert result["error"] == "login_required" and result["state"] == rp.state


def test_prompt_none_with_a_session_returns_a_code_silently(rp, browser):
    Portal(browser).login()
    result = rp.sign_in(browser, rp.authorization_url(prompt="none"))
    assert result["code"] and not result["_login_form_shown"]


@pytest.mark.parametrize("params", [{"prompt": "login"}, {"max_age": "0"}])
def test_prompt_login_and_max_age_zero_ask_for_the_password_and_renew_auth_time(rp, browser, clock, params):
    Portal(browser).login()
    clock.advance(minutes=10)
    result = rp.sign_in(browser, rp.authorization_url(**params), username="alice", password=PASSWORD)
    assert result["_login_form_shown"] and result["code"]
    claims = rp.verify_id_token(rp.exchange(result["code"])["id_token"], now=clock.now())
    assert claims["auth_time"] == int((START + timedelta(minutes=10)).timestamp())
    (row,) = session_rows()
    assert row.ended_at is None and row.created_at == START  # the same directory session


def test_max_age_within_the_limit_needs_no_password(rp, browser, clock):
    Portal(browser).login()
    clock.advance(seconds=300)
    result = rp.sign_in(browser, rp.authorization_url(max_age="300"))
    assert result["code"] and not result["_login_form_shown"]


# --- refresh, revocation, introspection, client credentials --------------------------------------


def test_refreshing_rotates_the_refresh_token(rp, browser, clock):
    tokens = signed_in_tokens(rp, browser, clock)
    renewed = rp.refresh(tokens["refresh_token"])
    assert renewed["refresh_token"] != tokens["refresh_token"] and renewed["access_token"] != tokens["access_token"]
    assert "access_token" in rp.refresh(renewed["refresh_token"])


def test_a_replayed_refresh_token_ends_the_application_session(rp, browser, clock):
    tokens = signed_in_tokens(rp, browser, clock)
    renewed = rp.refresh(tokens["refresh_token"])
    assert rp.refresh(tokens["refresh_token"])["error"] == "invalid_grant"
    assert rp.refresh(renewed["refresh_token"])["error"] == "invalid_grant"
    assert rp.userinfo(renewed["access_token"]).status_code == 401
    (app_session,) = db.session.scalars(select(AppSession))
    assert app_session.end_reason == "refresh_token_replay"


def test_revoking_an_access_token_makes_it_inactive_everywhere(rp, browser, clock):
    tokens = signed_in_tokens(rp, browser, clock)
    assert rp.introspect(tokens["access_token"])["active"] is True
    assert rp.revoke(tokens["access_token"]).status_code == 200
    assert rp.introspect(tokens["access_token"]) == {"active": False}
    assert rp.userinfo(tokens["access_token"]).status_code == 401


def test_introspection_reports_the_token_subject_scope_and_expiry(rp, browser, clock):
    tokens = signed_in_tokens(rp, browser, clock)
    report = rp.introspect(tokens["access_token"])
    assert (report["sub"], report["scope"], report["exp"] - report["iat"]) == ("alice", "openid profile email", 3600)


def test_an_access_token_expires_after_an_hour(rp, browser, clock):
    tokens = signed_in_tokens(rp, browser, clock)
    clock.advance(hours=1)
    assert rp.userinfo(tokens["access_token"]).status_code == 401


def test_a_service_gets_a_token_with_client_credentials(app, clock):
    client, secret = make_oidc_client("Reports", redirect_uris=[], grant_types=["client_credentials"])
    service = FakeRP(app, client.client_id, secret)
    token = service.client_credentials()
    assert token["token_type"].lower() == "bearer" and "refresh_token" not in token
    assert service.introspect(token["access_token"])["active"] is True
    assert db.session.scalar(select(Token.user_id)) is None


def test_userinfo_refuses_a_service_token_even_with_the_openid_scope(app):
    client, secret = make_oidc_client("Reports", redirect_uris=[], grant_types=["client_credentials"])
    service = FakeRP(app, client.client_id, secret)
    response = service.userinfo(service.client_credentials("openid")["access_token"])
    assert response.status_code == 401 and "invalid_token" in response.headers["WWW-Authenticate"]


def test_a_client_may_authenticate_with_its_secret_in_the_form_body(app, crm, browser):
    client, secret = crm
    rp = FakeRP(app, client.client_id, secret, redirect_uri=REDIRECT, auth_method="client_secret_post")
    result = rp.sign_in(browser, rp.authorization_url(), username="alice", password=PASSWORD)
    assert "access_token" in rp.exchange(result["code"])


def test_a_client_with_a_wrong_secret_gets_no_token(app, rp, browser):
    result = rp.sign_in(browser, rp.authorization_url(), username="alice", password=PASSWORD)
    impostor = FakeRP(app, rp.client_id, "not the secret", redirect_uri=REDIRECT)
    impostor.code_verifier = rp.code_verifier
    assert impostor.exchange(result["code"])["error"] == "invalid_client"


# --- consent ------------------------------------------------------------------------------------


@pytest.fixture
def untrusted(app, crm):
    client, secret = make_oidc_client("Partner", trusted=False)
    return FakeRP(app, client.client_id, secret, redirect_uri="https://partner.example/cb")


def answer_consent(browser, page, decision: str):
    html = page["_body"]
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))
    fields = {name: unescape(value) for name, value in fields.items()}
    response = browser.post("/oidc/authorize", data={**fields, "decision": decision})
    return parse_qs(urlsplit(response.headers["Location"]).query)


def test_an_untrusted_app_asks_for_consent_once(untrusted, browser):
    page = untrusted.sign_in(browser, untrusted.authorization_url(), username="alice", password=PASSWORD)
    assert page["_status"] == 200 and "Allow Partner?" in page["_body"] and "your email address" in page["_body"]
    assert "code" in answer_consent(browser, page, "allow")
    assert "code" in untrusted.sign_in(browser, untrusted.authorization_url())


def test_denying_consent_sends_access_denied_to_the_app(untrusted, browser):
    page = untrusted.sign_in(browser, untrusted.authorization_url(), username="alice", password=PASSWORD)
    answer = answer_consent(browser, page, "deny")
    assert answer["error"] == ["access_denied"] and answer["state"] == [untrusted.state]


def test_prompt_consent_asks_again_even_after_consent(untrusted, browser):
    page = untrusted.sign_in(browser, untrusted.authorization_url(), username="alice", password=PASSWORD)
    answer_consent(browser, page, "allow")
    again = untrusted.sign_in(browser, untrusted.authorization_url(prompt="consent"))
    assert again["_status"] == 200 and "Allow Partner?" in again["_body"]


def test_prompt_none_without_consent_answers_consent_required(untrusted, browser):
    Portal(browser).login()
    assert untrusted.sign_in(browser, untrusted.authorization_url(prompt="none"))["error"] == "consent_required"


def test_a_consent_answer_without_the_csrf_token_is_refused(untrusted, browser):
    page = untrusted.sign_in(browser, untrusted.authorization_url(), username="alice", password=PASSWORD)
    fields = {name: unescape(value) for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page["_body"])}
    fields["csrf_token"] = "forged"
    assert browser.post("/oidc/authorize", data={**fields, "decision": "allow"}).status_code == 400


def test_login_hint_fills_in_the_username(rp, browser):
    page = rp.sign_in(browser, rp.authorization_url(login_hint="alice"))
    assert page["_login_form_shown"] and 'name="username" value="alice"' in page["_body"]


def test_an_id_token_hint_for_the_signed_in_person_signs_in_silently(rp, browser, clock):
    tokens = signed_in_tokens(rp, browser, clock)
    result = rp.sign_in(browser, rp.authorization_url(prompt="none", id_token_hint=tokens["id_token"]))
    assert "code" in result


def test_an_id_token_hint_for_someone_else_needs_a_sign_in(app, rp, browser, clock):
    tokens = signed_in_tokens(rp, browser, clock)
    make_user("bob")
    bobs = app.test_client()
    Portal(bobs).login("bob")
    assert rp.sign_in(bobs, rp.authorization_url(prompt="none", id_token_hint=tokens["id_token"]))["error"] == "login_required"


def test_a_forged_id_token_hint_is_an_invalid_request(rp, browser):
    Portal(browser).login()
    assert rp.sign_in(browser, rp.authorization_url(id_token_hint="e30.e30."))["error"] == "invalid_request"
