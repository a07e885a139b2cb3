"""pysaml2 wiring: the only module that builds a `saml2` configuration or server.

Everything the IdP signs uses RSA-SHA256 with SHA-256 digests (pysaml2's default is SHA-1).
"""

from __future__ import annotations

import hashlib
import threading

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, BINDING_SOAP
from saml2.config import IdPConfig
from saml2.extension.algsupport import NAMESPACE as ALGSUPPORT
from saml2.extension.algsupport import DigestMethod, SigningMethod
from saml2.metadata import do_key_descriptor, entity_descriptor, metadata_tostring_fix, sign_entity_descriptor
from saml2.sdb import SessionStorage
from saml2.server import Server
from saml2.sigver import get_xmlsec_binary, security_context
from saml2.validate import valid_instance
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from idp.saml import certs
from idp.saml.models import NAMEID_FORMATS

SIGNING_ALGORITHM = SIG_RSA_SHA256
DIGEST_ALGORITHM = DIGEST_SHA256
_XS = {"xs": "http://www.w3.org/2001/XMLSchema"}


def entity_id(app) -> str:
    return f"{app.config['ISSUER']}/saml/metadata"


def config_dict(app, sp_metadata: list[str] = (), *, want_signed: bool = False) -> dict:
    """pysaml2's IdP configuration; `sp_metadata` are the registered SPs' metadata documents.
    `want_signed`: AuthnRequests must carry a valid signature (for an SP that signs)."""
    issuer = app.config["ISSUER"]
    pair = certs.current(app)
    config = {
        "entityid": entity_id(app),
        "service": {
            "idp": {
                "endpoints": {
                    "single_sign_on_service": [
                        (f"{issuer}/saml/sso/redirect", BINDING_HTTP_REDIRECT),
                        (f"{issuer}/saml/sso/post", BINDING_HTTP_POST),
                    ],
                    "single_logout_service": [
                        (f"{issuer}/saml/slo/redirect", BINDING_HTTP_REDIRECT),
                        (f"{issuer}/saml/slo/post", BINDING_HTTP_POST),
                        (f"{issuer}/saml/slo/soap", BINDING_SOAP),
                    ],
                },
                "name_id_format": list(NAMEID_FORMATS.values()),
                # Whether a given SP must sign is its own setting (ServiceProvider.wants_signed_requests).
                "want_authn_requests_signed": want_signed,
                "sign_response": True,
                "sign_assertion": True,
            },
        },
        "key_file": str(pair.key_file),
        "cert_file": str(pair.cert_file),
        "xmlsec_binary": get_xmlsec_binary(),
        "signing_algorithm": SIGNING_ALGORITHM,
        "digest_algorithm": DIGEST_ALGORITHM,
    }
    if sp_metadata:
        config["metadata"] = {"inline": list(sp_metadata)}
    return config


def idp_config(app, sp_metadata: list[str] = (), *, want_signed: bool = False) -> IdPConfig:
    return IdPConfig().load(config_dict(app, sp_metadata, want_signed=want_signed))


class _NoAssertionStore(SessionStorage):
    """pysaml2 keeps every assertion it issues in memory, for logout bookkeeping of its own;
    ours is in the database, and a server that lives across requests must not grow."""

    def store_assertion(self, assertion, to_sign):
        pass


def server(app, *, want_signed: bool = False) -> Server:
    """A pysaml2 IdP server knowing every registered SP. Building one costs ~150 ms (every SP's
    metadata parsed, the private key loaded and checked), so each thread keeps its own (a
    Server is not thread-safe) until the SPs or the signing certificate change."""
    from idp.saml import registry

    metadata = [sp.metadata_xml for sp in registry.all_sps()]
    version = (certs.current(app).cert_file, hashlib.sha256("\0".join(metadata).encode()).digest())
    cache = app.extensions.setdefault("idp.saml.servers", {})
    slot = (threading.get_ident(), want_signed)
    cached = cache.get(slot)
    if cached is None or cached[0] != version:
        built = Server(config=idp_config(app, metadata, want_signed=want_signed))
        built.session_db = _NoAssertionStore()
        cached = cache[slot] = (version, built)
    return cached[1]


def metadata_bytes(app) -> bytes:
    """The IdP's metadata, signed with RSA-SHA256. It lists no SPs, so it is built again only
    when the published certificates change (a rotation, an activation, a previous one expiring)."""
    published = tuple(pair.cert_base64 for pair in certs.published(app))
    cached = app.extensions.get("idp.saml.metadata")
    if cached is None or cached[0] != published:
        cached = app.extensions["idp.saml.metadata"] = (published, build_metadata(app))
    return cached[1]


def build_metadata(app) -> bytes:
    config = idp_config(app)
    descriptor = entity_descriptor(config)
    _advertise_only_our_algorithms(descriptor)
    _publish_other_certificates(app, descriptor)
    descriptor, signed = sign_entity_descriptor(
        descriptor, None, security_context(config), SIGNING_ALGORITHM, DIGEST_ALGORITHM,
    )
    valid_instance(descriptor)
    text = metadata_tostring_fix(descriptor, _XS, signed)
    return text if isinstance(text, bytes) else text.encode()


def _advertise_only_our_algorithms(descriptor) -> None:
    """pysaml2 lists every algorithm xmlsec1 knows (MD5 and SHA-1 among them); say only what we
    use, so SPs that read the algsupport extension sign their requests with SHA-256 too."""
    extensions = descriptor.extensions
    extensions.extension_elements = [e for e in extensions.extension_elements if e.namespace != ALGSUPPORT]
    extensions.add_extension_element(DigestMethod(algorithm=DIGEST_ALGORITHM))
    extensions.add_extension_element(SigningMethod(algorithm=SIGNING_ALGORITHM))


def _publish_other_certificates(app, descriptor) -> None:
    """pysaml2 lists only the signing certificate (`cert_file`); SPs must also find the staged one
    before it signs and the previous one while responses it signed may still arrive."""
    _, *others = certs.published(app)
    if others:
        descriptor.idpsso_descriptor.key_descriptor.extend(do_key_descriptor([p.cert_base64 for p in others], use="signing"))
