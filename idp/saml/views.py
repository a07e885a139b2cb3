"""SAML endpoints. So far: the IdP's metadata."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from idp import web_session
from idp.saml import server

bp = Blueprint("saml", __name__)

METADATA_TYPE = "application/samlmetadata+xml"


@bp.get("/saml/metadata")
@web_session.sessionless
def metadata():
    return Response(server.metadata_bytes(current_app), mimetype=METADATA_TYPE,
                    headers={"Cache-Control": "public, max-age=3600"})
