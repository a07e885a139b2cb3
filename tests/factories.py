"""Plain factory functions with sensible defaults; call them inside an app context."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select

from directory import accounts, settings
from directory.db import db
from directory.models import App, AuditEvent, DirectorySession
from tests.conftest import PASSWORD, START


def make_user(username: str = "alice", *, role: str = "user", password: str = PASSWORD, now=START, **fields):
    return accounts.create_user(username, password, now=now, role=role, **fields)


def set_settings(now=START, **changes) -> settings.SessionSettings:
    """Store the defaults with `changes` applied, as an admin would."""
    new = replace(settings.SessionSettings(), **changes)
    settings.save(new, now=now, actor=None, actor_label="test")
    return new


def session_rows(user=None) -> list[DirectorySession]:
    db.session.expire_all()
    query = select(DirectorySession).order_by(DirectorySession.id)
    if user is not None:
        query = query.where(DirectorySession.user_id == user.id)
    return list(db.session.scalars(query))


def audit_actions() -> list[str]:
    return list(db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def make_app_record(name: str = "CRM", *, protocol: str = "oidc", now=START, **fields) -> App:
    """A relying application as the directory knows it (protocol details live elsewhere)."""
    app = App(name=name, protocol=protocol, created_at=now, **fields)
    db.session.add(app)
    db.session.commit()
    return app


def make_oidc_client(name: str = "CRM", **fields):
    """A registered relying party; returns (client, secret). Defaults: confidential, trusted
    (no consent screen), one redirect URI, back-channel logout at https://crm.example/logout."""
    from idp.oidc import clients

    spec = {
        "redirect_uris": [f"https://{name.lower()}.example/cb"],
        "backchannel_logout_uri": f"https://{name.lower()}.example/logout",
        "trusted": True,
        **fields,
    }
    return clients.register(clients.Registration(name=name, **spec), now=START, actor_label="test")


def make_sp_metadata(folder, entity_id: str = "https://sp.example/metadata", *, acs: bool = True,
                     slo_bindings: tuple[str, ...] = ("redirect",), authn_requests_signed: bool = False) -> str:
    """A SAML service provider's metadata as pysaml2 writes it, with its own key and certificate
    in `folder`. `slo_bindings` among "redirect", "post", "soap"."""
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, BINDING_SOAP
    from saml2.config import SPConfig
    from saml2.metadata import entity_descriptor, metadata_tostring_fix
    from saml2.sigver import get_xmlsec_binary

    from idp.saml import certs

    base = entity_id.rsplit("/", 1)[0]
    bindings = {"redirect": BINDING_HTTP_REDIRECT, "post": BINDING_HTTP_POST, "soap": BINDING_SOAP}
    pair = certs.load(folder, host="sp.example", now=START)
    endpoints = {"single_logout_service": [(f"{base}/slo/{b}", bindings[b]) for b in slo_bindings]}
    if acs:
        endpoints["assertion_consumer_service"] = [(f"{base}/acs", BINDING_HTTP_POST)]
    config = SPConfig().load({
        "entityid": entity_id,
        "service": {"sp": {"endpoints": endpoints, "authn_requests_signed": authn_requests_signed}},
        "key_file": str(pair.key_file), "cert_file": str(pair.cert_file),
        "xmlsec_binary": get_xmlsec_binary(),
    })
    text = metadata_tostring_fix(entity_descriptor(config), {"xs": "http://www.w3.org/2001/XMLSchema"})
    return text.decode() if isinstance(text, bytes) else text


def api_token(flask_app, *scopes: str, name: str = "Script") -> str:
    """A Bearer token for /api/v1 carrying `scopes`: a client_credentials client registered
    with them asks /oidc/token for them, as a script would."""
    client, secret = make_oidc_client(name, redirect_uris=[], grant_types=["client_credentials"], scopes=list(scopes),
                                      backchannel_logout_uri=None, trusted=False)
    answer = flask_app.test_client().post("/oidc/token", data={"grant_type": "client_credentials", "scope": " ".join(scopes)},
                                          auth=(client.client_id, secret))
    assert answer.status_code == 200, answer.json
    return answer.json["access_token"]
