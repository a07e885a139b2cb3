"""SAML sign-in with a directory session, measured in-process: `.venv/bin/python bench/saml_sso.py [--requests N]`.

Each request is a fresh AuthnRequest (HTTP-Redirect) from one registered SP, answered with a
Response whose assertion and envelope are both signed (xmlsec1, RSA-SHA256). The requests are
made up front by pysaml2's SP, so only the IdP's work is timed. Uses a fresh SQLite file, or
IDP_BENCH_DATABASE_URL.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from harness import bench_app, rate
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.sigver import get_xmlsec_binary

from directory import accounts
from idp.saml import certs, registry
from tests.factories import make_sp_metadata

ENTITY = "https://sp.example/metadata"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with bench_app() as (app, clock, database), tempfile.TemporaryDirectory() as folder:
        clock.advance(seconds=(datetime.now(UTC) - clock.now()).total_seconds())  # pysaml2 dates by the wall clock
        http = app.test_client()
        with app.app_context():
            accounts.create_user("alice", "correct horse battery", now=clock.now())
            registry.add_sp(make_sp_metadata(Path(folder), ENTITY), now=clock.now(), actor_label="bench")
            idp_metadata = http.get("/saml/metadata").data.decode()
        sp = _sp(Path(folder), idp_metadata)
        page = http.get("/login").get_data(as_text=True)
        csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
        http.post("/login", data={"username": "alice", "password": "correct horse battery", "csrf_token": csrf})
        sso = f"{app.config['ISSUER']}/saml/sso/redirect"
        urls = [_request_url(sp, sso) for _ in range(args.requests)]
        answers = iter(urls)
        per_s, us = rate(len(urls), lambda: _expect_post(http.get(next(answers))))
        meta_per_s, meta_us = rate(args.requests, lambda: http.get("/saml/metadata"))
    print(f"database                          {database}")
    print(f"SSO with a session (signed x2)    {per_s:.0f} requests/s on one core ({us / 1000:.1f} ms each)")
    print(f"metadata (cached bytes)           {meta_per_s:.0f} requests/s ({meta_us:.0f} µs each)")


def _sp(folder: Path, idp_metadata: str) -> Saml2Client:
    pair = certs.load(folder, host="sp.example", now=datetime.now(UTC))
    return Saml2Client(config=SPConfig().load({
        "entityid": ENTITY,
        "service": {"sp": {"endpoints": {"assertion_consumer_service": [("https://sp.example/acs", BINDING_HTTP_POST)]}}},
        "key_file": str(pair.key_file), "cert_file": str(pair.cert_file), "xmlsec_binary": get_xmlsec_binary(),
        "metadata": {"inline": [idp_metadata]},
    }))


def _request_url(sp: Saml2Client, sso: str) -> str:
    _, request = sp.create_authn_request(sso)
    info = sp.apply_binding(BINDING_HTTP_REDIRECT, str(request), sso, "bench")
    location = urlsplit(dict(info["headers"])["Location"])
    return f"{location.path}?{location.query}"


def _expect_post(response) -> None:
    assert response.status_code == 200 and b"SAMLResponse" in response.data, response.get_data(as_text=True)[-800:]


if __name__ == "__main__":
    main()
