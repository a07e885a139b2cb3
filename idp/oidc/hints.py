"""Reading JWTs that others present to us (id_token_hint), defensively.

Only our own signatures, by our published keys, with RS256 or ES256: `none`, HMAC (which would
let a public key act as a shared secret), keys embedded in the header (`jwk`, `jku`, `x5u`,
`x5c`) and unknown `crit` extensions are refused before any signature is checked. Expiry is
not checked: an expired ID token is still a fine hint of who is signing out.
"""

from __future__ import annotations

import json

from flask import current_app
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.util import urlsafe_b64decode

from idp import keys

ALGORITHMS = ["RS256", "ES256"]
_FORBIDDEN_HEADERS = {"jwk", "jku", "x5u", "x5c", "crit"}


class HintError(ValueError):
    """The token is not an ID token we issued; the message says why (safe to show)."""


def read_id_token(token: str) -> dict:
    """The claims of an ID token this directory issued, or HintError."""
    header = _header(token)
    if header.get("alg") not in ALGORITHMS:
        raise HintError(f"algorithm {header.get('alg')!r} is not accepted")
    if _FORBIDDEN_HEADERS & set(header):
        raise HintError("embedded keys and critical extensions are not accepted")
    try:
        claims = dict(jwt.decode(token, keys.current(current_app).verification_keys(), algorithms=ALGORITHMS).claims)
    except (JoseError, ValueError) as error:
        raise HintError("the signature does not verify with this directory's keys") from error
    if claims.get("iss") != current_app.config["ISSUER"]:
        raise HintError("the token was issued by someone else")
    return claims


def _header(token: str) -> dict:
    try:
        encoded = token.split(".")[0]
        header = json.loads(urlsafe_b64decode(encoded.encode()))
    except (ValueError, IndexError, UnicodeDecodeError) as error:
        raise HintError("not a JWT") from error
    if not isinstance(header, dict) or token.count(".") != 2:
        raise HintError("not a signed JWT")
    return header
