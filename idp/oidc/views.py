"""OpenID Connect endpoints: a few lines each over server.py, the session glue and the key ring."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import urlencode

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6750.errors import InvalidTokenError
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError
from flask import Blueprint, Response, current_app, g, jsonify, redirect, render_template, request, url_for
from itsdangerous import BadData, URLSafeTimedSerializer

from directory import logout, policy, sessions
from directory.db import db
from directory.policy import EndReason
from idp import context, keys, signout, web_session
from idp.oidc import clients, hints
from idp.oidc.models import SCOPES, Consent, OAuthClient
from idp.oidc.server import authorization_server, bearer_guard, user_info

bp = Blueprint("oidc", __name__)

_RESUMED = "idp_resumed"  # marks an authorize request coming back from the sign-in form
_RESUME_FOR = 600  # seconds a sign-in may take


def _resume_signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="oidc-authorize-resume")


@bp.get("/.well-known/openid-configuration")
@web_session.sessionless
def discovery():
    body = current_app.extensions.get("idp.discovery")
    if body is None:
        body = current_app.extensions["idp.discovery"] = json.dumps(_metadata()).encode()
    return Response(body, mimetype="application/json", headers={"Cache-Control": "public, max-age=3600"})


def _metadata() -> dict:
    issuer = current_app.config["ISSUER"]
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oidc/authorize",
        "token_endpoint": f"{issuer}/oidc/token",
        "userinfo_endpoint": f"{issuer}/oidc/userinfo",
        "jwks_uri": f"{issuer}/oidc/jwks",
        "introspection_endpoint": f"{issuer}/oidc/introspect",
        "revocation_endpoint": f"{issuer}/oidc/revoke",
        "end_session_endpoint": f"{issuer}/oidc/end_session",
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": True,
        "frontchannel_logout_session_supported": True,
        "scopes_supported": list(SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "sid", "amr", "at_hash", "name", "preferred_username", "email"],
        "prompt_values_supported": ["none", "login", "consent"],
    }


@bp.get("/oidc/jwks")
@web_session.sessionless
def jwks():
    return Response(keys.current(current_app).jwks_bytes, mimetype="application/json", headers={"Cache-Control": "public, max-age=300"})


@bp.route("/oidc/authorize", methods=["GET", "POST"])
def authorize():
    """Sign the browser's directory session in to the app, asking for the password only when
    policy.needs_login says so (no session, prompt=login, max_age), and for consent only for
    apps not marked trusted. POST is the consent form's answer."""
    server = authorization_server()
    try:
        grant = server.get_consent_grant(end_user=g.user)
        prompts = request.values.get("prompt", "").split()
        reason = policy.needs_login(
            g.directory_session.authenticated_at if g.directory_session else None,
            context.now(),
            fresh="login" in prompts,
            max_age=_max_age(grant),
            requested_at=_resumed_at(),
        )
        if reason is None and not _hint_names_current_user(grant):
            reason = policy.LoginReason.NO_SESSION  # the app expects someone else: sign in as them
        asks_consent = reason is None and _needs_consent(grant, "consent" in prompts)
        if "none" in prompts and (reason or asks_consent):
            error = LoginRequiredError if reason else ConsentRequiredError
            raise error(redirect_uri=grant.redirect_uri, state=grant.request.payload.state)
    except OAuth2Error as error:
        if error.redirect_uri is None:  # unknown client or redirect URI: never redirect there
            return render_template("oidc/error.html", error=error), 400
        return server.handle_error_response(request, error)
    if reason is not None:
        return redirect(url_for("portal.login", next=_continuation(), fresh="1" if g.user else None, login_hint=request.values.get("login_hint")))
    client = grant.request.client
    if asks_consent:
        decision = request.form.get("decision") if request.method == "POST" else None
        if decision is None:
            return render_template("oidc/consent.html", client=client, scopes=grant.request.payload.scope.split(), fields=_authorize_fields())
        if decision != "allow":
            return server.create_authorization_response(grant=grant, grant_user=None)  # access_denied
        _remember_consent(client, grant.request.payload.scope)
    g.app_session = logout.join(g.directory_session, client.app, subject=g.user.username, now=context.now())
    return server.create_authorization_response(grant=grant, grant_user=g.user)


def _hint_names_current_user(grant) -> bool:
    """An id_token_hint, when sent, must be ours and name the person signed in here."""
    hint = request.values.get("id_token_hint")
    if not hint:
        return True
    try:
        claims = hints.read_id_token(hint)
    except hints.HintError as error:
        raise InvalidRequestError(f"id_token_hint: {error}", redirect_uri=grant.redirect_uri) from None
    return claims.get("sub") == g.user.username


def _needs_consent(grant, prompted: bool) -> bool:
    """Untrusted apps need consent: when prompt=consent asks, when this request is the consent
    form's answer, or when no earlier consent covers the scopes requested."""
    client = grant.request.client
    if client.app.trusted:
        return False
    if prompted or request.method == "POST":
        return True
    granted = db.session.get(Consent, (g.user.id, client.client_id))
    return granted is None or not granted.covers(grant.request.payload.scope)


def _remember_consent(client: OAuthClient, scope: str) -> None:
    granted = db.session.get(Consent, (g.user.id, client.client_id))
    if granted is None:
        granted = Consent(user_id=g.user.id, client_id=client.client_id, scope=scope, granted_at=context.now())
        db.session.add(granted)
    granted.scope, granted.granted_at = " ".join(sorted(set(granted.scope.split()) | set(scope.split()))), context.now()
    db.session.commit()


def _authorize_fields() -> dict:
    """The authorization request's parameters, carried through the consent form."""
    return {k: v for k, v in request.values.items() if k not in ("csrf_token", "decision")}


def _max_age(grant) -> int | None:
    raw = request.values.get("max_age")
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10):
        raise InvalidRequestError("max_age must be a whole number of seconds", redirect_uri=grant.redirect_uri)
    return int(raw)


def _continuation() -> str:
    """This authorize URL, marked with when it sent the person to sign in (signed)."""
    params = [(k, v) for k, v in request.values.items(multi=True) if k not in (_RESUMED, "csrf_token", "decision")]
    params.append((_RESUMED, _resume_signer().dumps(context.now().timestamp())))
    return f"{request.path}?{urlencode(params)}"


def _resumed_at():
    token = request.values.get(_RESUMED)
    if not token:
        return None
    try:
        stamp = _resume_signer().loads(token, max_age=_RESUME_FOR)
    except BadData:
        return None
    return datetime.fromtimestamp(stamp, UTC)


@bp.post("/oidc/token")
@web_session.sessionless
@web_session.csrf_exempt
def token():
    return authorization_server().create_token_response()


@bp.route("/oidc/userinfo", methods=["GET", "POST"])
@web_session.sessionless
@web_session.csrf_exempt
def userinfo():
    guard = bearer_guard()
    try:
        access = guard.acquire_token(["openid"])
        if access.user is None:  # a client-credentials token: no person to describe
            raise InvalidTokenError(description="this token was issued to a service, not for a person")
    except OAuth2Error as error:
        guard.raise_error_response(error)  # 401 with WWW-Authenticate, as RFC 6750 says
    return jsonify(user_info(access.user, access.scope))


@bp.post("/oidc/introspect")
@web_session.sessionless
@web_session.csrf_exempt
def introspect():
    return authorization_server().create_endpoint_response("introspection")


@bp.post("/oidc/revoke")
@web_session.sessionless
@web_session.csrf_exempt
def revoke():
    return authorization_server().create_endpoint_response("revocation")


@bp.route("/oidc/end_session", methods=["GET", "POST"])
@web_session.csrf_exempt  # relying parties may POST here; the confirmation form is checked below
def end_session():
    """RP-Initiated Logout 1.0. A valid id_token_hint for the signed-in person ends the session
    at once; without one the person confirms first. The browser returns to the app only at a
    post_logout_redirect_uri registered for it, exactly, with its `state`."""
    params = request.values
    try:
        claims = hints.read_id_token(params["id_token_hint"]) if params.get("id_token_hint") else None
        client = _logout_client(params.get("client_id"), claims)
    except hints.HintError as error:
        return render_template("oidc/end_session_error.html", reason=str(error)), 400
    target = _post_logout_target(client, params.get("post_logout_redirect_uri"), params.get("state"))
    ended = g.directory_session
    if ended is None:
        return redirect(target or web_session.signout_destination(), 303)
    confirmed = params.get("confirm") == "yes" and web_session.csrf_matches(params.get("csrf_token", ""))
    if not confirmed and not (claims and claims.get("sub") == g.user.username):
        fields = {k: v for k, v in params.items() if k not in ("confirm", "csrf_token")}
        return render_template("oidc/end_session_confirm.html", fields=fields, client=client)
    sessions.end(ended, EndReason.SIGNED_OUT, now=context.now(), actor=g.user, browser=True)
    return web_session.unbind(signout.leave(ended, return_url=target or web_session.signout_destination()))


def _logout_client(client_id: str | None, claims: dict | None) -> OAuthClient | None:
    """The app asking: by client_id, else by the hint's audience; the two must agree."""
    audiences = claims.get("aud", []) if claims else []
    audiences = [audiences] if isinstance(audiences, str) else audiences
    if client_id and claims and client_id not in audiences:
        raise hints.HintError("client_id is not the audience of the id_token_hint")
    chosen = client_id or (audiences[0] if len(audiences) == 1 else None)
    client = clients.find(chosen) if chosen else None
    if chosen and client is None:
        raise hints.HintError("unknown client_id")
    return client


def _post_logout_target(client: OAuthClient | None, uri: str | None, state: str | None) -> str | None:
    if client is None or not uri or uri not in client.post_logout_redirect_uris:
        return None
    return add_params_to_uri(uri, {"state": state}) if state else uri
