"""A look at every inbound SAML message before pysaml2 parses it.

Exclusive canonicalization drops XML comments, so a comment slipped into a signed NameID or
Issuer leaves the signature valid while a parser may read a shorter value ("alice" from
"alice<!---->.evil"). SAML messages never need comments, DTDs, CDATA or processing
instructions, so any `<!` or a `<?` other than the XML declaration is refused outright,
which also shuts out entity expansion. The decoded size is bounded (DEFLATE bombs).
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib

from saml2 import BINDING_HTTP_REDIRECT, BINDING_SOAP

from idp.saml.messages import Refused

MAX_XML = 256 * 1024  # bytes, decoded: a SAML request or response is a few kilobytes
_DECLARATION = re.compile(rb"^\s*<\?xml[^?]*\?>")


def check(message: str, binding: str) -> None:
    """Refuse (`Refused`) a message that is not plain SAML XML, whatever its signature says."""
    xml = _decoded(message, binding)
    body = _DECLARATION.sub(b"", xml, count=1)
    if b"<!" in body:
        raise Refused("XML comments, DTDs and CDATA are not accepted in SAML messages")
    if b"<?" in body:
        raise Refused("processing instructions are not accepted in SAML messages")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused("the message is not UTF-8 XML") from None


def _decoded(message: str, binding: str) -> bytes:
    if binding == BINDING_SOAP:
        raw = message.encode()
    else:
        try:
            raw = base64.b64decode(message, validate=False)
        except (binascii.Error, ValueError):
            raise Refused("the message is not base64") from None
        if binding == BINDING_HTTP_REDIRECT:
            inflater = zlib.decompressobj(-15)
            try:
                raw = inflater.decompress(raw, MAX_XML + 1)
            except zlib.error:
                raise Refused("the message is not DEFLATE-compressed") from None
    if len(raw) > MAX_XML:
        raise Refused(f"the message is larger than {MAX_XML} bytes")
    return raw
