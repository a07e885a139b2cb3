"""RP-initiated logout, front-channel logout, and the ID-token hints the directory will read."""

import base64
import hashlib
import hmac
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from directory.db import db
from directory.models import AppSession
from tests.conftest import PASSWORD, csrf_from
from tests.factories import make_oidc_client, make_user, session_rows
from tests.peers import FakeRP

AFTER_LOGOUT = "https://crm.example/bye"


@pytest.fixture
def rp(app):
    make_user("alice")
    client, secret = make_oidc_client("CRM", post_logout_redirect_uris=[AFTER_LOGOUT])
    return FakeRP(app, client.client_id, secret, redirect_uri="https://crm.example/cb")


@pytest.fixture
def browser(app):
    return app.test_client()


@pytest.fixture
def id_token(rp, browser):
    result = rp.sign_in(browser, rp.authorization_url(), username="alice", password=PASSWORD)
    return rp.exchange(result["code"])["id_token"]


def end_session(browser, **params):
    return browser.get("/oidc/end_session", query_string=params)


def still_signed_in(browser) -> bool:
    return browser.get("/").status_code == 200


def test_discovery_advertises_end_session_and_both_logout_channels(rp):
    metadata = rp.metadata
    assert metadata["end_session_endpoint"] == "http://localhost/oidc/end_session"
    for flag in ("backchannel_logout", "backchannel_logout_session", "frontchannel_logout", "frontchannel_logout_session"):
        assert metadata[f"{flag}_supported"] is True


def test_a_valid_hint_signs_out_and_returns_to_the_registered_uri_with_the_state(rp, browser, id_token):
    response = end_session(browser, id_token_hint=id_token, post_logout_redirect_uri=AFTER_LOGOUT, state="xyz")
    assert response.status_code == 303 and response.headers["Location"] == f"{AFTER_LOGOUT}?state=xyz"
    assert session_rows()[0].end_reason == "signed_out" and not still_signed_in(browser)


def test_an_expired_id_token_is_still_a_valid_hint(rp, browser, id_token, clock):
    clock.advance(hours=2)
    browser.get("/")  # stay active so the directory session itself is alive
    response = end_session(browser, id_token_hint=id_token, post_logout_redirect_uri=AFTER_LOGOUT)
    assert response.headers["Location"] == AFTER_LOGOUT


def test_an_unregistered_post_logout_uri_is_never_redirected_to(rp, browser, id_token):
    response = end_session(browser, id_token_hint=id_token, post_logout_redirect_uri="https://evil.example/")
    assert response.headers["Location"] == "/login"
    assert not still_signed_in(browser)


def test_without_a_hint_the_person_confirms_before_being_signed_out(rp, browser, id_token):
    page = end_session(browser, client_id=rp.client_id, post_logout_redirect_uri=AFTER_LOGOUT)
    assert page.status_code == 200 and "Sign out?" in page.get_data(as_text=True) and still_signed_in(browser)
    form = {"csrf_token": csrf_from(page.data), "confirm": "yes", "client_id": rp.client_id, "post_logout_redirect_uri": AFTER_LOGOUT}
    response = browser.post("/oidc/end_session", data=form)
    assert response.headers["Location"] == AFTER_LOGOUT and not still_signed_in(browser)


def test_a_confirmation_without_this_browsers_csrf_token_only_asks_again(rp, browser, id_token):
    response = browser.post("/oidc/end_session", data={"confirm": "yes", "csrf_token": "forged"})
    assert response.status_code == 200 and still_signed_in(browser)


def test_a_hint_for_someone_else_asks_for_confirmation(app, rp, browser, id_token):
    make_user("bob")
    other = app.test_client()  # Bob's browser
    other_token = csrf_from(other.get("/login").data)
    other.post("/login", data={"csrf_token": other_token, "username": "bob", "password": PASSWORD})
    response = end_session(other, id_token_hint=id_token)
    assert response.status_code == 200 and still_signed_in(other)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict, claims: dict, hmac_secret: bytes | None = None) -> str:
    """A JWT built by hand, as an attacker would: unsigned, or HMAC-signed with `hmac_secret`."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if hmac_secret is None:
        return f"{signing_input}."
    return f"{signing_input}.{_b64(hmac.new(hmac_secret, signing_input.encode(), hashlib.sha256).digest())}"


@pytest.mark.parametrize(
    "attack",
    ["alg-none", "hmac-with-public-key", "another-key", "embedded-jwk", "other-issuer", "garbage"],
)
def test_a_forged_or_foreign_hint_is_refused_and_ends_nothing(app, rp, browser, id_token, attack):
    claims = jwt.decode(id_token, rp.jwks()).claims
    stranger = RSAKey.generate_key(2048)
    published = [key for key in rp.jwks().keys if key.alg == "RS256"][0]
    tokens = {
        "alg-none": lambda: forged({"alg": "none"}, claims),
        "hmac-with-public-key": lambda: forged({"alg": "HS256", "kid": published.kid}, claims, published.as_pem(private=False)),
        "another-key": lambda: jwt.encode({"alg": "RS256", "kid": published.kid}, claims, stranger),
        "embedded-jwk": lambda: jwt.encode({"alg": "RS256", "jwk": stranger.as_dict(private=False)}, claims, stranger),
        "other-issuer": lambda: forged({"alg": "none"}, {**claims, "iss": "https://evil.example"}),
        "garbage": lambda: "not.a.jwt",
    }
    response = end_session(browser, id_token_hint=tokens[attack](), post_logout_redirect_uri=AFTER_LOGOUT)
    assert response.status_code == 400 and "Location" not in response.headers
    assert still_signed_in(browser)


def test_a_client_id_that_is_not_the_hints_audience_is_refused(app, rp, browser, id_token):
    other, _ = make_oidc_client("Wiki")
    response = end_session(browser, id_token_hint=id_token, client_id=other.client_id)
    assert response.status_code == 400 and still_signed_in(browser)


def test_front_channel_apps_are_signed_out_through_hidden_iframes(app, browser):
    make_user("alice")
    client, secret = make_oidc_client("Wiki", frontchannel_logout_uri="https://wiki.example/fc-logout", backchannel_logout_uri=None)
    rp = FakeRP(app, client.client_id, secret, redirect_uri="https://wiki.example/cb")
    result = rp.sign_in(browser, rp.authorization_url(), username="alice", password=PASSWORD)
    sid = jwt.decode(rp.exchange(result["code"])["id_token"], rp.jwks()).claims["sid"]
    token = csrf_from(browser.get("/logout").data)
    page = browser.post("/logout", data={"csrf_token": token})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    src = html.split('<iframe src="')[1].split('"')[0].replace("&amp;", "&")
    assert src.startswith("https://wiki.example/fc-logout?")
    assert parse_qs(urlsplit(src).query) == {"iss": ["http://localhost"], "sid": [sid]}
    assert "frame-src https://wiki.example" in page.headers["Content-Security-Policy"]
    assert 'http-equiv="refresh" content="3;url=/login"' in html
    db.session.expire_all()
    assert db.session.query(AppSession).one().end_reason == "directory_signout"


def test_signing_out_without_front_channel_apps_goes_straight_to_the_destination(rp, browser, id_token):
    token = csrf_from(browser.get("/logout").data)
    assert browser.post("/logout", data={"csrf_token": token}).status_code == 303
