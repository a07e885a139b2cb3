"""Admin page for SAML service providers: register them from their metadata, choose what each
receives, replace their metadata, delete them; and show what to give an SP about this IdP.

The browser twin of `flask saml add-sp / list-sps / remove-sp`: registration and removal go
through the same `registry` functions, so the page and the CLI refuse the same metadata. Every
view needs `apps:manage`; without it the answer is 403 and nothing runs.
"""

from __future__ import annotations

import base64
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, BINDING_SOAP, md
from werkzeug.datastructures import MultiDict

from directory import audit, durations, settings
from directory.db import db
from directory.models import App
from idp import admin_apps, context, web_session
from idp.admin import UNIT_LABELS, duration_field
from idp.saml import certs, registry, server
from idp.saml.models import ATTRIBUTES, DEFAULT_ATTRIBUTES, NAMEID_FORMATS, ServiceProvider

bp = Blueprint("admin_saml", __name__, url_prefix="/admin/saml")
PERMISSION = admin_apps.PERMISSION

# What the registration form's "Require signed AuthnRequests" choice passes to `add_sp`.
SIGNED_CHOICES = {"metadata": None, "on": True, "off": False}
# Single Logout channels by the bindings of an SP's SingleLogoutService endpoints.
CHANNELS = {BINDING_SOAP: "SOAP back-channel", BINDING_HTTP_REDIRECT: "browser front-channel",
            BINDING_HTTP_POST: "browser front-channel"}
# The IdP's endpoints as `server.config_dict` publishes them in our metadata (a test compares).
IDP_ENDPOINTS = (
    ("Single sign-on", "HTTP-Redirect", "/saml/sso/redirect"),
    ("Single sign-on", "HTTP-POST", "/saml/sso/post"),
    ("Single logout", "HTTP-Redirect", "/saml/slo/redirect"),
    ("Single logout", "HTTP-POST", "/saml/slo/post"),
    ("Single logout", "SOAP", "/saml/slo/soap"),
)


@bp.get("")
@web_session.require_permission(PERMISSION)
def list_sps():
    return _page()


@bp.post("")
@web_session.require_permission(PERMISSION)
def register_sp():
    """Register from pasted metadata or its URL. Every field is checked before `add_sp`, so the
    page can show all refusals at once, each beside its field."""
    form, errors = request.form, {}
    metadata, parsed = _metadata(form, errors, required=True), None
    if metadata is not None:
        try:
            parsed = registry.parse_metadata(metadata)
        except registry.SamlError as error:
            errors["metadata"] = str(error)
    if parsed and registry.find(parsed.entity_id):
        errors["metadata"] = f"a service provider with entityID {parsed.entity_id} is already registered"
    if (choice := form.get("signed_requests", "metadata")) not in SIGNED_CHOICES:
        errors["signed_requests"] = "choose what the metadata says, yes or no"
    name = form.get("name", "").strip() or None  # None: the entityID
    errors = registry.settings_errors(
        parsed, name=name, nameid_format=form.get("nameid_format", ""), attributes=form.getlist("attributes"),
        wants_signed_requests=SIGNED_CHOICES.get(choice),
    ) | errors
    if not errors:
        try:
            sp = registry.add_sp(
                metadata, name=name, now=context.now(), actor_label=g.user.username, nameid_format=form["nameid_format"],
                attributes=form.getlist("attributes"), wants_signed_requests=SIGNED_CHOICES[choice],
            )
        except registry.SamlError as error:  # registered concurrently, or a rule this page does not know yet
            errors["metadata"] = str(error)
    if errors:
        return _page(registering=(form, errors), status=400)
    flash(f"Registered {sp.app.name}.", "info")
    return redirect(url_for(".list_sps", _anchor=f"sp-{sp.id}"), 303)


@bp.post("/<int(max=2147483647):sp_id>")  # larger ids are not stored, and overflow the driver
@web_session.require_permission(PERMISSION)
def save_sp(sp_id: int):
    """Settings, Single Logout, the app session's lifetimes and optionally new metadata, saved
    together or not at all: one transaction, one audit event listing every change."""
    sp = db.session.get(ServiceProvider, sp_id) or abort(404)
    form, errors = request.form, {}
    metadata = _metadata(form, errors, required=False)
    changes = _app_settings(form, sp.app, errors)
    try:
        changes = registry.update_sp(
            sp, name=form.get("name", ""), nameid_format=form.get("nameid_format", ""),
            attributes=form.getlist("attributes"), wants_signed_requests=form.get("signed_requests") == "on",
            metadata_xml=metadata,
        ) | changes
    except registry.InvalidSettings as invalid:
        errors = invalid.errors | errors
    if errors:
        db.session.rollback()  # undo whatever was applied before the refusal was known
        return _page(edited=(sp_id, form, errors), status=400)
    name = sp.app.name
    if changes:
        audit.record(
            "app.settings_changed", now=context.now(), actor=g.user, ip=context.client_ip(),
            target=name, protocol="saml", entity_id=sp.entity_id, changes=changes,
        )
        db.session.commit()
    flash(f"Saved {len(changes)} change(s) to {name}." if changes else f"Nothing changed for {name}.", "info")
    return redirect(url_for(".list_sps", _anchor=f"sp-{sp_id}"), 303)


@bp.post("/<int(max=2147483647):sp_id>/delete")
@web_session.require_permission(PERMISSION)
def delete_sp(sp_id: int):
    """Delete the SP and its app; its application sessions go with them (as `flask saml remove-sp`)."""
    sp = db.session.get(ServiceProvider, sp_id) or abort(404)
    name = sp.app.name
    registry.remove_sp(sp.entity_id, now=context.now(), actor_label=g.user.username)
    flash(f"Deleted {name}. It can no longer sign people in.", "info")
    return redirect(url_for(".list_sps"), 303)


def _metadata(form, errors: dict[str, str], *, required: bool) -> str | None:
    """The pasted metadata, or the document at the given URL; None when neither or refused."""
    pasted, url = form.get("metadata_xml", "").strip(), form.get("metadata_url", "").strip()
    if pasted and url:
        errors["metadata"] = "paste the metadata or give its URL, not both"
    elif url and not url.startswith(("https://", "http://")):
        # `read_metadata` also reads files on this server: never on a browser's say-so.
        errors["metadata"] = "the metadata URL must be an https URL"
    elif url:
        try:
            return registry.read_metadata(url)
        except registry.SamlError as error:
            errors["metadata"] = str(error)
    elif pasted:
        return pasted
    elif required:
        errors["metadata"] = "paste the service provider's metadata or give its URL"
    return None


def _app_settings(form, app: App, errors: dict[str, str]) -> dict[str, dict]:
    """Apply the form's Single Logout and app-session lifetimes to `app`, with the ranges and
    the audit names of the OIDC page; returns the changes. Adds to `errors` instead when refused."""
    idle = duration_field(form, "idle", errors, timedelta(seconds=app.session_idle_seconds))
    longest = duration_field(form, "max", errors, timedelta(seconds=app.session_max_seconds))
    for name, value, bounds in (("idle", idle, admin_apps.IDLE_RANGE), ("max", longest, admin_apps.MAX_RANGE)):
        if name not in errors and (message := settings.range_error(value, bounds)):
            errors[name] = message
    if "idle" not in errors and "max" not in errors and idle > longest:
        errors["idle"] = "must not be longer than the maximum lifetime"
    if errors.keys() & {"idle", "max"}:
        return {}
    old = admin_apps._stored(app)
    new = {"single_logout": form.get("single_logout") == "on",
           "session_idle": durations.compact(idle), "session_max": durations.compact(longest)}
    app.single_logout = new["single_logout"]
    app.session_idle_seconds, app.session_max_seconds = int(idle.total_seconds()), int(longest.total_seconds())
    return {name: {"old": old[name], "new": value} for name, value in new.items() if old[name] != value}


def _fields(sp: ServiceProvider) -> MultiDict:
    """The settings form's raw values for `sp`, as a browser would submit them untouched."""
    fields = MultiDict({
        **admin_apps._fields(sp.app), "name": sp.app.name, "nameid_format": sp.nameid_format,
        "signed_requests": "on" if sp.wants_signed_requests else "",
    })
    fields.setlist("attributes", sp.released_attributes)
    return fields


def _described(sp: ServiceProvider) -> registry.SpMetadata | str:
    """What the stored metadata says (endpoints, certificate), or why it cannot be read."""
    try:
        return registry.parse_metadata(sp.metadata_xml)
    except registry.SamlError as error:
        return str(error)


def _offered(parsed: registry.SpMetadata | str) -> list[str]:
    """The Single Logout channels the metadata offers, back-channel first (not which one is used:
    that is the app's `backchannel_logout`/`frontchannel_logout`)."""
    bindings = set() if isinstance(parsed, str) else {binding for binding, _ in parsed.single_logout_services}
    return list(dict.fromkeys(channel for binding, channel in CHANNELS.items() if binding in bindings))


def _idp() -> dict:
    """What an SP's administrator needs from us: our metadata URL, or its parts by hand. The
    certificates are read from our metadata, so the page lists exactly what SPs see there
    (two during a certificate rotation); `signs` marks the one signing now."""
    issuer = current_app.config["ISSUER"]
    ours = md.entity_descriptor_from_string(server.metadata_bytes(current_app))
    signing = certs.current(current_app).cert_base64
    published = [data.x509_certificate.text for descriptor in ours.idpsso_descriptor[0].key_descriptor
                 for data in descriptor.key_info.x509_data]
    return {
        "entity_id": server.entity_id(current_app),
        "metadata_url": f"{issuer}/saml/metadata",
        "endpoints": [(service, binding, issuer + path) for service, binding, path in IDP_ENDPOINTS],
        "certificates": [{**_certificate(der), "signs": "".join(der.split()) == signing} for der in published],
    }


def _certificate(der_base64: str) -> dict:
    """A certificate as an admin compares it: SHA-256 fingerprint, expiry, PEM."""
    try:
        cert = x509.load_der_x509_certificate(base64.b64decode("".join(der_base64.split())))
    except ValueError as error:
        return {"error": f"not a readable certificate ({error})"}
    return {
        "fingerprint": cert.fingerprint(hashes.SHA256()).hex(":").upper(),
        "expires": cert.not_valid_after_utc,
        "expired": cert.not_valid_after_utc <= context.now(),
        "pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
    }


def _page(registering: tuple[MultiDict, dict[str, str]] | None = None,
          edited: tuple[int, MultiDict, dict[str, str]] | None = None, status: int = 200):
    """The list with every SP's settings form, the registration form and our own details.

    `registering` is (submitted form, errors) for a refused registration; `edited` is (sp id,
    submitted form, errors) for a refused settings form, shown with what was typed."""
    sps = sorted(registry.all_sps(), key=lambda sp: (sp.app.name.casefold(), sp.id))
    forms = {sp.id: (_fields(sp), {}) for sp in sps}
    if edited is not None:
        forms[edited[0]] = edited[1:]
    blank = MultiDict({"nameid_format": "persistent", "signed_requests": "metadata"})
    blank.setlist("attributes", DEFAULT_ATTRIBUTES)
    described = {sp.id: _described(sp) for sp in sps}
    return render_template(
        "admin/saml.html", sps=sps, forms=forms, described=described,
        offered={sp_id: _offered(parsed) for sp_id, parsed in described.items()},
        sp_certificates={sp_id: [] if isinstance(parsed, str) else [_certificate(der) for der in parsed.signing_certificates]
                         for sp_id, parsed in described.items()},
        registering=registering or (blank, {}), idp=_idp(), units=UNIT_LABELS,
        nameid_formats=NAMEID_FORMATS, attributes=ATTRIBUTES,
    ), status
