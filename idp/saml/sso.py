"""SAML Web Browser SSO at the IdP: reading and checking AuthnRequests, and building the
Responses (pysaml2 does the XML and the signing; this module decides what is allowed)."""

from __future__ import annotations

import base64
import contextvars
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import saml2.assertion
from flask import current_app
from saml2 import BINDING_HTTP_POST, saml, samlp
from saml2.saml import AUTHN_PASSWORD_PROTECTED

from idp.saml import inbound, messages, registry, server
from idp.saml.messages import Refused  # noqa: F401 (the views catch sso.Refused)
from idp.saml.models import ServiceProvider

# pysaml2 always makes up the SessionIndex (`saml2.assertion.sid()`); ours must be the app
# session's sid, so that function answers from this context variable while a response is built.
_SESSION_INDEX: contextvars.ContextVar[str | None] = contextvars.ContextVar("saml_session_index", default=None)
_pysaml2_sid = saml2.assertion.sid


def _session_index(*args, **kwargs):
    return _SESSION_INDEX.get() or _pysaml2_sid(*args, **kwargs)


saml2.assertion.sid = _session_index


@dataclass
class Request:
    sp: ServiceProvider
    id: str
    acs_url: str
    force_authn: bool
    is_passive: bool
    issue_instant: datetime


def read(saml_request: str | None, binding: str, *, relay_state=None, sigalg=None, signature=None,
         first_seen: datetime) -> Request:
    """The checked AuthnRequest, or `Refused`. `first_seen` is when this browser first brought
    it (now, or when it was sent to sign in): freshness is measured from there."""
    if not saml_request:
        raise Refused("the request carries no SAMLRequest")
    inbound.check(saml_request, binding, sigalg=sigalg)
    parsed = _parse(server.server(current_app), saml_request, binding, relay_state, sigalg, signature)
    message = parsed.message
    sp = messages.sender(message)
    if sp.wants_signed_requests:
        # Again, now demanding a valid signature (pysaml2 checks it against the SP's metadata).
        _parse(server.server(current_app, want_signed=True), saml_request, binding, relay_state, sigalg, signature,
               unsigned="the service provider must sign its requests, and this one is not signed correctly")
    request_id = messages.message_id(message)
    acs_url = _acs_url(sp, message)
    issued = messages.issued_at(message, first_seen=first_seen)
    messages.check_unseen(request_id)
    return Request(sp=sp, id=request_id, acs_url=acs_url, force_authn=_true(message.force_authn),
                   is_passive=_true(message.is_passive), issue_instant=issued)


def _true(value) -> bool:
    return str(value or "").strip().lower() in ("true", "1")


def _parse(idp, saml_request, binding, relay_state, sigalg, signature, unsigned=None):
    try:
        parsed = idp.parse_authn_request(saml_request, binding, relay_state=relay_state, sigalg=sigalg, signature=signature)
    except Exception as error:  # pysaml2 raises many types for bad input
        if unsigned:
            raise Refused(unsigned) from None
        raise Refused(f"the request cannot be read ({type(error).__name__})") from None
    if parsed is None or parsed.message is None:
        raise Refused(unsigned or "the request cannot be read")
    return parsed


def _acs_url(sp: ServiceProvider, message) -> str:
    """The ACS to answer at: one registered in the SP's metadata with the HTTP-POST binding."""
    registered = [location for binding, location in registry.parse_metadata(sp.metadata_xml).assertion_consumer_services
                  if binding == BINDING_HTTP_POST]
    if message.protocol_binding and message.protocol_binding != BINDING_HTTP_POST:
        raise Refused("the request asks for a response binding other than HTTP-POST")
    if message.assertion_consumer_service_url:
        if message.assertion_consumer_service_url not in registered:
            raise Refused("the request names an AssertionConsumerServiceURL that the service provider has not registered")
        return message.assertion_consumer_service_url
    if message.assertion_consumer_service_index is not None:
        indexed = _indexed_acs(sp, message.assertion_consumer_service_index)
        if indexed is None or indexed not in registered:
            raise Refused("the request names an AssertionConsumerServiceIndex that is not registered")
        return indexed
    if not registered:
        raise Refused("the service provider has no AssertionConsumerService with the HTTP-POST binding")
    return registered[0]


def _indexed_acs(sp: ServiceProvider, index: str) -> str | None:
    from saml2 import md

    entity = md.entity_descriptor_from_string(sp.metadata_xml)
    for service in entity.spsso_descriptor[0].assertion_consumer_service:
        if str(service.index) == str(index) and service.binding == BINDING_HTTP_POST:
            return service.location
    return None


def mark_answered(request: Request, now: datetime) -> None:
    messages.remember(request.id, now)


def subject_for(sp: ServiceProvider, user) -> str:
    """The NameID value for `user` at `sp`, kept on the app session. Transient: "" here, then
    the app session's own sid once it exists."""
    fmt = sp.nameid_format
    if fmt == "persistent":
        key = current_app.secret_key
        message = f"{user.id}\x00{sp.entity_id}".encode()
        return hmac.new(key.encode() if isinstance(key, str) else key, message, hashlib.sha256).hexdigest()
    if fmt == "transient":
        return ""
    return user.email if fmt == "emailAddress" else user.username


def name_id(sp: ServiceProvider, value: str) -> saml.NameID:
    return saml.NameID(format=sp.nameid_format_uri, name_qualifier=server.entity_id(current_app),
                       sp_name_qualifier=sp.entity_id, text=value)


def identity(sp: ServiceProvider, user) -> dict[str, list[str]]:
    values = {"uid": user.username, "email": user.email, "displayName": user.display_name,
              "role": user.role.name if user.role is not None else None}
    return {name: [values[name]] for name in sp.released_attributes if values.get(name)}


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def success(request: Request, user, directory_session, app_session) -> str:
    """The signed Response (base64) for the ACS."""
    idp = server.server(current_app)
    token = _SESSION_INDEX.set(app_session.sid)
    try:
        response = _authn_response(idp, request, user, directory_session, app_session)
    finally:
        _SESSION_INDEX.reset(token)
    return base64.b64encode(str(response).encode()).decode()


def _authn_response(idp, request: Request, user, directory_session, app_session):
    return idp.create_authn_response(
        identity(request.sp, user), request.id, request.acs_url, request.sp.entity_id,
        name_id=name_id(request.sp, app_session.subject),
        authn={"class_ref": AUTHN_PASSWORD_PROTECTED,
               "authn_instant": int(directory_session.authenticated_at.timestamp())},
        sign_assertion=True, sign_response=True,
        session_not_on_or_after=_stamp(app_session.created_at + timedelta(seconds=app_session.max_seconds)),
        sign_alg=server.SIGNING_ALGORITHM, digest_alg=server.DIGEST_ALGORITHM,
    )


def no_passive(request: Request) -> str:
    idp = server.server(current_app)
    response = idp.create_error_response(
        request.id, request.acs_url, (samlp.STATUS_NO_PASSIVE, "The person is not signed in and IsPassive forbids asking."),
        sign=True, sign_alg=server.SIGNING_ALGORITHM, digest_alg=server.DIGEST_ALGORITHM,
    )
    return base64.b64encode(str(response).encode()).decode()
