"""Registering SAML service providers from their metadata. Refusals raise `SamlError` with a
one-line message; nothing is stored then."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import requests
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, BINDING_SOAP, md
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from directory import audit
from directory.db import db
from directory.models import App
from idp.oidc.clients import LOCAL_HOSTS
from idp.saml.models import ATTRIBUTES, DEFAULT_ATTRIBUTES, NAMEID_FORMATS, ServiceProvider

FETCH_TIMEOUT = 10  # seconds
MAX_METADATA = 1 << 20  # bytes: an SP's metadata is a few kilobytes
_TRUE = ("true", "1")


class SamlError(ValueError):
    """The registration or removal is refused; the message says why. Nothing was stored."""


@dataclass
class SpMetadata:
    """What this provider reads from an SP's metadata."""

    entity_id: str
    assertion_consumer_services: list[tuple[str, str]]  # (binding, location), in document order
    single_logout_services: list[tuple[str, str]]
    authn_requests_signed: bool
    signing_certificates: list[str] = field(default_factory=list)  # base64 DER, no whitespace

    @property
    def backchannel_logout(self) -> bool:
        return any(binding == BINDING_SOAP for binding, _ in self.single_logout_services)

    @property
    def frontchannel_logout(self) -> bool:
        """Told through the browser only when it has no SOAP endpoint: the back-channel goes
        through the outbox, retried until it arrives, browser or not."""
        return not self.backchannel_logout and any(
            binding in (BINDING_HTTP_REDIRECT, BINDING_HTTP_POST) for binding, _ in self.single_logout_services)


def parse_metadata(metadata_xml: str) -> SpMetadata:
    """One `EntityDescriptor` with an `SPSSODescriptor` that has at least one ACS."""
    try:
        entity = md.entity_descriptor_from_string(metadata_xml)
    except Exception as error:  # defusedxml and ElementTree raise several types
        raise SamlError(f"the metadata is not XML: {_one_line(error)}") from None
    if entity is None:
        raise SamlError("the metadata is not a SAML EntityDescriptor")
    entity_id = (entity.entity_id or "").strip()
    if not entity_id or len(entity_id) > 1024:
        raise SamlError("the metadata has no entityID (or one longer than 1024 characters)")
    if not entity.spsso_descriptor:
        raise SamlError(f"the metadata of {entity_id} has no SPSSODescriptor: it does not describe a service provider")
    if len(entity.spsso_descriptor) > 1:
        raise SamlError(f"the metadata of {entity_id} has more than one SPSSODescriptor")
    sp = entity.spsso_descriptor[0]
    acs = [(service.binding, service.location) for service in sp.assertion_consumer_service]
    if not acs:
        raise SamlError(f"the metadata of {entity_id} has no AssertionConsumerService")
    slo = [(service.binding, service.location) for service in sp.single_logout_service]
    for binding, location in acs + slo:
        _check_endpoint(location, binding)
    certificates = []
    for descriptor in sp.key_descriptor:
        if descriptor.use in (None, "signing") and descriptor.key_info is not None:
            for data in descriptor.key_info.x509_data:
                if data.x509_certificate is not None and data.x509_certificate.text:
                    certificates.append("".join(data.x509_certificate.text.split()))
    signed = (sp.authn_requests_signed or "").strip().lower() in _TRUE
    return SpMetadata(entity_id, acs, slo, signed, certificates)


def add_sp(metadata_xml: str, *, name: str | None = None, now: datetime, actor_label: str = "cli",
           nameid_format: str = "persistent", attributes: list[str] | None = None,
           wants_signed_requests: bool | None = None) -> ServiceProvider:
    """Register the SP the metadata describes, as an `App` with protocol "saml"."""
    parsed = parse_metadata(metadata_xml)
    if nameid_format not in NAMEID_FORMATS:
        raise SamlError(f"NameID format must be one of {', '.join(NAMEID_FORMATS)}, not {nameid_format!r}")
    released = list(DEFAULT_ATTRIBUTES if attributes is None else dict.fromkeys(attributes))
    unknown = [a for a in released if a not in ATTRIBUTES]
    if unknown:
        raise SamlError(f"attributes must be among {', '.join(ATTRIBUTES)}, not {', '.join(unknown)}")
    wants_signed = parsed.authn_requests_signed if wants_signed_requests is None else wants_signed_requests
    if wants_signed and not parsed.signing_certificates:
        raise SamlError(f"{parsed.entity_id} signs its AuthnRequests but its metadata has no signing certificate")
    label = (name if name is not None else parsed.entity_id).strip()[:200]
    if not label:
        raise SamlError("name must be 1 to 200 characters")
    if find(parsed.entity_id) is not None:
        raise SamlError(f"a service provider with entityID {parsed.entity_id} is already registered")
    app = App(
        name=label, protocol="saml", created_at=now, single_logout=True,
        backchannel_logout=parsed.backchannel_logout, frontchannel_logout=parsed.frontchannel_logout,
    )
    sp = ServiceProvider(
        app=app, entity_id=parsed.entity_id, metadata_xml=metadata_xml, nameid_format=nameid_format,
        released_attributes=released, wants_signed_requests=wants_signed,
    )
    db.session.add(sp)
    audit.record("app.registered", now=now, actor_label=actor_label, target=label, protocol="saml", entity_id=parsed.entity_id)
    try:
        db.session.commit()
    except IntegrityError:  # registered concurrently
        db.session.rollback()
        raise SamlError(f"a service provider with entityID {parsed.entity_id} is already registered") from None
    return sp


def remove_sp(entity_id: str, *, now: datetime, actor_label: str = "cli") -> None:
    """Delete the SP and its app (its application sessions go with it)."""
    sp = find(entity_id)
    if sp is None:
        raise SamlError(f"no service provider with entityID {entity_id}")
    app = sp.app
    db.session.delete(sp)
    db.session.delete(app)
    audit.record("app.deleted", now=now, actor_label=actor_label, target=app.name, protocol="saml", entity_id=entity_id)
    db.session.commit()


def find(entity_id: str) -> ServiceProvider | None:
    return db.session.scalar(select(ServiceProvider).where(ServiceProvider.entity_id == entity_id))


def all_sps() -> list[ServiceProvider]:
    return list(db.session.scalars(select(ServiceProvider).order_by(ServiceProvider.id)))


def read_metadata(source: str) -> str:
    """The metadata text from a file path or an https URL (http only for this machine)."""
    if source.startswith(("http://", "https://")):
        _check_url(source, "metadata URL")
        try:
            with requests.get(source, timeout=FETCH_TIMEOUT, stream=True) as response:
                body = b""
                for chunk in response.iter_content(65536):
                    body += chunk
                    if len(body) > MAX_METADATA:
                        break
        except requests.RequestException as error:
            raise SamlError(f"cannot fetch {source}: {_one_line(error)}") from None
        _check_url(response.url, "metadata URL (after redirects)")
        if response.status_code != 200:
            raise SamlError(f"cannot fetch {source}: HTTP {response.status_code}")
    else:
        try:
            with Path(source).open("rb") as handle:
                body = handle.read(MAX_METADATA + 1)
        except OSError as error:
            raise SamlError(f"cannot read {source}: {error.strerror}") from None
    if len(body) > MAX_METADATA:
        raise SamlError(f"{source} is larger than {MAX_METADATA} bytes")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise SamlError(f"{source} is not UTF-8 text") from None


def _check_url(url: str, what: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SamlError(f"{what} {url!r} must be an absolute http(s) URL")
    if parts.scheme == "http" and parts.netloc.rsplit(":", 1)[0] not in LOCAL_HOSTS:
        raise SamlError(f"{what} {url!r} must use https (http is allowed only for localhost)")


def _check_endpoint(location: str | None, binding: str | None) -> None:
    if not location or not binding:
        raise SamlError("every endpoint in the metadata needs a Binding and a Location")
    _check_url(location, "endpoint")
    if urlsplit(location).fragment or any(ch.isspace() for ch in location):
        raise SamlError(f"endpoint {location!r} has a fragment or spaces")


def _one_line(error: Exception) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())[:300]


class InvalidSettings(SamlError):
    """Refused settings, one message per form field (`name`, `nameid_format`, `attributes`,
    `signed_requests`, `metadata`), so a page can show each beside its field."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def settings_errors(parsed: SpMetadata | None, *, name: str | None, nameid_format: str, attributes: list[str],
                    wants_signed_requests: bool | None) -> dict[str, str]:
    """What is wrong with these settings for the SP `parsed` describes, by field (empty: nothing).
    Asked before storing, so every refusal is known at once. `name` None stands for the entityID;
    `parsed` None (unreadable metadata) skips the signing check."""
    errors = {}
    if name is not None and not 1 <= len(name.strip()) <= 200:
        errors["name"] = "name must be 1 to 200 characters"
    if nameid_format not in NAMEID_FORMATS:
        errors["nameid_format"] = f"NameID format must be one of {', '.join(NAMEID_FORMATS)}, not {nameid_format!r}"
    if unknown := [a for a in attributes if a not in ATTRIBUTES]:
        errors["attributes"] = f"attributes must be among {', '.join(ATTRIBUTES)}, not {', '.join(unknown)}"
    wants_signed = parsed and (parsed.authn_requests_signed if wants_signed_requests is None else wants_signed_requests)
    if wants_signed and not parsed.signing_certificates:
        errors["signed_requests"] = (f"the metadata of {parsed.entity_id} has no signing certificate, so signed "
                                     "AuthnRequests cannot be checked")
    return errors


def update_sp(sp: ServiceProvider, *, name: str, nameid_format: str, attributes: list[str],
              wants_signed_requests: bool, metadata_xml: str | None = None) -> dict[str, dict]:
    """Change a registered SP's settings and, with `metadata_xml`, its metadata (same entityID).

    Returns what changed, `{field: {"old": ..., "new": ...}}`. Everything is checked before
    anything changes (`InvalidSettings`). Neither audits nor commits: the admin page saves these
    with the app's own settings as one transaction and one audit event."""
    metadata_xml = sp.metadata_xml if metadata_xml is None else metadata_xml
    errors, parsed = {}, None
    try:
        parsed = parse_metadata(metadata_xml)
    except SamlError as error:
        errors["metadata"] = str(error)
    if parsed and parsed.entity_id != sp.entity_id:
        errors["metadata"] = (f"this metadata describes {parsed.entity_id}, not {sp.entity_id}; "
                              "register it as a new service provider instead")
    errors |= settings_errors(parsed, name=name, nameid_format=nameid_format, attributes=attributes,
                              wants_signed_requests=wants_signed_requests)
    if errors:
        raise InvalidSettings(errors)
    app, released = sp.app, [a for a in ATTRIBUTES if a in attributes]
    if set(released) == set(sp.released_attributes):
        released = sp.released_attributes  # the same set in another order is no change
    old = {"name": app.name, "nameid_format": sp.nameid_format, "released_attributes": sp.released_attributes,
           "wants_signed_requests": sp.wants_signed_requests}
    new = {"name": name.strip(), "nameid_format": nameid_format, "released_attributes": released,
           "wants_signed_requests": wants_signed_requests}
    if metadata_xml != sp.metadata_xml:  # the channels as add_sp derives them: the browser only without SOAP
        old |= {"metadata": _digest(sp.metadata_xml), "backchannel_logout": app.backchannel_logout,
                "frontchannel_logout": app.frontchannel_logout}
        new |= {"metadata": _digest(metadata_xml), "backchannel_logout": parsed.backchannel_logout,
                "frontchannel_logout": parsed.frontchannel_logout and not parsed.backchannel_logout}
        sp.metadata_xml, app.backchannel_logout, app.frontchannel_logout = (
            metadata_xml, new["backchannel_logout"], new["frontchannel_logout"])
    changes = {key: {"old": old[key], "new": value} for key, value in new.items() if old[key] != value}
    app.name, sp.nameid_format, sp.released_attributes = new["name"], nameid_format, released
    sp.wants_signed_requests = wants_signed_requests
    return changes


def _digest(text: str) -> str:
    """Metadata in the audit trail: its SHA-256, enough to tell versions apart without the document."""
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()
