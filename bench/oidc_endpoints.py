"""Token endpoint and userinfo, measured in-process: `.venv/bin/python bench/oidc_endpoints.py [--requests N]`.

Client secrets are checked as SHA-256 digests, so a confidential client's token request costs
no slow hash. Uses a fresh SQLite file, or IDP_BENCH_DATABASE_URL.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from directory import accounts  # noqa: E402
from directory.clock import FrozenClock  # noqa: E402
from directory.db import db  # noqa: E402
from idp import create_app  # noqa: E402
from idp.oidc import clients  # noqa: E402


def rate(count: int, run) -> tuple[float, float]:
    started = time.perf_counter()
    for _ in range(count):
        run()
    elapsed = time.perf_counter() - started
    return count / elapsed, elapsed / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    clock = FrozenClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    with tempfile.TemporaryDirectory() as tmp:
        url = os.environ.get("IDP_BENCH_DATABASE_URL") or f"sqlite:///{tmp}/bench.sqlite3"
        app = create_app(
            {"SECRET_KEY": "b" * 40, "DATABASE_URL": url, "SWEEP_INTERVAL": 0, "DELIVERY_INTERVAL": 0, "CERTS_PATH": f"{tmp}/certs"},
            clock=clock,
        )
        with app.app_context():
            db.drop_all()
            db.create_all()
            accounts.ensure_builtin_roles()
            spec = clients.Registration(name="Bench", redirect_uris=[], grant_types=["client_credentials"])
            client, secret = clients.register(spec, now=clock.now())
            client_id = client.client_id
        basic = {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}
        http = app.test_client()
        token = http.post("/oidc/token", data={"grant_type": "client_credentials"}, headers=basic).json["access_token"]
        tokens_per_s, token_us = rate(args.requests, lambda: http.post("/oidc/token", data={"grant_type": "client_credentials"}, headers=basic))
        intro_per_s, intro_us = rate(args.requests, lambda: http.post("/oidc/introspect", data={"token": token}, headers=basic))
        jwks_per_s, jwks_us = rate(args.requests, lambda: http.get("/oidc/jwks"))
        with app.app_context():
            db.drop_all()
    print(f"database                    {url.split(':')[0]}")
    print(f"token (client_credentials)  {tokens_per_s:.0f} requests/s on one core ({token_us:.0f} µs each)")
    print(f"introspection               {intro_per_s:.0f} requests/s ({intro_us:.0f} µs each)")
    print(f"JWKS (cached bytes)         {jwks_per_s:.0f} requests/s ({jwks_us:.0f} µs each)")


if __name__ == "__main__":
    main()
