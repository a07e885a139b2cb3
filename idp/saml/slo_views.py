"""The SingleLogoutService: LogoutRequests from SPs (HTTP-Redirect, HTTP-POST, SOAP) and the
LogoutResponses of SPs the browser was sent to during a sign-out (idp/signout.py)."""

from __future__ import annotations

from flask import Blueprint, Response, g, render_template, request
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, BINDING_SOAP
from sqlalchemy import select

from directory import sessions
from directory.db import db
from directory.models import DirectorySession
from idp import context, navigation, signout, web_session
from idp.saml import logout as saml_logout
from idp.saml import messages
from idp.saml.messages import Refused
from idp.saml.models import LogoutChain, ServiceProvider

bp = Blueprint("saml_slo", __name__)

MAX_SOAP_BODY = 256 * 1024


@bp.get("/saml/slo/redirect")
def slo_redirect():
    return _front(BINDING_HTTP_REDIRECT)


@bp.post("/saml/slo/post")
@web_session.csrf_exempt  # service providers post here cross-site; the message itself is checked
def slo_post():
    return _front(BINDING_HTTP_POST)


def _front(binding: str):
    values = request.values
    signature = {"sigalg": values.get("SigAlg"), "signature": values.get("Signature")}
    try:
        if "SAMLResponse" in values:
            return _answered(saml_logout.read_response(values["SAMLResponse"], binding, **signature))
        return _asked(saml_logout.read_request(values.get("SAMLRequest"), binding, relay_state=values.get("RelayState"),
                                               now=context.now(), **signature), values.get("RelayState"))
    except Refused as refused:
        db.session.rollback()
        return render_template("saml/logout_error.html", reason=str(refused)), 400


def _asked(ask: saml_logout.LogoutAsk, relay_state: str | None):
    """An SP asks to sign the person out: end the directory session the named application
    session belongs to, tell every other app, then answer the SP."""
    messages.remember(ask.id, context.now())
    ended = _directory_session(ask)
    if ended is None:
        db.session.commit()
        unknown = saml_logout.app_session_named(ask) is None
        return navigation.go(saml_logout.answer(ask.sp, ask.id, relay_state, saml_logout.status(unknown=unknown)))
    sessions.sign_out(ended, now=context.now(), actor=ended.user, browser=True, skip=ask.sp.app)
    response = signout.leave(ended, asked=ask, relay_state=relay_state)
    if g.directory_session is not None and g.directory_session.id == ended.id:
        response = web_session.unbind(response)
    return response


def _directory_session(ask: saml_logout.LogoutAsk) -> DirectorySession | None:
    app_session = saml_logout.app_session_named(ask)
    if app_session is None or app_session.directory_session_id is None:
        return None
    return db.session.get(DirectorySession, app_session.directory_session_id)


def _answered(response):
    """An SP the browser was sent to answers: note a failure, then on to the next step."""
    chain = db.session.scalar(select(LogoutChain).where(LogoutChain.pending_request_id == response.in_response_to))
    if chain is None or not response.in_response_to:
        raise Refused("this logout answer does not belong to a sign-out in progress here")
    sp = db.session.get(ServiceProvider, chain.pending_sp_id) if chain.pending_sp_id else None
    if sp is None or saml_logout.fault(response, sp, chain.pending_request_id):
        chain.missed = [*chain.missed, sp.app.name if sp else "a removed service provider"]
    chain.pending_request_id = chain.pending_sp_id = None
    return signout.proceed(chain, db.session.get(DirectorySession, chain.directory_session_id))


@bp.post("/saml/slo/soap")
@web_session.sessionless
@web_session.csrf_exempt
def slo_soap():
    """Back-channel: no browser. The SP gets Success, PartialLogout or UnknownPrincipal."""
    if (request.content_length or 0) > MAX_SOAP_BODY:
        return _soap_fault("the message is too large")
    try:
        ask = saml_logout.read_request(request.get_data(as_text=True), BINDING_SOAP, now=context.now())
        messages.remember(ask.id, context.now())
    except Refused as refused:
        db.session.rollback()
        return _soap_fault(str(refused))
    ended = _directory_session(ask)
    if ended is None:
        db.session.commit()
        status = saml_logout.status(unknown=saml_logout.app_session_named(ask) is None)
    else:
        sessions.sign_out(ended, now=context.now(), actor=ended.user, browser=False, skip=ask.sp.app)
        status = signout.outcome(ended, ask.sp)
    return Response(saml_logout.soap_answer(ask.sp, ask.id, status), mimetype="text/xml")


def _soap_fault(reason: str):
    body = render_template("saml/soap_fault.xml", reason=reason)
    return Response(body, status=400, mimetype="text/xml")
