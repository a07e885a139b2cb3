"""FakeRP checked against a tiny stand-in provider, so the peer is trusted before it judges the real one."""

from __future__ import annotations

import base64
import contextvars
import hashlib
import secrets
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
import responses
from flask import Flask, jsonify, redirect, request
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.conftest import BrowserClient
from tests.peers import BACKCHANNEL_LOGOUT_EVENT, FakeRP, epoch, logout_token_of

ISSUER = "http://localhost"
CLIENT_ID, CLIENT_SECRET, PUBLIC_ID = "rp-1", "rp-1-secret", "public-rp"
PROBE: contextvars.ContextVar[str] = contextvars.ContextVar("probe")
REDIRECT_URI = "https://rp.example/cb"
NOW = epoch(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))  # the stand-in's frozen time
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
OTHER_KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})  # same kid, different key: a forgery


def sign(claims: dict, key=KEY, **header) -> str:
    return jwt.encode({"alg": "RS256", "kid": key.kid, **header}, claims, key)


def id_token_claims(**changes) -> dict:
    claims = {"iss": ISSUER, "aud": CLIENT_ID, "sub": "alice", "iat": NOW, "exp": NOW + 300, "nonce": "n-1"}
    return {k: v for k, v in {**claims, **changes}.items() if v is not None}


def logout_claims(**changes) -> dict:
    claims = {
        "iss": ISSUER, "aud": CLIENT_ID, "iat": NOW, "exp": NOW + 120, "jti": "j-1", "sub": "alice",
        "sid": "s-1", "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }
    return {k: v for k, v in {**claims, **changes}.items() if v is not None}


def standin_provider() -> Flask:
    """Just enough of the contract: discovery, JWKS, authorize (behind a cookie sign-in), token with PKCE."""
    app = Flask("standin")
    app.config["TESTING"] = True
    app.test_client_class = BrowserClient
    app.seen_hosts, app.codes, app.auth_log, app.revoked = [], {}, [], set()

    @app.before_request
    def note_host():
        app.seen_hosts.append(request.host)

    @app.get("/.well-known/openid-configuration")
    def discovery():
        return jsonify(
            issuer=ISSUER, authorization_endpoint=f"{ISSUER}/oidc/authorize", token_endpoint=f"{ISSUER}/oidc/token",
            userinfo_endpoint=f"{ISSUER}/oidc/userinfo", jwks_uri=f"{ISSUER}/oidc/jwks",
            introspection_endpoint=f"{ISSUER}/oidc/introspect", revocation_endpoint=f"{ISSUER}/oidc/revoke",
            end_session_endpoint=f"{ISSUER}/oidc/end_session",
        )

    @app.get("/oidc/jwks")
    def jwks():
        return jsonify(keys=[KEY.as_dict(private=False)])

    @app.get("/oidc/authorize")
    def authorize():
        if request.cookies.get("sid") != "signed-in":
            return redirect("/login?" + urlencode({"next": request.full_path}))
        code = secrets.token_urlsafe(8)
        app.codes[code] = dict(request.args)
        return redirect(f"{request.args['redirect_uri']}?" + urlencode({"code": code, "state": request.args["state"]}))

    @app.get("/oidc/bounce")
    def bounce():  # a provider bug: a redirect somewhere the RP never registered
        return redirect("https://evil.example/steal?code=stolen")

    @app.get("/login")
    def login_page():
        csrf = secrets.token_urlsafe(8)
        response = app.make_response(
            f'<form method="post" action="/login"><input type="hidden" name="csrf_token" value="{csrf}">'
            f'<input type="hidden" name="next" value="{request.args.get("next", "").replace("&", "&amp;")}">'
            '<input name="username"><input name="password" type="password"></form>'
        )
        response.set_cookie("csrf", csrf)
        return response

    @app.post("/login")
    def login_submit():
        if request.form.get("csrf_token") != request.cookies.get("csrf") or request.form.get("password") != "pw":
            return "no", 401
        response = redirect(request.form["next"], 303)
        response.set_cookie("sid", "signed-in")
        return response

    def caller() -> str | None:
        """How the caller authenticated, or None when it did not (logged on app.auth_log)."""
        basic, form = request.authorization, request.form
        if basic is not None:
            method = "client_secret_basic" if (basic.username, basic.password) == (CLIENT_ID, CLIENT_SECRET) else None
        elif "client_secret" in form:
            method = "client_secret_post" if (form.get("client_id"), form["client_secret"]) == (CLIENT_ID, CLIENT_SECRET) else None
        else:
            method = "none" if form.get("client_id") == PUBLIC_ID else None
        app.auth_log.append(method)
        return method

    @app.post("/oidc/token")
    def token():
        if caller() is None:
            return jsonify(error="invalid_client"), 401
        grant_type = request.form.get("grant_type")
        if grant_type == "refresh_token" and request.form.get("refresh_token") == "rt-1":
            return jsonify(access_token="at-2", token_type="Bearer", expires_in=300)  # no rotation
        if grant_type == "client_credentials":
            return jsonify(access_token="at-cc", token_type="Bearer", expires_in=300, scope=request.form.get("scope"))
        grant = app.codes.pop(request.form.get("code", ""), None)
        verifier = request.form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if grant_type != "authorization_code" or grant is None or grant["code_challenge_method"] != "S256" \
                or grant["code_challenge"] != challenge or request.form.get("redirect_uri") != grant["redirect_uri"]:
            return jsonify(error="invalid_grant", error_description="code, PKCE or redirect_uri mismatch"), 400
        id_token = sign(id_token_claims(nonce=grant.get("nonce"), aud=grant["client_id"]))
        return jsonify(access_token="at-1", token_type="Bearer", expires_in=300, refresh_token="rt-1", id_token=id_token)

    @app.post("/oidc/introspect")
    def introspect():
        if caller() != "client_secret_basic":
            return jsonify(error="invalid_client"), 401
        return jsonify(active=request.form.get("token") == "at-1" and "at-1" not in app.revoked)

    @app.post("/oidc/revoke")
    def revoke():
        if caller() != "client_secret_basic":
            return jsonify(error="invalid_client"), 401
        app.revoked.add(request.form.get("token"))
        return "", 200

    @app.get("/probe")
    def probe():  # what the app sees of the test's context variables
        return jsonify(probe=PROBE.get(None))

    @app.get("/oidc/userinfo")
    def userinfo():
        if request.headers.get("Authorization") != "Bearer at-1":
            return jsonify(error="invalid_token"), 401
        return jsonify(sub="alice")

    return app


@pytest.fixture
def provider():
    return standin_provider()


@pytest.fixture
def rp(provider):
    return FakeRP(provider, CLIENT_ID, CLIENT_SECRET)


def test_discovery_is_read_over_the_in_process_transport(rp):
    assert rp.metadata["issuer"] == ISSUER
    assert rp.endpoint("token") == f"{ISSUER}/oidc/token"
    assert rp.userinfo("at-1").json() == {"sub": "alice"}
    assert rp.userinfo("wrong").status_code == 401


def test_nothing_leaves_the_process(rp):
    with pytest.raises(requests.ConnectionError, match="no network"):
        rp.session.get("https://rp.example/anything", withhold_token=True)


def test_the_authorize_url_carries_pkce_state_nonce_and_extra_params(rp):
    query = parse_qs(urlsplit(rp.authorization_url(prompt="login", max_age=60)).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["state"] == [rp.state] and query["nonce"] == [rp.nonce]
    assert query["prompt"] == ["login"] and query["max_age"] == ["60"]
    assert query["redirect_uri"] == [REDIRECT_URI] and query["scope"] == ["openid profile email"]
    assert "nonce" not in parse_qs(urlsplit(rp.authorization_url(nonce=None)).query)


def test_sign_in_shows_the_login_form_once_per_browser_and_the_code_redeems(rp, provider):
    browser = provider.test_client()
    first = rp.sign_in(browser, username="alice", password="pw")
    assert first["_login_form_shown"] is True and first["state"] == rp.state
    tokens = rp.exchange(first["code"])
    assert tokens["access_token"] == "at-1" and tokens["refresh_token"] == "rt-1"
    assert rp.verify_id_token(tokens["id_token"], nonce=rp.nonce, now=NOW)["sub"] == "alice"

    again = rp.sign_in(browser)
    assert again["_login_form_shown"] is False and again["state"] == rp.state and "code" in again
    assert rp.exchange(again["code"])["token_type"] == "Bearer"


def test_sign_in_without_credentials_stops_on_the_form(rp, provider):
    result = rp.sign_in(provider.test_client())
    assert result["_status"] == 200 and result["_login_form_shown"] is True and "csrf_token" in result["_body"]


def test_the_code_is_bound_to_the_pkce_verifier(rp, provider):
    code = rp.sign_in(provider.test_client(), username="alice", password="pw")["code"]
    rp.code_verifier = "a-verifier-that-is-long-enough-but-not-the-one-whose-challenge-was-sent"
    assert rp.exchange(code)["error"] == "invalid_grant"


def test_sign_in_never_follows_a_redirect_to_a_foreign_host(rp, provider):
    result = rp.sign_in(provider.test_client(), url=f"{ISSUER}/oidc/bounce", username="alice", password="pw")
    assert result["_status"] == 302 and result["_location"].startswith("https://evil.example/")
    assert "code" not in result
    assert "evil.example" not in provider.seen_hosts


def test_a_good_id_token_passes_with_an_explicit_or_datetime_now(rp):
    token = sign(id_token_claims())
    assert rp.verify_id_token(token, nonce="n-1", now=NOW)["sub"] == "alice"
    assert rp.verify_id_token(token, now=datetime(2026, 1, 5, 9, 1, tzinfo=UTC))["aud"] == CLIENT_ID
    at_hash, access_token = "xJDHqdoqtBeaYW3YMSWTWA", "jHkWEdUXMU1BwAsC4vtUsZwnNDbfJ"  # b64url(SHA-256[:16]), precomputed
    assert rp.verify_id_token(sign(id_token_claims(at_hash=at_hash)), now=NOW, access_token=access_token)
    with pytest.raises(AssertionError, match="at_hash"):
        rp.verify_id_token(sign(id_token_claims(at_hash=at_hash)), now=NOW, access_token="another-token")


@pytest.mark.parametrize(
    "token, nonce, now, reason",
    [
        (sign(id_token_claims(aud="someone-else")), None, NOW, "Invalid claim: 'aud'"),
        (sign(id_token_claims(aud=[CLIENT_ID, "someone-else"])), None, NOW, "azp None != 'rp-1'"),
        (sign(id_token_claims(iss="https://evil.example")), None, NOW, "Invalid claim: 'iss'"),
        (sign(id_token_claims(), key=OTHER_KEY), None, NOW, "BadSignatureError"),
        (sign(id_token_claims(), key=RSAKey.generate_key(2048, parameters={"kid": "k9"})), None, NOW, "No key for kid"),
        (sign(id_token_claims()), "another-nonce", NOW, "nonce 'n-1' != expected"),
        (sign(id_token_claims(sub=None)), None, NOW, "Missing claim: 'sub'"),
        (sign(id_token_claims()), None, NOW + 300, "expired"),
        (sign(id_token_claims()), None, NOW - 1, "issued in the future"),
    ],
)
def test_a_bad_id_token_is_rejected(rp, token, nonce, now, reason):
    with pytest.raises(AssertionError, match=reason):
        rp.verify_id_token(token, nonce=nonce, now=now)


def test_a_correct_logout_token_passes(rp):
    token = sign(logout_claims(), typ="logout+jwt")
    assert rp.verify_logout_token(token, now=NOW)["sid"] == "s-1"
    assert rp.verify_logout_token(sign(logout_claims(sub=None), typ="logout+jwt"), now=NOW)["sid"] == "s-1"


@pytest.mark.parametrize(
    "claims, typ, reason",
    [
        (logout_claims(nonce="n-1"), "logout+jwt", "must not contain a nonce"),
        (logout_claims(), "JWT", "typ is 'JWT'"),
        (logout_claims(exp=NOW + 121), "logout+jwt", "lives 121 s"),
        (logout_claims(events=None), "logout+jwt", "events wrong"),
        (logout_claims(events={BACKCHANNEL_LOGOUT_EVENT: {"x": 1}}), "logout+jwt", "events wrong"),
        (logout_claims(sid=None, sub=None), "logout+jwt", "neither sid nor sub"),
        (logout_claims(jti=None), "logout+jwt", "Missing claim: 'jti'"),
        (logout_claims(aud="someone-else"), "logout+jwt", "Invalid claim: 'aud'"),
    ],
)
def test_a_bad_logout_token_is_rejected(rp, claims, typ, reason):
    with pytest.raises(AssertionError, match=reason):
        rp.verify_logout_token(sign(claims, typ=typ), now=NOW)


@responses.activate
def test_a_captured_back_channel_post_yields_its_logout_token(rp):
    responses.post("https://rp.example/backchannel", status=200)
    token = sign(logout_claims(), typ="logout+jwt")
    requests.post("https://rp.example/backchannel", data={"logout_token": token}, timeout=5)
    assert logout_token_of(responses.calls[0].request) == token
    assert rp.verify_logout_token(logout_token_of(responses.calls[0].request), now=NOW)["jti"] == "j-1"


def test_the_jwks_must_not_publish_private_key_material(provider):
    provider.view_functions["jwks"] = lambda: jsonify(keys=[KEY.as_dict(private=True)])
    rp = FakeRP(provider, CLIENT_ID, CLIENT_SECRET)
    with pytest.raises(AssertionError, match="private key material"):
        rp.verify_id_token(sign(id_token_claims()), now=NOW)


def test_each_call_runs_in_a_fresh_context_as_on_a_server(rp):
    PROBE.set("the test's value")
    assert rp.session.get(f"{ISSUER}/probe", withhold_token=True).json() == {"probe": None}


@pytest.mark.parametrize(
    "client_id, secret, auth_method",
    [(CLIENT_ID, CLIENT_SECRET, "client_secret_basic"), (CLIENT_ID, CLIENT_SECRET, "client_secret_post"), (PUBLIC_ID, None, "none")],
)
def test_each_client_authentication_method_reaches_the_token_endpoint(provider, client_id, secret, auth_method):
    rp = FakeRP(provider, client_id, secret, auth_method=auth_method)
    tokens = rp.exchange(rp.sign_in(provider.test_client(), username="alice", password="pw")["code"])
    assert provider.auth_log[-1] == auth_method
    assert rp.verify_id_token(tokens["id_token"], nonce=rp.nonce, now=NOW)["aud"] == client_id


def test_refresh_client_credentials_introspection_and_revocation(rp, provider):
    refreshed = rp.refresh("rt-1")
    assert refreshed["access_token"] == "at-2" and "refresh_token" not in refreshed  # not papered over
    assert rp.refresh("rt-unknown")["error"] == "invalid_grant"
    assert rp.client_credentials("api")["scope"] == "api"
    assert rp.introspect("at-1") == {"active": True}
    assert rp.revoke("at-1").status_code == 200
    assert rp.introspect("at-1") == {"active": False}
    assert provider.auth_log[-3:] == ["client_secret_basic"] * 3
    assert FakeRP(provider, CLIENT_ID, "wrong").introspect("at-1") == {"error": "invalid_client"}
