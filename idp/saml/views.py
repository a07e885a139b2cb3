"""SAML endpoints: the IdP's metadata and the SingleSignOnService (HTTP-Redirect and HTTP-POST)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, g, redirect, render_template, request, url_for
from itsdangerous import BadData, URLSafeTimedSerializer
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT

from directory import logout, policy
from directory.db import db
from idp import context, navigation, web_session
from idp.navigation import Destination
from idp.saml import server, sso

bp = Blueprint("saml", __name__)

METADATA_TYPE = "application/samlmetadata+xml"
_PENDING = "idp_pending"  # a signed marker: this SSO request was seen here before (see _pending)
_PENDING_FOR = 600  # seconds a sign-in may take


@bp.get("/saml/metadata")
@web_session.sessionless
def metadata():
    return Response(server.metadata_bytes(current_app), mimetype=METADATA_TYPE,
                    headers={"Cache-Control": "public, max-age=3600"})


@bp.get("/saml/sso/redirect")
def sso_redirect():
    return _sso(BINDING_HTTP_REDIRECT)


@bp.route("/saml/sso/post", methods=["GET", "POST"])
@web_session.csrf_exempt  # service providers post here cross-site; the request itself is checked
def sso_post():
    """POST is the binding; GET only comes back here from ourselves, with a signed marker (after
    sign-in, or after the bounce that lets the SameSite=Lax session cookie through)."""
    if request.method == "GET" and _pending() is None:
        return _refuse("the request was not posted by the service provider")
    return _sso(BINDING_HTTP_POST)


def _sso(binding: str):
    values = request.values
    marker = _pending()
    now = context.now()
    first_seen = marker[0] if marker else now
    try:
        authn = sso.read(values.get("SAMLRequest"), binding, relay_state=values.get("RelayState"),
                         sigalg=values.get("SigAlg"), signature=values.get("Signature"), first_seen=first_seen)
    except sso.Refused as refused:
        return _refuse(str(refused))
    if request.method == "POST" and g.directory_session is None:
        # A cross-site POST carries no SameSite=Lax cookie: look again over GET before deciding.
        return redirect(_continuation(requested_at=None, first_seen=now), 303)
    reason = policy.needs_login(
        g.directory_session.authenticated_at if g.directory_session else None, now,
        fresh=authn.force_authn, requested_at=marker[1] if marker else None,
    )
    if reason is not None:
        if authn.is_passive:
            return _answer(authn, sso.no_passive)
        return redirect(url_for("portal.login", next=_continuation(requested_at=now, first_seen=first_seen),
                                fresh="1" if g.user else None))
    return _answer(authn, None)


def _answer(authn: sso.Request, failure):
    now = context.now()
    try:
        sso.mark_answered(authn, now)
    except sso.Refused as refused:
        db.session.rollback()
        return _refuse(str(refused))
    if failure is not None:
        saml_response = failure(authn)
    else:
        user = g.user
        app_session = logout.join(g.directory_session, authn.sp.app, subject=sso.subject_for(authn.sp, user), now=now)
        if not app_session.subject:
            app_session.subject = app_session.sid  # transient NameID: the application session itself
        app_session.last_used_at = now
        saml_response = sso.success(authn, user, g.directory_session, app_session)
    db.session.commit()
    fields = {"SAMLResponse": saml_response, "RelayState": request.values.get("RelayState")}
    return navigation.go(Destination(authn.acs_url, fields), title="Signing you in")


def _refuse(reason: str):
    return render_template("saml/error.html", reason=reason), 400


def _signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="saml-sso-pending")


def _digest(saml_request: str | None) -> str:
    return hashlib.sha256((saml_request or "").encode()).hexdigest()[:32]


def _continuation(*, requested_at: datetime | None, first_seen: datetime) -> str:
    """This SSO request as a GET URL here (POST binding: the GET variant), with a signed marker
    naming the request, when it was first seen, and when it sent the person to sign in."""
    params = [(k, v) for k, v in request.values.items(multi=True) if k in ("SAMLRequest", "RelayState", "SigAlg", "Signature")]
    marker = {"h": _digest(request.values.get("SAMLRequest")), "f": first_seen.timestamp(),
              "r": requested_at.timestamp() if requested_at else None}
    params.append((_PENDING, _signer().dumps(marker)))
    return f"{request.path}?{urlencode(params)}"


def _pending() -> tuple[datetime, datetime | None] | None:
    """(first seen, sent to sign in at) from a valid marker for this very request, else None."""
    token = request.args.get(_PENDING)
    if not token:
        return None
    try:
        marker = _signer().loads(token, max_age=_PENDING_FOR)
    except BadData:
        return None
    if not isinstance(marker, dict) or marker.get("h") != _digest(request.values.get("SAMLRequest")):
        return None
    first_seen = datetime.fromtimestamp(marker["f"], UTC)
    requested_at = datetime.fromtimestamp(marker["r"], UTC) if marker.get("r") is not None else None
    return first_seen, requested_at
