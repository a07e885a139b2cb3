"""Token endpoint and userinfo, measured in-process: `.venv/bin/python bench/oidc_endpoints.py [--requests N]`.

Client secrets are checked as SHA-256 digests, so a confidential client's token request costs
no slow hash. Uses a fresh SQLite file, or IDP_BENCH_DATABASE_URL.
"""

from __future__ import annotations

import argparse
import base64

from harness import bench_app, rate

from idp.oidc import clients


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    with bench_app() as (app, clock, database):
        with app.app_context():
            spec = clients.Registration(name="Bench", redirect_uris=[], grant_types=["client_credentials"])
            client, secret = clients.register(spec, now=clock.now())
            client_id = client.client_id
        basic = {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}
        http = app.test_client()
        token = http.post("/oidc/token", data={"grant_type": "client_credentials"}, headers=basic).json["access_token"]
        tokens_per_s, token_us = rate(args.requests, lambda: http.post("/oidc/token", data={"grant_type": "client_credentials"}, headers=basic))
        intro_per_s, intro_us = rate(args.requests, lambda: http.post("/oidc/introspect", data={"token": token}, headers=basic))
        jwks_per_s, jwks_us = rate(args.requests, lambda: http.get("/oidc/jwks"))
    print(f"database                    {database}")
    print(f"token (client_credentials)  {tokens_per_s:.0f} requests/s on one core ({token_us:.0f} µs each)")
    print(f"introspection               {intro_per_s:.0f} requests/s ({intro_us:.0f} µs each)")
    print(f"JWKS (cached bytes)         {jwks_per_s:.0f} requests/s ({jwks_us:.0f} µs each)")


if __name__ == "__main__":
    main()
