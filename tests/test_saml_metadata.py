"""The SAML IdP's signed metadata, its signing certificate, and registering service providers
from their metadata (`flask saml add-sp / list-sps / remove-sp`)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import responses
from cryptography import x509
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, BINDING_SOAP
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.sigver import get_xmlsec_binary
from sqlalchemy import func, select

from directory.db import db
from directory.models import App
from idp.saml import certs, server
from idp.saml.models import NAMEID_FORMATS, ServiceProvider
from tests.conftest import START
from tests.factories import audit_actions, make_sp_metadata

IDP_ENTITY = "http://localhost/saml/metadata"
SP_ENTITY = "https://sp.example/metadata"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"


# --- helpers ---------------------------------------------------------------------------------


def cli(app, *args: str):
    result = app.test_cli_runner().invoke(args=list(args))
    db.session.rollback()
    return result


def ok(result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def refused(result) -> str:
    """A one-line `Error:` on standard error, exit status 1; returns the message."""
    assert result.exit_code == 1, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def nothing_stored() -> bool:
    return (db.session.scalar(select(func.count()).select_from(ServiceProvider)) == 0
            and db.session.scalar(select(func.count()).select_from(App)) == 0
            and "app.registered" not in audit_actions())


@pytest.fixture
def idp_metadata(client) -> str:
    return client.get("/saml/metadata").data.decode()


@pytest.fixture
def sp_client(idp_metadata, tmp_path) -> Saml2Client:
    """An independent consumer: pysaml2's SP side, configured with our metadata inline."""
    pair = certs.load(tmp_path / "consumer", host="consumer.example", now=START)
    config = SPConfig().load({
        "entityid": "https://consumer.example/metadata",
        "service": {"sp": {"endpoints": {"assertion_consumer_service": [("https://consumer.example/acs", BINDING_HTTP_POST)]}}},
        "key_file": str(pair.key_file), "cert_file": str(pair.cert_file),
        "xmlsec_binary": get_xmlsec_binary(),
        "metadata": {"inline": [idp_metadata]},
    })
    return Saml2Client(config=config)


@pytest.fixture
def sp_file(tmp_path):
    """Write an SP's metadata to a file; returns its path as a string."""
    def write(entity_id: str = SP_ENTITY, **options) -> str:
        path = tmp_path / f"{urlsplit(entity_id).hostname}-{len(list(tmp_path.glob('*.xml')))}.xml"
        path.write_text(make_sp_metadata(tmp_path / "sp-keys", entity_id, **options))
        return str(path)
    return write


def xmlsec_verify(document: str, cert_file, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / "signed.xml"
    path.write_text(document)
    return subprocess.run(
        [get_xmlsec_binary(), "--verify", "--pubkey-cert-pem", str(cert_file),
         "--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:metadata:EntityDescriptor", str(path)],
        capture_output=True, text=True,
    )


# --- the IdP's metadata ----------------------------------------------------------------------


def test_the_metadata_is_served_without_a_session_as_saml_metadata(client):
    response = client.get("/saml/metadata")
    assert response.status_code == 200
    assert response.mimetype == "application/samlmetadata+xml"
    assert f'entityID="{IDP_ENTITY}"'.encode() in response.data
    assert "Set-Cookie" not in response.headers


def test_a_pysaml2_service_provider_finds_the_sso_endpoints_for_both_bindings(sp_client):
    found = {
        binding: [endpoint["location"] for endpoint in sp_client.metadata.single_sign_on_service(IDP_ENTITY, binding)]
        for binding in (BINDING_HTTP_REDIRECT, BINDING_HTTP_POST)
    }
    assert found == {
        BINDING_HTTP_REDIRECT: ["http://localhost/saml/sso/redirect"],
        BINDING_HTTP_POST: ["http://localhost/saml/sso/post"],
    }


def test_a_pysaml2_service_provider_finds_the_single_logout_endpoints(sp_client):
    found = {
        binding: [e["location"] for e in sp_client.metadata.single_logout_service(IDP_ENTITY, binding, "idpsso")]
        for binding in (BINDING_HTTP_REDIRECT, BINDING_HTTP_POST, BINDING_SOAP)
    }
    assert found == {
        BINDING_HTTP_REDIRECT: ["http://localhost/saml/slo/redirect"],
        BINDING_HTTP_POST: ["http://localhost/saml/slo/post"],
        BINDING_SOAP: ["http://localhost/saml/slo/soap"],
    }


def test_a_pysaml2_service_provider_finds_the_offered_nameid_formats(sp_client):
    descriptor = sp_client.metadata[IDP_ENTITY]["idpsso_descriptor"][0]
    assert [f["text"] for f in descriptor["name_id_format"]] == list(NAMEID_FORMATS.values())


def test_a_pysaml2_service_provider_finds_the_signing_certificate_kept_in_certs(app, sp_client):
    published = [cert for _, cert in sp_client.metadata.certs(IDP_ENTITY, "idpsso", "signing")]
    assert ["".join(cert.split()) for cert in published] == [certs.current(app).cert_base64]


def test_the_metadata_signature_verifies_with_xmlsec1_against_the_published_certificate(app, idp_metadata, tmp_path):
    result = xmlsec_verify(idp_metadata, certs.current(app).cert_file, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stderr.splitlines()


def test_a_changed_metadata_document_no_longer_verifies(app, idp_metadata, tmp_path):
    tampered = idp_metadata.replace("http://localhost/saml/sso/post", "https://evil.example/sso")
    assert tampered != idp_metadata
    assert xmlsec_verify(tampered, certs.current(app).cert_file, tmp_path).returncode != 0


def test_the_metadata_is_signed_with_rsa_sha256_and_sha256_digests_only(idp_metadata):
    assert f'SignatureMethod Algorithm="{RSA_SHA256}"' in idp_metadata
    assert f'DigestMethod Algorithm="{SHA256}"' in idp_metadata
    # Nothing weaker is named anywhere, the algsupport extension included.
    assert set(re.findall(r'(?:Signature|Digest|Signing)Method Algorithm="([^"]+)"', idp_metadata)) == {RSA_SHA256, SHA256}


def test_the_signing_key_is_private_to_its_owner_and_reused_on_the_next_load(tmp_path):
    first = certs.load(tmp_path / "certs", host="idp.example", now=START)
    key_bytes = first.key_file.read_bytes()
    second = certs.load(tmp_path / "certs", host="idp.example", now=START + timedelta(days=1))
    assert stat.S_IMODE(os.stat(first.key_file).st_mode) == 0o600
    assert second.key_file.read_bytes() == key_bytes
    assert second.cert_pem == first.cert_pem


def test_the_certificate_names_the_issuer_host_and_is_valid_for_ten_years(tmp_path):
    pair = certs.load(tmp_path / "certs", host="idp.example", now=START)
    cert = x509.load_pem_x509_certificate(pair.cert_pem)
    assert cert.subject.rfc4514_string() == "CN=idp.example"
    assert cert.not_valid_after_utc - cert.not_valid_before_utc >= timedelta(days=3650)
    assert cert.not_valid_before_utc <= START


# --- registering service providers -----------------------------------------------------------


def test_add_sp_stores_the_service_provider_and_a_saml_app_with_single_logout(app, sp_file):
    out = ok(cli(app, "saml", "add-sp", "--metadata", sp_file(), "--name", "Wiki"))
    assert SP_ENTITY in out
    sp = db.session.scalar(select(ServiceProvider))
    assert (sp.entity_id, sp.nameid_format, sp.released_attributes, sp.wants_signed_requests) == (
        SP_ENTITY, "persistent", ["uid", "email", "displayName"], False)
    assert (sp.app.name, sp.app.protocol, sp.app.single_logout) == ("Wiki", "saml", True)
    assert "app.registered" in audit_actions()


def test_an_sp_with_a_soap_logout_endpoint_is_signed_out_over_the_back_channel(app, sp_file):
    ok(cli(app, "saml", "add-sp", "--metadata", sp_file(slo_bindings=("soap",))))
    sp = db.session.scalar(select(ServiceProvider))
    assert (sp.app.backchannel_logout, sp.app.frontchannel_logout) == (True, False)


def test_an_sp_with_a_redirect_logout_endpoint_is_signed_out_through_the_browser(app, sp_file):
    ok(cli(app, "saml", "add-sp", "--metadata", sp_file(slo_bindings=("redirect", "post"))))
    sp = db.session.scalar(select(ServiceProvider))
    assert (sp.app.backchannel_logout, sp.app.frontchannel_logout) == (False, True)


def test_an_sp_with_both_is_signed_out_over_the_back_channel_only(app, sp_file):
    ok(cli(app, "saml", "add-sp", "--metadata", sp_file(slo_bindings=("redirect", "soap"))))
    sp = db.session.scalar(select(ServiceProvider))
    assert (sp.app.backchannel_logout, sp.app.frontchannel_logout) == (True, False)


def test_an_sp_that_signs_its_requests_must_sign_them_by_default(app, sp_file):
    ok(cli(app, "saml", "add-sp", "--metadata", sp_file(authn_requests_signed=True)))
    assert db.session.scalar(select(ServiceProvider)).wants_signed_requests is True


def test_the_nameid_format_and_released_attributes_can_be_chosen(app, sp_file):
    ok(cli(app, "saml", "add-sp", "--metadata", sp_file(), "--nameid-format", "emailAddress",
           "--attribute", "email", "--attribute", "role"))
    sp = db.session.scalar(select(ServiceProvider))
    assert (sp.nameid_format, sp.released_attributes) == ("emailAddress", ["email", "role"])
    assert sp.nameid_format_uri == "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"


def test_an_unknown_nameid_format_is_refused_and_nothing_is_stored(app, sp_file):
    assert "NameID format" in refused(cli(app, "saml", "add-sp", "--metadata", sp_file(), "--nameid-format", "x509"))
    assert nothing_stored()


def test_an_unknown_attribute_is_refused_and_nothing_is_stored(app, sp_file):
    assert "password" in refused(cli(app, "saml", "add-sp", "--metadata", sp_file(), "--attribute", "password"))
    assert nothing_stored()


def test_a_second_registration_of_an_entity_id_is_refused_and_the_first_is_kept(app, sp_file):
    ok(cli(app, "saml", "add-sp", "--metadata", sp_file(), "--name", "First"))
    assert "already registered" in refused(cli(app, "saml", "add-sp", "--metadata", sp_file(), "--name", "Second"))
    assert [a.name for a in db.session.scalars(select(App))] == ["First"]


def test_metadata_that_is_not_xml_is_refused_and_nothing_is_stored(app, tmp_path):
    path = tmp_path / "junk.xml"
    path.write_text("this is not <xml")
    assert "not XML" in refused(cli(app, "saml", "add-sp", "--metadata", str(path)))
    assert nothing_stored()


def test_metadata_without_an_assertion_consumer_service_is_refused_and_nothing_is_stored(app, sp_file):
    assert "AssertionConsumerService" in refused(cli(app, "saml", "add-sp", "--metadata", sp_file(acs=False)))
    assert nothing_stored()


def test_identity_provider_metadata_is_refused_as_a_service_provider(app, idp_metadata, tmp_path):
    path = tmp_path / "idp.xml"
    path.write_text(idp_metadata)
    assert "SPSSODescriptor" in refused(cli(app, "saml", "add-sp", "--metadata", str(path)))
    assert nothing_stored()


def test_a_missing_metadata_file_is_refused(app, tmp_path):
    assert "cannot read" in refused(cli(app, "saml", "add-sp", "--metadata", str(tmp_path / "nope.xml")))


@responses.activate
def test_metadata_can_be_fetched_from_an_https_url(app, tmp_path):
    responses.get("https://sp.example/md", body=make_sp_metadata(tmp_path / "sp-keys", SP_ENTITY),
                  content_type="application/samlmetadata+xml")
    ok(cli(app, "saml", "add-sp", "--metadata", "https://sp.example/md"))
    assert db.session.scalar(select(ServiceProvider.entity_id)) == SP_ENTITY


@responses.activate
def test_a_metadata_url_that_fails_is_refused_and_nothing_is_stored(app):
    responses.get("https://sp.example/md", status=404)
    assert "HTTP 404" in refused(cli(app, "saml", "add-sp", "--metadata", "https://sp.example/md"))
    assert nothing_stored()


@responses.activate
def test_a_plain_http_metadata_url_elsewhere_than_localhost_is_refused_without_fetching(app):
    assert "https" in refused(cli(app, "saml", "add-sp", "--metadata", "http://sp.example/md"))
    assert len(responses.calls) == 0


def test_list_sps_prints_the_registered_service_providers_as_json(app, sp_file):
    ok(cli(app, "saml", "add-sp", "--metadata", sp_file(), "--name", "Wiki"))
    rows = json.loads(ok(cli(app, "saml", "list-sps", "--json")))
    assert rows == [{
        "entity_id": SP_ENTITY, "name": "Wiki", "nameid_format": "persistent",
        "released_attributes": ["uid", "email", "displayName"], "wants_signed_requests": False,
        "single_logout": True, "backchannel_logout": False, "frontchannel_logout": True,
        "assertion_consumer_services": ["https://sp.example/acs"],
    }]


def test_remove_sp_deletes_the_service_provider_and_its_app(app, sp_file):
    ok(cli(app, "saml", "add-sp", "--metadata", sp_file()))
    ok(cli(app, "saml", "remove-sp", SP_ENTITY))
    assert db.session.scalar(select(func.count()).select_from(ServiceProvider)) == 0
    assert db.session.scalar(select(func.count()).select_from(App)) == 0
    assert "app.deleted" in audit_actions()


def test_removing_an_unknown_entity_id_is_refused(app):
    assert "no service provider" in refused(cli(app, "saml", "remove-sp", SP_ENTITY))


def test_the_pysaml2_server_knows_every_registered_service_provider(app, sp_file):
    ok(cli(app, "saml", "add-sp", "--metadata", sp_file()))
    ok(cli(app, "saml", "add-sp", "--metadata", sp_file("https://other.example/metadata")))
    idp = server.server(app)
    assert set(idp.metadata.service_providers()) == {SP_ENTITY, "https://other.example/metadata"}
    assert idp.config.signing_algorithm == RSA_SHA256 and idp.config.digest_algorithm == SHA256
