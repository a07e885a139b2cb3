"""SAML 2.0 identity provider: pysaml2 wiring (server.py), sign-in (sso.py, views.py), Single
Logout (logout.py, slo_views.py), service providers (models.py, registry.py), the signing
certificate (certs.py)."""

import warnings

from cryptography.utils import CryptographyDeprecationWarning

with warnings.catch_warnings():
    # pysaml2 7.5 reaches CFB (which it never uses for signing) at its old place in
    # cryptography; on import that prints a deprecation warning to every command's stderr.
    warnings.filterwarnings("ignore", message="CFB has been moved", category=CryptographyDeprecationWarning)
    import saml2.cryptography.symmetric  # noqa: F401

from idp.saml import models, slo_views, views  # noqa: E402,F401  (models: the table joins db.metadata)


def init_app(app) -> None:
    app.register_blueprint(views.bp)
    app.register_blueprint(slo_views.bp)
