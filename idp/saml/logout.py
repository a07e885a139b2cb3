"""SAML Single Logout at the IdP: pysaml2 writes, signs and verifies the XML; this module
decides what a message may do.

In: a LogoutRequest from an SP (HTTP-Redirect, HTTP-POST or SOAP) must be signed with the key
in that SP's metadata, fresh, new, and name the NameID and a SessionIndex of one of its own
application sessions. Out: LogoutRequests to the other SPs, over SOAP through the outbox
(`build`) or carried by the browser (`front_step`, see idp/signout.py), and the signed
LogoutResponse for the SP that asked (`answer`, `soap_answer`).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from flask import current_app
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, BINDING_SOAP, md, samlp
from saml2.pack import make_soap_enveloped_saml_thingy
from saml2.sigver import verify_redirect_signature
from sqlalchemy import select

from directory.db import db
from directory.models import AppSession, LogoutDelivery
from idp.delivery import Outgoing
from idp.navigation import Destination
from idp.saml import inbound, messages, server, sso
from idp.saml.messages import Refused
from idp.saml.models import ServiceProvider

SOAP_HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": "http://www.oasis-open.org/committees/security"}
FRONT_BINDINGS = (BINDING_HTTP_REDIRECT, BINDING_HTTP_POST)  # in order of preference


@dataclass(frozen=True)
class LogoutAsk:
    """A checked LogoutRequest from `sp`."""

    sp: ServiceProvider
    id: str
    name_id: str
    session_indexes: tuple[str, ...]


@dataclass(frozen=True)
class Endpoint:
    binding: str
    location: str
    response_location: str


# --- in ------------------------------------------------------------------------------------


def read_request(text: str | None, binding: str, *, relay_state=None, sigalg=None, signature=None,
                 now: datetime) -> LogoutAsk:
    """The checked LogoutRequest, or `Refused` (then nothing may be ended)."""
    if not text:
        raise Refused("the request carries no SAMLRequest")
    inbound.check(text, binding, sigalg=sigalg)
    try:
        parsed = server.server(current_app, want_signed=True).parse_logout_request(
            text, binding, relay_state=relay_state, sigalg=sigalg, signature=signature)
    except Exception as error:  # pysaml2 raises many types for bad or badly signed input
        raise Refused("the logout request is not signed correctly by a registered service provider, "
                      f"or cannot be read ({type(error).__name__})") from None
    if parsed is None or parsed.message is None:
        raise Refused("the logout request cannot be read")
    message = parsed.message
    sp = messages.sender(message)
    request_id = messages.message_id(message)
    messages.issued_at(message, first_seen=now)
    messages.check_unseen(request_id)
    name_id = (message.name_id.text or "").strip() if message.name_id is not None else ""
    indexes = tuple(index.text.strip() for index in message.session_index if index.text and index.text.strip())
    if not name_id or not indexes:
        raise Refused("the logout request must name a NameID and a SessionIndex")
    if binding != BINDING_SOAP and endpoint(sp, FRONT_BINDINGS) is None:
        raise Refused("the service provider has no SingleLogoutService to send the answer to")
    return LogoutAsk(sp=sp, id=request_id, name_id=name_id, session_indexes=indexes)


def app_session_named(ask: LogoutAsk) -> AppSession | None:
    """The SP's application session the request names (live or not), if any."""
    return db.session.scalar(
        select(AppSession)
        .where(AppSession.app_id == ask.sp.app_id, AppSession.sid.in_(ask.session_indexes), AppSession.subject == ask.name_id)
        .limit(1)
    )


def read_response(text: str | None, binding: str, *, sigalg=None, signature=None) -> samlp.LogoutResponse:
    """An SP's LogoutResponse, whatever its status; its signature, when it carries one, must
    verify with the SP's metadata key (for HTTP-Redirect, the one in the query). Whether it
    answers a request of ours is the caller's check (`fault`)."""
    if not text:
        raise Refused("the answer carries no SAMLResponse")
    inbound.check(text, binding, sigalg=sigalg)
    idp = server.server(current_app)
    try:
        # Not pysaml2's parse_logout_request_response: it raises on any status but Success,
        # and a failed logout is an answer too (the sign-out goes on, as PartialLogout).
        xml = idp.unravel(text, binding, "logout_response")
        response = idp.sec.correctly_signed_logout_response(xml, must=False)
    except Exception as error:  # pysaml2 raises many types for bad or badly signed input
        raise Refused(f"the logout answer cannot be read or is not signed correctly ({type(error).__name__})") from None
    if response is None:
        raise Refused("the logout answer cannot be read")
    if response.destination and response.destination not in idp.config.endpoint("single_logout_service", binding, "idp"):
        raise Refused("the logout answer is addressed to another endpoint")
    if binding == BINDING_HTTP_REDIRECT and (sigalg or signature):
        issuer = (response.issuer.text or "").strip() if response.issuer is not None else ""
        query = {"SAMLResponse": text, "SigAlg": sigalg, "Signature": signature}
        certificates = idp.metadata.certs(issuer, "spsso", "signing") if issuer else []
        if not any(verify_redirect_signature(query, idp.sec.sec_backend, cert) for _, cert in certificates):
            raise Refused("the logout answer is not signed correctly")
    return response


def fault(response: samlp.LogoutResponse, sp: ServiceProvider, request_id: str) -> str | None:
    """None when `response` is `sp`'s Success answer to `request_id`, else what is wrong."""
    issuer = (response.issuer.text or "").strip() if response.issuer is not None else ""
    if issuer != sp.entity_id or response.in_response_to != request_id:
        return f"a LogoutResponse that does not answer the request sent to {sp.entity_id}"
    code = response.status.status_code.value if response.status is not None and response.status.status_code else ""
    return None if code == samlp.STATUS_SUCCESS else f"{sp.entity_id} answered {code or 'without a status'}"


# --- out -----------------------------------------------------------------------------------


def endpoint(sp: ServiceProvider, bindings: tuple[str, ...]) -> Endpoint | None:
    """The SP's first SingleLogoutService among `bindings` (in their order)."""
    entity = md.entity_descriptor_from_string(sp.metadata_xml)
    services = entity.spsso_descriptor[0].single_logout_service
    for binding in bindings:
        for service in services:
            if service.binding == binding:
                return Endpoint(binding, service.location, service.response_location or service.location)
    return None


def _sp_of(app_session: AppSession) -> ServiceProvider | None:
    return db.session.scalar(select(ServiceProvider).where(ServiceProvider.app_id == app_session.app_id))


def _logout_request(sp: ServiceProvider, app_session: AppSession, destination: str, *, sign: bool) -> tuple[str, str]:
    """(ID, XML) of a LogoutRequest for one application session; signed in the XML if `sign`."""
    request_id, request = server.server(current_app).create_logout_request(
        destination, sp.entity_id, name_id=sso.name_id(sp, app_session.subject), session_indexes=[app_session.sid],
        sign=sign, sign_alg=server.SIGNING_ALGORITHM, digest_alg=server.DIGEST_ALGORITHM,
    )
    return request_id, str(request)


def build(delivery: LogoutDelivery, *, now: datetime) -> Outgoing | None:
    """The SOAP call for one back-channel notice; None if the SP no longer offers SOAP."""
    sp = _sp_of(delivery.app_session)
    soap = endpoint(sp, (BINDING_SOAP,)) if sp is not None else None
    if soap is None:
        return None
    request_id, xml = _logout_request(sp, delivery.app_session, soap.location, sign=True)
    envelope = make_soap_enveloped_saml_thingy(xml)
    return Outgoing(url=soap.location, data=envelope.encode(), headers=SOAP_HEADERS,
                    check=partial(_soap_fault, sp, request_id))


def _soap_fault(sp: ServiceProvider, request_id: str, answer) -> str | None:
    try:
        response = read_response(answer.text, BINDING_SOAP)
    except Refused as refused:
        return f"{refused} (from {sp.entity_id})"
    return fault(response, sp, request_id)


def front_step(delivery: LogoutDelivery) -> tuple[int, str, Destination] | None:
    """A LogoutRequest the browser carries to the SP: (the SP's id, the request's ID, where the
    browser goes); None when the SP has no front-channel endpoint (any more)."""
    sp = _sp_of(delivery.app_session)
    front = endpoint(sp, FRONT_BINDINGS) if sp is not None else None
    if front is None:
        return None
    if front.binding == BINDING_HTTP_REDIRECT:
        request_id, xml = _logout_request(sp, delivery.app_session, front.location, sign=False)
        return sp.id, request_id, Destination(_signed_redirect(xml, front.location, None, response=False))
    request_id, xml = _logout_request(sp, delivery.app_session, front.location, sign=True)
    return sp.id, request_id, Destination(front.location, {"SAMLRequest": _b64(xml)})


def answer(sp: ServiceProvider, in_response_to: str, relay_state: str | None, status: samlp.Status) -> Destination:
    """The browser's way back to the SP that asked, carrying the signed LogoutResponse."""
    front = endpoint(sp, FRONT_BINDINGS)
    if front.binding == BINDING_HTTP_REDIRECT:
        xml = _logout_response(sp, in_response_to, front.response_location, status, sign=False)
        return Destination(_signed_redirect(xml, front.response_location, relay_state, response=True))
    xml = _logout_response(sp, in_response_to, front.response_location, status, sign=True)
    return Destination(front.response_location, {"SAMLResponse": _b64(xml), "RelayState": relay_state})


def soap_answer(sp: ServiceProvider, in_response_to: str, status: samlp.Status) -> bytes:
    xml = _logout_response(sp, in_response_to, None, status, sign=True)
    return make_soap_enveloped_saml_thingy(xml).encode()


def status(*, missed: bool = False, unknown: bool = False) -> samlp.Status:
    """Success; Success/PartialLogout when some app could not be told; Requester/UnknownPrincipal
    when the request names no session of that SP."""
    if unknown:
        top, second, text = samlp.STATUS_REQUESTER, samlp.STATUS_UNKNOWN_PRINCIPAL, "No such session at this identity provider."
    elif missed:
        top, second, text = samlp.STATUS_SUCCESS, samlp.STATUS_PARTIAL_LOGOUT, "Some applications could not be signed out."
    else:
        return samlp.Status(status_code=samlp.StatusCode(value=samlp.STATUS_SUCCESS))
    return samlp.Status(status_code=samlp.StatusCode(value=top, status_code=samlp.StatusCode(value=second)),
                        status_message=samlp.StatusMessage(text=text))


def _logout_response(sp, in_response_to: str, destination: str | None, status_: samlp.Status, *, sign: bool) -> str:
    idp = server.server(current_app)
    # pysaml2's public create_logout_response picks the SP's Location; a ResponseLocation wins.
    response = idp._status_response(
        samlp.LogoutResponse, idp._issuer(), status_, sign, sign_alg=server.SIGNING_ALGORITHM,
        digest_alg=server.DIGEST_ALGORITHM, in_response_to=in_response_to, destination=destination,
    )
    return str(response)


def _signed_redirect(xml: str, location: str, relay_state: str | None, *, response: bool) -> str:
    """The HTTP-Redirect binding's URL: the message deflated, signed in the query (RSA-SHA256)."""
    info = server.server(current_app).apply_binding(
        BINDING_HTTP_REDIRECT, xml, location, relay_state or "", response=response, sign=True, sigalg=server.SIGNING_ALGORITHM)
    return dict(info["headers"])["Location"]


def _b64(xml: str) -> str:
    return base64.b64encode(xml.encode()).decode()
