"""Rolling the SAML signing certificate over (idp/saml/certs.py, `flask saml rotate-cert /
activate-cert / list-certs`): a new certificate is published before it signs, an old one for a
day after it stops.

Checked through independent readers: pysaml2's SP side reading our metadata, xmlsec1 verifying
the metadata's signature, and a sign-in whose Response pysaml2 SPs verify with the metadata they
hold.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import multiprocessing
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_POST
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.sigver import SignatureError, get_xmlsec_binary

from idp.saml import certs, server
from tests.conftest import START
from tests.factories import make_user
from tests.test_saml_metadata import IDP_ENTITY, cli, ok, refused, xmlsec_verify
from tests.test_saml_sso import ACS, make_sp, posted, read_response, send

DAY = timedelta(hours=24)


@pytest.fixture
def folder(tmp_path):
    return tmp_path / "certs"


@pytest.fixture
def app(make_app, folder):
    """The app on its own certs/ folder: these tests change it."""
    app = make_app(CERTS_PATH=folder)
    with app.app_context():
        yield app


def metadata(client) -> str:
    response = client.get("/saml/metadata")
    assert response.status_code == 200
    return response.data.decode()


def published(xml: str) -> list[str]:
    """The IdP's signing certificates as an independent pysaml2 SP reads them from our metadata."""
    config = SPConfig().load({"entityid": "https://reader.example/metadata", "xmlsec_binary": get_xmlsec_binary(),
                              "metadata": {"inline": [xml]}})
    return ["".join(cert.split()) for _, cert in config.metadata.certs(IDP_ENTITY, "idpsso", "signing")]


def listed(app) -> list[dict]:
    return json.loads(ok(cli(app, "saml", "list-certs", "--json")))


def signs_with(app) -> str:
    """The certificate pysaml2's IdP is configured to sign with (a fresh configuration, as a request builds)."""
    return Path(server.idp_config(app).cert_file).read_text()


def rotate(app) -> certs.SigningPair:
    ok(cli(app, "saml", "rotate-cert"))
    staged = certs.cert_set(app).staged
    assert staged is not None
    return staged


def manifest(folder) -> dict:
    return json.loads((folder / certs.MANIFEST).read_text())


def same_sp_holding(sp: Saml2Client, idp_metadata: str) -> Saml2Client:
    """The same service provider (entity, key, ACS) holding another copy of our metadata."""
    return Saml2Client(config=SPConfig().load({
        "entityid": sp.config.entityid,
        "service": {"sp": {"endpoints": {"assertion_consumer_service": [(ACS, BINDING_HTTP_POST)]},
                           "want_assertions_signed": True, "want_response_signed": True}},
        "key_file": sp.config.key_file, "cert_file": sp.config.cert_file, "xmlsec_binary": get_xmlsec_binary(),
        "metadata": {"inline": [idp_metadata]},
    }))


# --- rotate: published, not signing -------------------------------------------------------------


def test_rotate_publishes_a_second_signing_certificate_but_the_first_still_signs(app, client, tmp_path):
    old = certs.current(app)
    new = rotate(app)
    xml = metadata(client)
    assert published(xml) == [old.cert_base64, new.cert_base64]
    assert xml.count('use="signing"') == 2
    assert signs_with(app) == old.cert_pem.decode()
    assert xmlsec_verify(xml, old.cert_file, tmp_path).returncode == 0
    assert xmlsec_verify(xml, new.cert_file, tmp_path).returncode != 0


def test_rotate_says_what_was_staged_and_when_it_may_be_activated(app):
    old = certs.current(app)
    out = ok(cli(app, "saml", "rotate-cert"))
    new = certs.cert_set(app).staged
    assert new.id in out and new.fingerprint in out and old.id in out
    assert "2026-01-06 09:00:00 UTC" in out and "activate-cert" in out


def test_a_staged_key_is_private_named_for_the_ignore_rule_and_recorded_in_the_manifest(app, folder):
    old = certs.current(app)
    new = rotate(app)
    assert stat.S_IMODE(new.key_file.stat().st_mode) == 0o600
    assert all(fnmatch.fnmatch(path.name, "*.pem") for path in (new.key_file, new.cert_file))
    assert manifest(folder)["certs"] == [
        {"id": old.id, "key_file": "saml-signing-key.pem", "cert_file": "saml-signing-cert.pem",
         "staged_at": START.isoformat(), "activated_at": START.isoformat(), "retired_at": None},
        {"id": new.id, "key_file": new.key_file.name, "cert_file": new.cert_file.name,
         "staged_at": START.isoformat(), "activated_at": None, "retired_at": None},
    ]
    assert not list(folder.glob(".*.tmp"))


def test_a_second_rotate_is_refused_while_a_certificate_is_staged(app, folder):
    staged = rotate(app)
    before = (folder / certs.MANIFEST).read_bytes()
    assert "already staged" in refused(cli(app, "saml", "rotate-cert"))
    assert (folder / certs.MANIFEST).read_bytes() == before
    assert certs.cert_set(app).staged == staged


def test_rotate_replace_discards_the_staged_certificate_and_restarts_the_publish_period(app, client, clock, folder):
    old, first = certs.current(app), rotate(app)
    clock.advance(hours=12)
    ok(cli(app, "saml", "rotate-cert", "--replace"))
    second = certs.cert_set(app).staged
    assert second.id != first.id and not first.key_file.exists() and not first.cert_file.exists()
    assert published(metadata(client)) == [old.cert_base64, second.cert_base64]
    clock.advance(hours=23)
    assert "activate from 2026-01-06 21:00 UTC" in refused(cli(app, "saml", "activate-cert"))


def _rotate_at_once(folder, barrier, results) -> None:
    certset = certs.CertSet.load(folder, host="localhost", now=START)
    barrier.wait()
    try:
        results.put(certset.rotate(now=START).id)
    except certs.CertError:
        results.put("refused")


def test_two_processes_rotating_at_once_stage_one_certificate(folder):
    certs.load(folder, host="localhost", now=START)
    fork = multiprocessing.get_context("fork")
    barrier, results = fork.Barrier(2), fork.Queue()
    workers = [fork.Process(target=_rotate_at_once, args=(folder, barrier, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    outcomes = sorted(results.get(timeout=5) for _ in workers)
    assert outcomes[1] == "refused" and outcomes[0] != "refused"
    assert [entry["id"] for entry in manifest(folder)["certs"] if entry["activated_at"] is None] == [outcomes[0]]


# --- activate ----------------------------------------------------------------------------------


def test_activating_before_the_publish_period_is_over_is_refused_and_changes_nothing(app, client, clock, folder):
    old = certs.current(app)
    rotate(app)
    xml, before = metadata(client), (folder / certs.MANIFEST).read_bytes()
    clock.advance(hours=24, seconds=-1)
    message = refused(cli(app, "saml", "activate-cert"))
    assert "activate from 2026-01-06 09:00 UTC" in message and "--force" in message
    assert (folder / certs.MANIFEST).read_bytes() == before
    assert certs.current(app) == old and signs_with(app) == old.cert_pem.decode()
    assert metadata(client) == xml


def test_after_the_publish_period_the_new_certificate_signs_and_the_old_one_stays_published(app, client, clock, tmp_path):
    old, new = certs.current(app), rotate(app)
    clock.advance(hours=24)
    out = ok(cli(app, "saml", "activate-cert"))
    assert new.id in out and old.id in out and "2026-01-07 09:00:00 UTC" in out and "no restart" in out
    # The running app follows without a restart: the manifest changed, so it is read again.
    assert certs.current(app) == new and signs_with(app) == new.cert_pem.decode()
    xml = metadata(client)
    assert published(xml) == [new.cert_base64, old.cert_base64]
    assert xmlsec_verify(xml, new.cert_file, tmp_path).returncode == 0
    assert xmlsec_verify(xml, old.cert_file, tmp_path).returncode != 0


def test_force_activates_a_certificate_staged_moments_ago(app, clock):
    new = rotate(app)
    clock.advance(minutes=1)
    ok(cli(app, "saml", "activate-cert", "--force"))
    assert certs.current(app) == new


def test_the_previous_certificate_leaves_the_metadata_after_the_publish_period_and_later_the_folder(app, client, clock, folder):
    old, new = certs.current(app), rotate(app)
    clock.advance(hours=24)
    ok(cli(app, "saml", "activate-cert"))
    clock.advance(hours=24, seconds=-1)
    assert published(metadata(client)) == [new.cert_base64, old.cert_base64]
    clock.advance(seconds=1)
    assert published(metadata(client)) == [new.cert_base64]
    assert [row["role"] for row in listed(app)] == ["signing", "retired"]
    # Its files go with the next change under the lock.
    newest = rotate(app)
    assert not old.key_file.exists() and not old.cert_file.exists()
    assert [entry["id"] for entry in manifest(folder)["certs"]] == [new.id, newest.id]


def test_activate_with_nothing_staged_is_refused(app, folder):
    assert "no certificate is staged" in refused(cli(app, "saml", "activate-cert"))
    assert not (folder / certs.MANIFEST).exists()


def test_a_malformed_manifest_is_refused_in_one_line(app, folder):
    rotate(app)
    (folder / certs.MANIFEST).write_text('{"certs": [{"id": "x"}]}')
    assert "malformed" in refused(cli(app, "saml", "list-certs"))


def test_a_manifest_naming_the_wrong_certificate_is_refused(app, folder):
    new = rotate(app)
    data = manifest(folder)
    data["certs"][1]["id"] = "0" * 16
    (folder / certs.MANIFEST).write_text(json.dumps(data))
    assert f"not {'0' * 16}" in refused(cli(app, "saml", "activate-cert", "--force"))
    assert new.key_file.exists()


# --- an SP verifying responses across the rollover -----------------------------------------------


def test_an_sp_that_refreshed_its_metadata_during_the_rollover_accepts_responses_from_the_new_certificate(
        app, client, portal, clock, tmp_path):
    # pysaml2 dates its messages by the system clock: activation happens at the real time.
    clock.advance(seconds=(datetime.now(UTC) - START - DAY).total_seconds())
    make_user("alice", now=clock.now())
    stale = make_sp(app, tmp_path, client)  # registers the SP; holds our metadata from before the rotation
    old, new = certs.current(app), rotate(app)
    refreshed = same_sp_holding(stale, metadata(client))
    clock.advance(hours=24)
    ok(cli(app, "saml", "activate-cert"))
    portal.login()
    request_id, answer, _ = send(client, refreshed)
    fields = posted(answer)
    xml = base64.b64decode(fields["SAMLResponse"]).decode()
    assert new.cert_base64 in xml and old.cert_base64 not in xml
    assert read_response(refreshed, fields, request_id).name_id.text
    # An SP still holding the metadata from before the rotation cannot verify it.
    with pytest.raises(SignatureError):
        read_response(stale, fields, request_id)


# --- before rotation existed ----------------------------------------------------------------------


def _legacy_pair(folder, host: str) -> bytes:
    """A key and certificate under the fixed names, as the provider wrote them before rotation."""
    folder.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(START - timedelta(days=400))
            .not_valid_after(START + timedelta(days=3000)).sign(key, hashes.SHA256()))
    (folder / certs.KEY_FILE).write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (folder / certs.CERT_FILE).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert.public_bytes(serialization.Encoding.PEM)


def test_a_pair_without_a_manifest_keeps_signing_and_rolls_over_like_any_other(app, client, clock, folder):
    legacy = _legacy_pair(folder, "legacy.example")
    assert certs.current(app).cert_pem == legacy and signs_with(app) == legacy.decode()
    assert [(row["role"], row["key_file"]) for row in listed(app)] == [("signing", certs.KEY_FILE)]
    assert not (folder / certs.MANIFEST).exists()
    new = rotate(app)
    clock.advance(hours=24)
    ok(cli(app, "saml", "activate-cert"))
    assert published(metadata(client)) == [new.cert_base64, certs.SigningPair(folder, folder, legacy).cert_base64]
    clock.advance(hours=24)
    rotate(app)
    assert not (folder / certs.KEY_FILE).exists() and not (folder / certs.CERT_FILE).exists()


# --- list-certs ------------------------------------------------------------------------------------


def test_list_certs_shows_each_certificate_with_its_role_fingerprint_and_times(app, clock):
    old, new = certs.current(app), rotate(app)
    rows = listed(app)
    assert [(row["role"], row["id"]) for row in rows] == [("signing", old.id), ("next", new.id)]
    der = x509.load_pem_x509_certificate(new.cert_file.read_bytes()).fingerprint(hashes.SHA256())
    assert rows[1]["fingerprint"] == der.hex(":").upper()
    assert rows[1]["not_after"] == (START + certs.VALID_FOR).isoformat()
    assert (rows[1]["staged_at"], rows[1]["activated_at"], rows[1]["retired_at"]) == (START.isoformat(), None, None)
    clock.advance(hours=24)
    ok(cli(app, "saml", "activate-cert"))
    rows = listed(app)
    assert [(row["role"], row["id"]) for row in rows] == [("signing", new.id), ("previous", old.id)]
    assert rows[1]["retired_at"] == rows[0]["activated_at"] == (START + DAY).isoformat()
    out = ok(cli(app, "saml", "list-certs"))
    assert out.splitlines()[0].split() == ["ROLE", "ID", "NOT", "AFTER", "STAGED", "ACTIVATED", "RETIRED", "SHA-256"]
    assert out.splitlines()[1].startswith(f"signing   {new.id}") and new.fingerprint in out
