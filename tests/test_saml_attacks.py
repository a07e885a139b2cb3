"""Attacked SAML LogoutRequests and AuthnRequests end nothing and are answered with a clear error.

The attacker holds one message the SP really signed: a LogoutRequest naming a session that
does not exist. Each attack reuses that signature for a message naming Alice's real session
(signature wrapping), or slips an XML comment into a signed value. A control shows that the
untouched message, passed through the same XML rewriting, still verifies: so a refusal below
is the defence at work, not damage done by the test's own rewriting.
"""

from __future__ import annotations

import base64
import io
import re
import xml.etree.ElementTree as ET

import pytest

from tests.factories import make_user
from tests.test_saml_slo import SLO, live_directory_sessions, register
from tests.test_saml_sso import (
    real_time,  # noqa: F401  (an autouse fixture)
    )

DS = "http://www.w3.org/2000/09/xmldsig#"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"


@pytest.fixture(autouse=True)
def own_prefixes():
    """`tree` registers the document's prefixes with ElementTree, which is process-wide state
    (pysaml2 serialises through it too): put the table back for the tests that follow."""
    saved = dict(ET._namespace_map)
    yield
    ET._namespace_map.clear()
    ET._namespace_map.update(saved)


@pytest.fixture(autouse=True)
def alice(app, clock):
    return make_user("alice", email="alice@example.com", now=clock.now())


@pytest.fixture
def wiki(app, tmp_path, client, portal):
    sp = register(app, tmp_path, client, "wiki")
    portal.login()
    sp.sign_in(client)
    return sp


def tree(xml: str) -> ET.Element:
    """Parse keeping the document's namespace prefixes, so that rewriting changes nothing else."""
    for _, (prefix, uri) in ET.iterparse(io.StringIO(xml), events=("start-ns",)):
        if not re.fullmatch(r"ns\d+", prefix):  # ElementTree hands out ns0, ns1... itself, in document order
            ET.register_namespace(prefix, uri)
    return ET.fromstring(xml)


def text(root: ET.Element) -> str:
    return ET.tostring(root, encoding="unicode")


def post(client, xml: str):
    return client.post("/saml/slo/post", data={"SAMLRequest": base64.b64encode(xml.encode()).decode()})


def signed_for_nobody(wiki) -> ET.Element:
    """The message the attacker holds: really signed by the SP, naming no live session."""
    _, signed = wiki.logout_request(session_index="no-such-session")
    return tree(str(signed))


def evil_copy(original: ET.Element, wiki) -> ET.Element:
    """The same request naming Alice's real session, with a new ID and no signature."""
    evil = ET.fromstring(ET.tostring(original))
    evil.remove(evil.find(f"{{{DS}}}Signature"))
    evil.set("ID", "evil-" + original.get("ID"))
    evil.find(f"{{{SAMLP}}}SessionIndex").text = wiki.session_index
    return evil


def _xsw_signature_moved_to_evil_root(original, evil):  # XSW1: evil root, original inside its Signature
    signature = original.find(f"{{{DS}}}Signature")
    evil.insert(1, signature)
    obj = ET.SubElement(signature, f"{{{DS}}}Object")
    original.remove(signature)
    obj.append(original)
    return evil


def _xsw_original_after_evil_signature(original, evil):  # XSW2: original as a sibling after the signature
    signature = original.find(f"{{{DS}}}Signature")
    original.remove(signature)
    evil.insert(1, signature)
    evil.append(original)
    return evil


def _xsw_original_in_extensions(original, evil):  # XSW3/4: original hidden in the evil root's Extensions
    signature = original.find(f"{{{DS}}}Signature")
    evil.insert(1, signature)
    extensions = ET.Element(f"{{{SAMLP}}}Extensions")
    extensions.append(original)
    evil.insert(2, extensions)
    return evil


def _xsw_original_signed_evil_unsigned_sibling(original, evil):  # XSW5/6: evil copy wrapped inside the signed original
    extensions = ET.Element(f"{{{SAMLP}}}Extensions")
    extensions.append(evil)
    original.insert(2, extensions)
    return original


def _xsw_evil_first_then_original(original, evil):  # XSW7: evil root holding the untouched original as first child
    evil.insert(0, original)
    return evil


def _xsw_signature_reused_without_original(original, evil):  # XSW8: the signature alone, its reference dangling
    evil.insert(1, original.find(f"{{{DS}}}Signature"))
    return evil


WRAPPINGS = [
    _xsw_signature_moved_to_evil_root, _xsw_original_after_evil_signature, _xsw_original_in_extensions,
    _xsw_original_signed_evil_unsigned_sibling, _xsw_evil_first_then_original, _xsw_signature_reused_without_original,
]


def test_control_the_rewritten_but_untouched_signed_request_still_verifies(wiki, client):
    answer = post(client, text(signed_for_nobody(wiki)))
    assert answer.status_code == 303  # read, verified and answered (UnknownPrincipal), not refused
    assert live_directory_sessions() == 1


@pytest.mark.parametrize("wrap", WRAPPINGS, ids=lambda f: f.__name__.strip("_"))
def test_a_wrapped_signature_never_signs_alice_out(wrap, wiki, client):
    original = signed_for_nobody(wiki)
    attacked = wrap(original, evil_copy(original, wiki))
    answer = post(client, text(attacked))
    assert answer.status_code == 400 and b"cannot be carried out" in answer.data
    assert live_directory_sessions() == 1


def test_a_comment_slipped_into_a_signed_name_id_is_refused(wiki, client):
    signed = str(wiki.logout_request()[1])
    name = wiki.name_id.text
    injected = signed.replace(f">{name}<", f">{name[:8]}<!-- -->{name[8:]}<", 1)
    assert injected != signed
    answer = post(client, injected)
    assert answer.status_code == 400 and b"comments" in answer.data
    assert live_directory_sessions() == 1


def test_a_doctype_with_entities_is_refused_before_parsing(wiki, client):
    signed = str(wiki.logout_request()[1])
    body = signed.split("?>", 1)[1] if signed.startswith("<?xml") else signed
    bomb = '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>' + body
    answer = post(client, bomb)
    assert answer.status_code == 400 and b"DTDs" in answer.data
    assert live_directory_sessions() == 1


def test_an_oversized_redirect_message_is_refused(wiki, client):
    import zlib

    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = bomb.compress(b"<a>" + b" " * (2 << 20) + b"</a>") + bomb.flush()
    answer = client.get(SLO["urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"].replace("http://localhost", ""),
                        query_string={"SAMLRequest": base64.b64encode(payload).decode()})
    assert answer.status_code == 400 and b"larger than" in answer.data


@pytest.mark.parametrize("binding", ["post", "redirect"])
def test_a_logout_request_really_signed_with_sha1_is_refused(binding, wiki, client):
    from saml2.xmldsig import DIGEST_SHA1, SIG_RSA_SHA1

    destination = SLO[f"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-{binding.capitalize() if binding == 'redirect' else 'POST'}"]
    request_id, request = wiki.client.create_logout_request(destination, "http://localhost/saml/metadata", name_id=wiki.name_id,
                                                            session_indexes=[wiki.session_index], sign=False)
    if binding == "post":
        signed = wiki.client.sign(request, sign_alg=SIG_RSA_SHA1, digest_alg=DIGEST_SHA1)
        answer = post(client, signed)
    else:
        info = wiki.client.apply_binding(binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect", msg_str=str(request),
                                         destination=destination, relay_state="", sign=True, sigalg=SIG_RSA_SHA1)
        answer = client.get(dict(info["headers"])["Location"].replace("http://localhost", ""))
    assert answer.status_code == 400 and b"is not accepted" in answer.data
    assert live_directory_sessions() == 1
