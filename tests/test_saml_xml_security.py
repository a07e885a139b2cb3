"""Attacked AuthnRequests at the SingleSignOnService: tampered after signing, signed with a key
the SP's metadata does not name, signature wrapping (XSW1-8), comments, DTDs, a tampered
HTTP-Redirect signature, replays. Each gets the error page (400), never the ACS, and leaves no
trace: no seen request, no application session. The browser is signed in, so a request that got
through would be answered at once. Last, `inbound.check`'s decoding rules on their own."""

from __future__ import annotations

import base64
import copy
import xml.etree.ElementTree as ET
import zlib
from urllib.parse import parse_qsl, urlsplit

import pytest
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, BINDING_SOAP, saml, samlp, xmldsig
from saml2.s_utils import deflate_and_base64_encode
from sqlalchemy import select

from directory.db import db
from idp.saml import inbound, messages, registry
from idp.saml.models import SeenRequest
from tests import test_saml_sso
from tests.conftest import START
from tests.test_saml_sso import RSA_SHA256, SHA256, SP_ENTITY, SSO, app_session_sids, make_sp, posted, read_response, refused, send

real_time, user = test_saml_sso.real_time, test_saml_sso.user  # its fixtures: the app clock runs from now; alice

NS = {"samlp": samlp.NAMESPACE, "saml": saml.NAMESPACE, "ds": xmldsig.NAMESPACE}
SIGNATURE = f"{{{xmldsig.NAMESPACE}}}Signature"
EVIL_ACS = "https://evil.example/acs"
OTHER_ENTITY, OTHER_ACS = "https://other.example/metadata", "https://other.example/acs"
END = 1000  # an index past every child: insert appends
SIGNATURE_REFUSALS = ("cannot be read", "must sign its requests")  # what a signature that does not verify gets
WEAK_ALGORITHM = "is not accepted (RSA or ECDSA with SHA-256 or stronger)"  # SHA-1 or HMAC, refused before verifying


@pytest.fixture(autouse=True)
def signed_in(real_time, portal, user):
    """A directory session: whatever gets through is answered at once, without the sign-in form."""
    portal.login()


@pytest.fixture
def signer(app, tmp_path, client):
    """A registered SP that must sign its requests."""
    return make_sp(app, tmp_path, client, signed=True)


@pytest.fixture
def other(app, tmp_path, client):
    """A second registered SP that signs, with a key of its own."""
    return make_sp(app, tmp_path, client, signed=True, entity_id=OTHER_ENTITY)


def impostor_and_signer(app, tmp_path, client):
    """Two SP clients with the entityID SP_ENTITY and keys of their own; only the signer's
    metadata stays registered, so no certificate registered here is the impostor's."""
    impostor = make_sp(app, tmp_path, client, signed=True)
    registry.remove_sp(SP_ENTITY, now=START)
    return impostor, make_sp(app, tmp_path, client, signed=True)


def signed_request(sp, **options) -> tuple[str, str]:
    """(ID, XML) of an AuthnRequest with an enveloped RSA-SHA256 signature."""
    request_id, xml = sp.create_authn_request(SSO[BINDING_HTTP_POST], sign=True, sign_alg=RSA_SHA256, digest_alg=SHA256, **options)
    return request_id, str(xml)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def post(client, xml: str | bytes):
    return client.post("/saml/sso/post", data={"SAMLRequest": b64(xml.encode() if isinstance(xml, str) else xml), "RelayState": "rs-1"})


def serialise(root: ET.Element) -> str:
    return ET.tostring(root, encoding="unicode")


def assert_refused(answer, *reasons: str) -> str:
    """The error page naming one of `reasons`; nothing was recorded and no ACS was named."""
    page = refused(answer)
    assert any(reason in page for reason in reasons), page
    assert "evil.example" not in page and "other.example" not in page
    db.session.rollback()
    assert list(db.session.scalars(select(SeenRequest.id))) == [] and app_session_sids() == []
    return page


def test_a_signed_request_survives_the_builders_round_trip(client, signer):
    """The control for everything below: parsing and serialising keeps the signature valid."""
    request_id, xml = signed_request(signer)
    assert read_response(signer, posted(post(client, serialise(ET.fromstring(xml)))), request_id).name_id.text


# --- an enveloped signature, tampered with -----------------------------------------------------


def evil_acs(request: ET.Element) -> None:
    request.set("AssertionConsumerServiceURL", EVIL_ACS)


def other_sp(request: ET.Element) -> None:
    """Speak for the other registered SP, and ask for an answer at its (registered) ACS."""
    request.find("saml:Issuer", NS).text = OTHER_ENTITY
    request.set("AssertionConsumerServiceURL", OTHER_ACS)


def lift_signature(request: ET.Element, donor: ET.Element) -> None:
    """Swap in the genuine signature of another request (its Reference names that request)."""
    request.remove(request.find(SIGNATURE))
    request.insert(1, donor.find(SIGNATURE))


TAMPERS = {
    "ACS URL changed": lambda request, _: evil_acs(request),
    "Issuer changed to another signing SP": lambda request, _: other_sp(request),
    "ID changed": lambda request, _: request.set("ID", "id-evil"),
    "Signature removed": lambda request, _: request.remove(request.find(SIGNATURE)),
    "Reference URI names another element": lambda request, _: request.find(".//ds:Reference", NS).set("URI", "#id-evil"),
    "Reference URI is the whole document": lambda request, _: request.find(".//ds:Reference", NS).set("URI", ""),
    "SignatureValue emptied": lambda request, _: setattr(request.find(".//ds:SignatureValue", NS), "text", ""),
    "Signature of another request": lift_signature,
}


@pytest.mark.parametrize("tamper", TAMPERS.values(), ids=TAMPERS)
def test_a_tampered_signed_post_request_is_refused(tamper, client, signer, other):
    request = ET.fromstring(signed_request(signer)[1])
    tamper(request, ET.fromstring(signed_request(signer)[1]))
    assert_refused(post(client, serialise(request)), *SIGNATURE_REFUSALS)


def test_a_request_signed_with_a_key_the_metadata_does_not_name_is_refused(app, client, tmp_path):
    impostor, signer = impostor_and_signer(app, tmp_path, client)
    _, xml = signed_request(impostor)
    embedded = ET.fromstring(xml).find(".//ds:KeyInfo//ds:X509Certificate", NS).text
    assert embedded.strip() in impostor.sec.my_cert and embedded.strip() not in signer.sec.my_cert
    assert_refused(post(client, xml), *SIGNATURE_REFUSALS)


# --- XML signature wrapping (Somorovsky et al.), adapted to an AuthnRequest ---------------------


def stripped(element: ET.Element) -> ET.Element:
    """A copy of `element` without its enveloped signature."""
    element = copy.deepcopy(element)
    element.remove(element.find(SIGNATURE))
    return element


def wrapped(tag: str, child: ET.Element) -> ET.Element:
    prefix, name = tag.split(":")
    parent = ET.Element(f"{{{NS[prefix]}}}{name}")
    parent.append(child)
    return parent


def put(root: ET.Element, path: str, index: int, child: ET.Element) -> ET.Element:
    """`child` inserted at `index` into the element at `path` below `root`; returns `root`."""
    root.find(path, NS).insert(index, child)
    return root


# (signed original, evil copy with another ID and the original's signature) -> the document sent.
# The Reference still finds an element with the original's ID, whose digest is unchanged.
XSW = {
    "XSW1 original inside the copied Signature": lambda original, evil: put(evil, "ds:Signature", END, stripped(original)),
    "XSW2 original before the copied Signature": lambda original, evil: put(evil, ".", 1, stripped(original)),
    "XSW3 signed original first inside the evil request": lambda original, evil: put(stripped(evil), ".", 0, original),
    "XSW4 evil request wraps the signed original": lambda original, evil: put(stripped(evil), ".", END, original),
    "XSW5 original after the evil content": lambda original, evil: put(evil, ".", END, stripped(original)),
    "XSW6 signed original inside the copied Signature": lambda original, evil: put(evil, "ds:Signature", END, original),
    "XSW7 signed original in Extensions": lambda original, evil: put(stripped(evil), ".", 1, wrapped("samlp:Extensions", original)),
    "XSW8 original in a ds:Object": lambda original, evil: put(evil, "ds:Signature", END, wrapped("ds:Object", stripped(original))),
}
EVILS = {"unregistered ACS": evil_acs, "another signing SP": other_sp}


@pytest.mark.parametrize("evil_change", EVILS.values(), ids=EVILS)
@pytest.mark.parametrize("wrap", XSW.values(), ids=XSW)
def test_signature_wrapping_is_refused(wrap, evil_change, client, signer, other):
    original = ET.fromstring(signed_request(signer)[1])
    evil = copy.deepcopy(original)
    evil.set("ID", "id-evil")
    evil_change(evil)
    assert_refused(post(client, serialise(wrap(original, evil))), *SIGNATURE_REFUSALS)


# --- comments, DTDs, CDATA, processing instructions --------------------------------------------

NAMEID = "alice@example.com.evil.example"  # what the SP signed; a comment-blind reader sees alice@example.com
BILLION_LAUGHS = ('<!DOCTYPE r [<!ENTITY l0 "ha">'
                  + "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10)) + "]>")


def edited(path: str, change):
    """Apply `change` to the element at `path` of the signed request."""
    def inject(xml: str) -> str:
        root = ET.fromstring(xml)
        change(root.find(path, NS))
        return serialise(root)
    return inject


def comment_after(at: int):
    """Split the element's text with an empty comment after `at` characters."""
    def change(element: ET.Element) -> None:
        comment = ET.Comment("")
        element.text, comment.tail = element.text[:at], element.text[at:]
        element.insert(0, comment)
    return change


def prolog(text: str):
    return lambda xml: text + serialise(ET.fromstring(xml))


def issuer_as(text: str, doctype: str = ""):
    """The Issuer written as `text` (an entity reference, a CDATA section), after `doctype`."""
    return lambda xml: doctype + serialise(ET.fromstring(xml)).replace(f">{SP_ENTITY}<", f">{text}<")


def utf16(inject):
    """The same injection, in a document encoded as UTF-16 (little-endian, no byte order mark)."""
    return lambda xml: ('<?xml version="1.0" encoding="UTF-16"?>' + inject(xml)).encode("utf-16-le")


COMMENTS = "XML comments are not accepted"
INJECTIONS = {
    "comment in Issuer": (edited("saml:Issuer", comment_after(len("https://sp.example"))), COMMENTS),
    "comment in Subject NameID": (edited("saml:Subject/saml:NameID", comment_after(len("alice@example.com"))), COMMENTS),
    "comment in NameIDPolicy": (edited("samlp:NameIDPolicy", lambda policy: policy.append(ET.Comment(" x "))), COMMENTS),
    "comment in Issuer, in UTF-16": (utf16(edited("saml:Issuer", comment_after(len("https://sp.example")))), COMMENTS),
    "comment before the root": (prolog("<!-- x -->"), COMMENTS),
    "CDATA in Issuer": (issuer_as(f"<![CDATA[{SP_ENTITY}]]>"), "CDATA sections are not accepted"),
    "processing instruction before the root": (prolog('<?xml-stylesheet href="https://evil.example/x"?>'),
                                               "processing instructions are not accepted"),
    "DOCTYPE": (prolog("<!DOCTYPE AuthnRequest>"), "DOCTYPE"),
    "billion laughs": (issuer_as("&l9;", BILLION_LAUGHS), "DOCTYPE"),
    "external entity (XXE)": (issuer_as("&x;", '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'), "DOCTYPE"),
}


@pytest.mark.parametrize(("inject", "reason"), INJECTIONS.values(), ids=INJECTIONS)
def test_comments_dtds_and_processing_instructions_are_refused(inject, reason, client, signer):
    _, xml = signed_request(signer, subject=saml.Subject(name_id=saml.NameID(text=NAMEID)),
                            name_id_policy=samlp.NameIDPolicy(format=saml.NAMEID_FORMAT_PERSISTENT, allow_create="true"))
    assert "root:" not in assert_refused(post(client, inject(xml)), reason)  # nothing was read


# --- HTTP-Redirect: the signature is in the query ----------------------------------------------


def redirect_query(sp, xml: str) -> dict:
    info = sp.apply_binding(BINDING_HTTP_REDIRECT, xml, SSO[BINDING_HTTP_REDIRECT], "rs-1", sign=True, sigalg=RSA_SHA256)
    return dict(parse_qsl(urlsplit(dict(info["headers"])["Location"]).query))


def new_id(query: dict) -> str:
    """The signed SAMLRequest with another ID: a request that was never signed."""
    xml = zlib.decompress(base64.b64decode(query["SAMLRequest"]), -15).decode()
    return deflate_and_base64_encode(xml.replace(' ID="', ' ID="x', 1)).decode()


QUERY_TAMPERS = {
    "SAMLRequest changed": lambda query, forged: {**query, "SAMLRequest": new_id(query)},
    "SigAlg changed to rsa-sha1": lambda query, forged: {**query, "SigAlg": xmldsig.SIG_RSA_SHA1},
    "SigAlg changed to hmac-sha1": lambda query, forged: {**query, "SigAlg": "http://www.w3.org/2000/09/xmldsig#hmac-sha1"},
    "Signature from another key": lambda query, forged: {**query, "Signature": forged["Signature"]},
    "Signature missing": lambda query, forged: {k: v for k, v in query.items() if k != "Signature"},
    "Signature and SigAlg missing": lambda query, forged: {k: v for k, v in query.items() if k not in ("Signature", "SigAlg")},
}


@pytest.mark.parametrize("tamper", QUERY_TAMPERS.values(), ids=QUERY_TAMPERS)
def test_a_tampered_redirect_query_is_refused(tamper, app, client, tmp_path):
    impostor, signer = impostor_and_signer(app, tmp_path, client)
    _, xml = signer.create_authn_request(SSO[BINDING_HTTP_REDIRECT], sign=False)  # the query carries the signature
    query = redirect_query(signer, str(xml))
    answer = client.get("/saml/sso/redirect", query_string=tamper(query, redirect_query(impostor, str(xml))))
    assert_refused(answer, *SIGNATURE_REFUSALS, WEAK_ALGORITHM)


# --- replay ------------------------------------------------------------------------------------


@pytest.mark.parametrize("binding", [BINDING_HTTP_REDIRECT, BINDING_HTTP_POST])
def test_a_signed_request_is_answered_once(binding, client, signer):
    request_id, answer, request = send(client, signer, binding, sign=True)
    assert read_response(signer, posted(answer), request_id).name_id.text
    _, again, _ = send(client, signer, binding, sign=True, request=request)
    assert "already answered" in refused(again)
    db.session.rollback()
    assert list(db.session.scalars(select(SeenRequest.id))) == [request_id] and len(app_session_sids()) == 1


# --- inbound.check on its own: the decoding rules ------------------------------------------------

XML = b'<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="id-1"/>'


def test_inbound_check_returns_the_xml_each_binding_carries():
    wrapped_lines = "\n".join(b64(XML)[i:i + 76] for i in range(0, len(b64(XML)), 76))
    assert inbound.check(wrapped_lines, BINDING_HTTP_POST) == XML
    assert inbound.check(deflate_and_base64_encode(XML).decode(), BINDING_HTTP_REDIRECT) == XML
    assert inbound.check(XML, BINDING_SOAP) == XML


REFUSED_ENCODINGS = {
    "not base64": ("!!", BINDING_HTTP_POST, "not base64"),
    "Redirect without DEFLATE": (b64(XML), BINDING_HTTP_REDIRECT, "not DEFLATE-compressed"),
    "truncated DEFLATE": (b64(zlib.compress(XML)[2:-8]), BINDING_HTTP_REDIRECT, "truncated"),
    "DEFLATE over POST": (deflate_and_base64_encode(XML).decode(), BINDING_HTTP_POST, "must not be DEFLATE-compressed"),
    "DEFLATE bomb": (deflate_and_base64_encode(b"<a>" + b" " * 10**7 + b"</a>").decode(), BINDING_HTTP_REDIRECT, "larger than"),
    "too long to decode": ("A" * (2 * inbound.MAX_XML + 4), BINDING_HTTP_POST, "larger than"),
    "not XML": (b64(b"<a>"), BINDING_HTTP_POST, "not well-formed XML"),
    "comment over SOAP": (XML.replace(b"/>", b"><!-- x --></samlp:LogoutRequest>"), BINDING_SOAP, "comments"),
    "unknown binding": (b64(XML), "urn:oasis:names:tc:SAML:2.0:bindings:PAOS", "not accepted over the binding"),
}


@pytest.mark.parametrize(("message", "binding", "reason"), REFUSED_ENCODINGS.values(), ids=REFUSED_ENCODINGS)
def test_inbound_check_refuses_with_a_one_line_reason(message, binding, reason):
    with pytest.raises(inbound.Rejected, match=reason) as refused_:
        inbound.check(message, binding)
    assert isinstance(refused_.value, ValueError) and isinstance(refused_.value, messages.Refused)  # what the readers catch
    assert "\n" not in str(refused_.value)
