"""The first look at every inbound SAML message, before pysaml2 parses it.

`check(message, binding)` decodes the message as its binding carries it (HTTP-POST: base64;
HTTP-Redirect: base64 of raw DEFLATE; SOAP: the XML itself), at most `MAX_XML` bytes of XML, and
refuses XML comments, a DOCTYPE (so any entity declaration: XXE, billion laughs), CDATA sections
and processing instructions. Why: the exclusive canonicalization that SAML signatures use drops
comments, so a comment slipped into a signed NameID or Issuer leaves the signature valid while a
parser may read a shorter value ("alice" from "alice<!---->.evil"); SAML needs none of the rest.
The XML is read by expat, the parser pysaml2 uses, from the very bytes pysaml2 will parse, so a
comment cannot hide in another encoding (UTF-16) or behind a DEFLATE layer that pysaml2 undoes.
A refusal raises `Rejected` (a ValueError and a `messages.Refused`) with a one-line reason that is
safe to show. Call it for every inbound AuthnRequest, LogoutRequest and LogoutResponse.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from xml.parsers import expat

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, BINDING_SOAP

from idp.saml.messages import Refused

MAX_XML = 256 * 1024  # bytes, decoded: a SAML request or response is a few kilobytes
_DSIG = "http://www.w3.org/2000/09/xmldsig#"
# What a peer may sign with: the SHA-2 family only. SHA-1 (and MD5) collide; HMAC needs a secret we do not share.
SIGNATURE_ALGORITHMS = frozenset(
    f"http://www.w3.org/2001/04/xmldsig-more#{kind}-{digest}" for kind in ("rsa", "ecdsa") for digest in ("sha256", "sha384", "sha512")
)
DIGEST_ALGORITHMS = frozenset({
    "http://www.w3.org/2001/04/xmlenc#sha256", "http://www.w3.org/2001/04/xmldsig-more#sha384", "http://www.w3.org/2001/04/xmlenc#sha512",
})


class Rejected(Refused, ValueError):
    """The message is not read any further; the reason is one line, safe to show."""


def check(message: str | bytes, binding: str, *, sigalg: str | None = None) -> bytes:
    """The message's XML, once it passed the checks above; else `Rejected`. `sigalg`: the
    HTTP-Redirect binding's SigAlg parameter, when there is one."""
    if sigalg is not None and sigalg not in SIGNATURE_ALGORITHMS:
        raise Rejected(f"the signature algorithm {sigalg[:100]} is not accepted (RSA or ECDSA with SHA-256 or stronger)")
    if binding == BINDING_SOAP:
        xml = message.encode() if isinstance(message, str) else message
    elif binding in (BINDING_HTTP_POST, BINDING_HTTP_REDIRECT):
        raw = _base64(message)
        if binding == BINDING_HTTP_REDIRECT:
            xml = _inflate(raw)
        elif _inflates(raw):  # pysaml2 inflates a POSTed message when it can: it would read something else
            raise Rejected("an HTTP-POST SAML message must not be DEFLATE-compressed")
        else:
            xml = raw
    else:
        raise Rejected(f"SAML messages are not accepted over the binding {binding}")
    if len(xml) > MAX_XML:
        raise Rejected(f"the message is larger than {MAX_XML} bytes")
    # A SOAP body arrives as text, which pysaml2 parses as such (whatever encoding it declares).
    _refuse_markup(message if binding == BINDING_SOAP and isinstance(message, str) else xml)
    return xml


def _base64(message: str | bytes) -> bytes:
    compact = b"".join((message.encode() if isinstance(message, str) else message).split())
    if len(compact) > 2 * MAX_XML:
        raise Rejected(f"the message is larger than {MAX_XML} bytes")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise Rejected("the message is not base64") from None


def _inflate(raw: bytes) -> bytes:
    """Raw DEFLATE, stopping one byte past MAX_XML (which the caller refuses)."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        xml = inflater.decompress(raw, MAX_XML + 1)
    except zlib.error:
        raise Rejected("the message is not DEFLATE-compressed, as the HTTP-Redirect binding requires") from None
    if len(xml) <= MAX_XML and not inflater.eof:
        raise Rejected("the message's DEFLATE data is truncated")
    return xml


def _inflates(raw: bytes) -> bool:
    try:
        _inflate(raw)
    except Rejected:
        return False
    return True


def _check_algorithm(name: str, attributes: dict) -> None:
    """An XML signature made with a weak algorithm is refused before anyone verifies it."""
    allowed = {f"{_DSIG} SignatureMethod": SIGNATURE_ALGORITHMS, f"{_DSIG} DigestMethod": DIGEST_ALGORITHMS}.get(name)
    if allowed is not None and attributes.get("Algorithm") not in allowed:
        raise Rejected(f"the signature algorithm {str(attributes.get('Algorithm'))[:100]} is not accepted "
                       "(RSA or ECDSA with SHA-256 or stronger)")


def _refuse(reason: str):
    def handler(*_):
        raise Rejected(reason)
    return handler


def _refuse_markup(xml: str | bytes) -> None:
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.StartElementHandler = _check_algorithm
    parser.CommentHandler = _refuse("XML comments are not accepted in SAML messages")
    parser.StartDoctypeDeclHandler = _refuse("DTDs and entity declarations (DOCTYPE) are not accepted in SAML messages")
    parser.StartCdataSectionHandler = _refuse("CDATA sections are not accepted in SAML messages")
    parser.ProcessingInstructionHandler = _refuse("XML processing instructions are not accepted in SAML messages")
    try:
        parser.Parse(xml, True)
    except expat.ExpatError as error:
        raise Rejected(f"the message is not well-formed XML ({expat.ErrorString(error.code)})") from None
