"""Portal hot path, measured in-process: `.venv/bin/python bench/portal.py [--requests N]`.

Reports the cost of one sign-in (argon2id dominates), of an authenticated page request and of
the page script's two calls (session status, activity report), and counts the database writes
those requests made (the throttle allows one a minute; the status call never writes).
Uses a fresh SQLite file, or IDP_BENCH_DATABASE_URL.
"""

from __future__ import annotations

import argparse
import re
import time

from harness import bench_app
from sqlalchemy import event

from directory import accounts
from directory.db import db


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    with bench_app() as (app, clock, database):
        with app.app_context():
            accounts.create_user("bench", "bench password", now=clock.now())
            writes = []
            event.listen(db.engine, "before_cursor_execute", lambda c, cur, sql, *a: writes.append(sql) if not sql.lstrip().upper().startswith("SELECT") else None)

        client = app.test_client()
        token = re.search(rb'name="csrf_token" value="([^"]+)"', client.get("/login").data).group(1).decode()
        sign_ins = 20
        started = time.perf_counter()
        for _ in range(sign_ins):
            client.post("/login", data={"csrf_token": token, "username": "bench", "password": "bench password"})
            token = re.search(rb'name="csrf_token" value="([^"]+)"', client.get("/logout").data).group(1).decode()
        sign_in_ms = (time.perf_counter() - started) / sign_ins * 1000

        pages = [  # signed in, `token` is the CSRF token from the last sign-in
            ("portal GET /", lambda: client.get("/")),
            ("GET /session/status", lambda: client.get("/session/status")),
            ("POST /session/activity", lambda: client.post("/session/activity", data={"csrf_token": token})),
        ]
        results = [(label, *measure(send, args.requests, clock, writes)) for label, send in pages]
    print(f"database           {database}")
    print(f"sign-in            {sign_in_ms:.1f} ms each (argon2id 19 MiB, 2 passes, plus a page load)")
    for label, per_second, written in results:
        print(f"{label:<24} {per_second:6.0f} requests/s on one core, {written} database writes "
              f"for {args.requests} requests over {args.requests // 100 * 30} s of app time")


def measure(send, requests: int, clock, writes: list) -> tuple[float, int]:
    """Requests per second and the writes they caused, 100 requests every 30 s of app time."""
    writes.clear()
    started = time.perf_counter()
    for index in range(requests):
        if index % 100 == 0:
            clock.advance(seconds=30)
        assert send().status_code == 200
    return requests / (time.perf_counter() - started), len(writes)


if __name__ == "__main__":
    main()
