"""An independent relying party that drives the provider under test only through HTTP.

Why a separate peer: the provider is written with authlib's *server* side; checking it with its own
code would let shared mistakes cancel out. FakeRP therefore uses authlib's *client* library
(`OAuth2Session`) for the OAuth legs and `joserfc` for every token check, and it reaches the app
only over HTTP -- in-process, with no socket and no network:

- back-channel calls (token, userinfo, introspection, revocation, JWKS, discovery) go through
  `requests`, whose transport (`WSGITransport`) hands each request to the Flask app;
- front-channel steps go through a browser: a Flask test client (`tests.conftest.BrowserClient`)
  that keeps cookies, driven by `FakeRP.sign_in`.

Time is explicit: the provider runs on a FrozenClock, so every verification takes `now=` (epoch
seconds, or an aware datetime such as `clock.now()`); only when it is omitted is the wall clock used.
"""

from __future__ import annotations

import base64
import hashlib
import io
import secrets
import time
from datetime import datetime
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

from tests.conftest import BrowserClient

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
ALGORITHMS = ["RS256", "ES256"]
_REDIRECTS = {301, 302, 303, 307, 308}
_PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


class WSGITransport(BaseAdapter):
    """A `requests` adapter that answers from a Flask app instead of the network.

    Each call runs through `BrowserClient`, i.e. in a fresh `contextvars.Context()`, so it gets its
    own app context, `g` and database session -- never the test's -- just as a real server would.
    Cookies are off: server-to-server calls carry no browser state."""

    def __init__(self, app) -> None:
        super().__init__()
        self.client = BrowserClient(app, app.response_class, use_cookies=False)

    def send(self, request: requests.PreparedRequest, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        body = request.body.encode() if isinstance(request.body, str) else request.body
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("content-length", "host")}
        answer = self.client.open(request.url, method=request.method, headers=headers, data=body or b"")
        response = requests.Response()
        response.status_code = answer.status_code
        response.reason = answer.status.partition(" ")[2]
        response.headers = CaseInsensitiveDict(answer.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response._content = answer.get_data()
        response._content_consumed = True
        response.raw = io.BytesIO(response._content)
        response.url = request.url
        response.request = request
        response.connection = self
        return response

    def close(self) -> None:
        pass


class _NoNetwork(BaseAdapter):
    """Mounted for every other URL, so a stray call fails loudly instead of leaving the machine."""

    def send(self, request, **kwargs):
        raise requests.ConnectionError(f"FakeRP has no network: refused {request.method} {request.url}")

    def close(self) -> None:
        pass


class _Form(HTMLParser):
    """The sign-in <form> of a page (the one with a password field; a signed-in page also has a
    sign-out form): its action and its hidden fields (values already unescaped)."""

    def __init__(self) -> None:
        super().__init__()
        self.action, self.hidden = None, {}
        self._current: tuple[str, dict, bool] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self._current = (attrs.get("action") or "", {}, False)
        elif tag == "input" and self._current is not None:
            action, hidden, has_password = self._current
            kind = (attrs.get("type") or "").lower()
            if kind == "hidden" and attrs.get("name"):
                hidden[attrs["name"]] = attrs.get("value") or ""
            self._current = (action, hidden, has_password or kind == "password")

    def handle_endtag(self, tag):
        if tag == "form" and self._current is not None:
            action, hidden, has_password = self._current
            if has_password and self.action is None:
                self.action, self.hidden = action, hidden
            self._current = None


def epoch(now: int | float | datetime | None) -> int:
    """`now` as integer epoch seconds: None is the wall clock, a datetime must be timezone-aware."""
    if now is None:
        return int(time.time())
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("pass an aware datetime (FrozenClock.now()), not a naive one")
        return int(now.timestamp())
    return int(now)


def logout_token_of(request) -> str:
    """The `logout_token` of a back-channel logout POST captured by `responses` (call.request)."""
    assert request.method == "POST", f"back-channel logout must be POST, got {request.method}"
    content_type = request.headers.get("Content-Type", "")
    assert content_type.startswith("application/x-www-form-urlencoded"), f"logout must be form-encoded, got {content_type!r}"
    body = request.body.decode() if isinstance(request.body, bytes) else request.body or ""
    fields = dict(parse_qsl(body))
    assert "logout_token" in fields, f"no logout_token in {body!r}"
    return fields["logout_token"]


class FakeRP:
    """One registered client of the provider, as a third-party application would behave.

    A client without a secret is public: it authenticates with `none` (client_id in the body)
    whatever `auth_method` says. Introspection and revocation always use client_secret_basic when
    there is a secret, as the provider's contract asks."""

    def __init__(
        self,
        app,
        client_id: str,
        client_secret: str | None = None,
        redirect_uri: str = "https://rp.example/cb",
        scope: str = "openid profile email",
        auth_method: str = "client_secret_basic",
        *,
        issuer: str = "http://localhost",
    ) -> None:
        self.app, self.client_id, self.redirect_uri, self.issuer = app, client_id, redirect_uri, issuer
        self.public = client_secret is None
        self.session = OAuth2Session(
            client_id,
            client_secret,
            scope=scope,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="none" if self.public else auth_method,
            revocation_endpoint_auth_method="none" if self.public else "client_secret_basic",
        )
        self.session.trust_env = False  # no proxies or ~/.netrc credentials slipping in
        self.session.mount("http://", _NoNetwork())
        self.session.mount("https://", _NoNetwork())
        self.session.mount(issuer.rstrip("/") + "/", WSGITransport(app))
        self.state = self.nonce = self.code_verifier = None
        self.metadata = self._get_json(f"{issuer.rstrip('/')}/.well-known/openid-configuration")
        assert self.metadata.get("issuer") == issuer, f"discovery issuer {self.metadata.get('issuer')!r} != {issuer!r}"

    # -- plumbing -------------------------------------------------------------------------------

    def endpoint(self, name: str) -> str:
        """A discovery URL, e.g. endpoint("token") -> metadata["token_endpoint"]."""
        key = name if name.endswith(("_endpoint", "_uri")) else f"{name}_endpoint"
        assert key in self.metadata, f"discovery has no {key}"
        return self.metadata[key]

    def _get_json(self, url: str) -> dict:
        response = self.session.get(url, withhold_token=True)
        assert response.status_code == 200, f"GET {url} -> {response.status_code}: {response.text[:300]}"
        return response.json()

    def jwks(self) -> KeySet:
        """The provider's current key set, fetched fresh (keys rotate); it must hold no private parts."""
        document = self._get_json(self.metadata["jwks_uri"])
        for jwk in document.get("keys", []):
            leaked = _PRIVATE_JWK_MEMBERS & set(jwk)
            assert not leaked, f"JWKS publishes private key material {sorted(leaked)} (kid {jwk.get('kid')})"
        return KeySet.import_key_set(document)

    def _decode(self, token: str, what: str) -> jwt.Token:
        try:
            return jwt.decode(token, self.jwks(), algorithms=ALGORITHMS)
        except (JoseError, ValueError) as error:
            raise AssertionError(f"{what} rejected: {type(error).__name__}: {error}") from error

    def _check_claims(self, claims: dict, what: str, now, **options) -> None:
        registry = jwt.JWTClaimsRegistry(
            now=epoch(now),
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.client_id},
            iat={"essential": True},
            exp={"essential": True},
            **options,
        )
        try:
            registry.validate(claims)
        except JoseError as error:
            raise AssertionError(f"{what} claims rejected: {error} (claims: {claims})") from error

    # -- front channel --------------------------------------------------------------------------

    def authorization_url(self, **params) -> str:
        """A fresh authorize URL: new PKCE S256 verifier, `state` and `nonce` (kept on self).

        Extra params (prompt, max_age, login_hint, id_token_hint, ...) pass through; `state=` or
        `nonce=` override the random ones, and `nonce=None` leaves the nonce out."""
        self.code_verifier = generate_token(64)
        self.state = params.pop("state", secrets.token_urlsafe(16))
        self.nonce = params.pop("nonce", secrets.token_urlsafe(16))
        params = {k: v for k, v in params.items() if v is not None}
        if self.nonce is not None:
            params["nonce"] = self.nonce
        url, _ = self.session.create_authorization_url(
            self.endpoint("authorization"), state=self.state, code_verifier=self.code_verifier, **params
        )
        return url

    def _is_redirect_uri(self, url: str) -> bool:
        here, there = urlsplit(url), urlsplit(self.redirect_uri)
        return (here.scheme, here.netloc, here.path) == (there.scheme, there.netloc, there.path)

    def sign_in(self, browser, url: str | None = None, username: str | None = None, password: str | None = None, **form) -> dict:
        """Walk `browser` (a cookie-keeping BrowserClient) from the authorize URL to the RP.

        Follows redirects only on the provider's own host; signs in once on /login when
        credentials are given (extra `form` fields, e.g. remember="on", go with them). Returns the
        parameters of the final redirect to redirect_uri (code/state or error/...), or, when the
        walk stops anywhere else -- a page, an error, a redirect to a foreign host, which is never
        followed -- {"_status", "_body"} plus "_location" for a redirect. Always adds
        "_login_form_shown". Does not check `state`: that is the test's business."""
        url = url or self.authorization_url()
        provider = urlsplit(self.issuer).netloc
        shown = posted = False
        response = browser.get(url)
        for _ in range(20):
            if response.status_code in _REDIRECTS and response.headers.get("Location"):
                target = urljoin(url, response.headers["Location"])
                if self._is_redirect_uri(target):
                    parts = urlsplit(target)
                    return {**dict(parse_qsl(parts.query)), **dict(parse_qsl(parts.fragment)), "_login_form_shown": shown}
                if urlsplit(target).netloc != provider:
                    return {"_status": response.status_code, "_location": target,
                            "_body": response.get_data(as_text=True), "_login_form_shown": shown}
                url, response = target, browser.get(target)
                continue
            on_login = response.status_code == 200 and urlsplit(url).path == "/login"
            if not on_login or posted or username is None:
                return {"_status": response.status_code, "_body": response.get_data(as_text=True),
                        "_login_form_shown": shown or on_login}
            shown = posted = True
            page = _Form()
            page.feed(response.get_data(as_text=True))
            assert "csrf_token" in page.hidden, "sign-in page has no CSRF field"
            fields = {**page.hidden, "username": username, "password": password or "", **form}
            next_in_query = dict(parse_qsl(urlsplit(url).query)).get("next")
            if next_in_query and "next" not in fields:
                fields["next"] = next_in_query
            url = urljoin(url, page.action or url)
            response = browser.post(url, data=fields)
        raise AssertionError(f"sign_in: more than 20 hops, last at {url}")

    def end_session_url(self, **params) -> str:
        """The RP-initiated logout URL (id_token_hint, post_logout_redirect_uri, state, ...)."""
        params = {k: v for k, v in params.items() if v is not None}
        return f"{self.endpoint('end_session')}?{urlencode(params)}" if params else self.endpoint("end_session")

    # -- back channel ---------------------------------------------------------------------------

    def _token_call(self, **kwargs) -> dict:
        """A token-endpoint call; an OAuth error comes back as its JSON, not as an exception.

        `grant_type` is always explicit: authlib would otherwise remember a guessed one."""
        try:
            return dict(self.session.fetch_token(self.endpoint("token"), **kwargs))
        except OAuthError as error:
            return {"error": error.error, "error_description": error.description}

    def exchange(self, code: str, **extra) -> dict:
        """Redeem `code` with the PKCE verifier of the last authorization_url()."""
        return self._token_call(grant_type="authorization_code", code=code, code_verifier=self.code_verifier, **extra)

    def refresh(self, refresh_token: str, **extra) -> dict:
        """Exactly what the provider answers. Not authlib's refresh_token(): that copies the old
        refresh token into the answer when none is returned, hiding whether rotation happened."""
        return self._token_call(grant_type="refresh_token", refresh_token=refresh_token, **extra)

    def client_credentials(self, scope: str | None = None) -> dict:
        return self._token_call(grant_type="client_credentials", **({"scope": scope} if scope is not None else {}))

    def userinfo(self, access_token: str) -> requests.Response:
        headers = {"Authorization": f"Bearer {access_token}"}
        return self.session.get(self.endpoint("userinfo"), headers=headers, withhold_token=True)

    def introspect(self, token: str, token_type_hint: str | None = None) -> dict:
        """RFC 7662; the JSON answer whatever the status (an error is JSON too)."""
        response = self.session.introspect_token(
            self.endpoint("introspection"), token=token, token_type_hint=token_type_hint,
            auth=self.session.client_auth(self.session.revocation_endpoint_auth_method),
        )
        try:
            return response.json()
        except ValueError:
            raise AssertionError(f"introspection answered {response.status_code} without JSON: {response.text[:300]}") from None

    def revoke(self, token: str, token_type_hint: str | None = None) -> requests.Response:
        """RFC 7009 through authlib's revoke_token; the raw response (200 even for unknown tokens)."""
        return self.session.revoke_token(self.endpoint("revocation"), token=token, token_type_hint=token_type_hint)

    # -- verification ---------------------------------------------------------------------------

    def verify_id_token(self, id_token: str, *, nonce: str | None = None, now=None, access_token: str | None = None) -> dict:
        """OIDC Core 3.1.3.7: signature from the JWKS, iss, aud, exp, iat, sub; azp when several
        audiences; `nonce` when given; `at_hash` (3.1.3.8) when both it and `access_token` are
        there. Returns the claims; AssertionError on any mismatch."""
        claims = self._decode(id_token, "id_token").claims
        self._check_claims(claims, "id_token", now, sub={"essential": True})
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 or "azp" in claims:
            assert claims.get("azp") == self.client_id, f"id_token azp {claims.get('azp')!r} != {self.client_id!r}"
        if nonce is not None:
            assert claims.get("nonce") == nonce, f"id_token nonce {claims.get('nonce')!r} != expected {nonce!r}"
        if access_token is not None and "at_hash" in claims:  # RS256 and ES256 both hash with SHA-256
            half = hashlib.sha256(access_token.encode()).digest()[:16]
            expected = base64.urlsafe_b64encode(half).rstrip(b"=").decode()
            assert claims["at_hash"] == expected, f"id_token at_hash {claims['at_hash']!r} != {expected!r}"
        return claims

    def verify_logout_token(self, token: str, *, now=None) -> dict:
        """OpenID Connect Back-Channel Logout 1.0, sections 2.4 and 2.6. Returns the claims."""
        decoded = self._decode(token, "logout token")
        header, claims = decoded.header, decoded.claims
        assert header.get("typ") == "logout+jwt", f"logout token typ is {header.get('typ')!r}, not 'logout+jwt'"
        self._check_claims(claims, "logout token", now, jti={"essential": True})
        assert claims["exp"] - claims["iat"] <= 120, f"logout token lives {claims['exp'] - claims['iat']} s (> 120 s)"
        events = claims.get("events")
        assert isinstance(events, dict) and events.get(BACKCHANNEL_LOGOUT_EVENT) == {}, f"logout token events wrong: {events!r}"
        assert claims.get("sid") or claims.get("sub"), "logout token has neither sid nor sub"
        assert "nonce" not in claims, "logout token must not contain a nonce"
        return claims
