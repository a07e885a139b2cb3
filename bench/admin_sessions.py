"""The admin sessions list with 100,000 sessions, measured in-process:
`.venv/bin/python bench/admin_sessions.py [--sessions N] [--requests N]`.

Bulk-inserts a directory of a few thousand users and their sessions (active, ended for every
reason, expired but not yet swept; some signed in to apps, one app rare), then times
GET /admin/sessions as an admin: the first page, a page half-way down (by cursor), and each
filter. Prints milliseconds per request and the query plans of the list's main query, so a
scan shows. Uses a fresh SQLite file, or IDP_BENCH_DATABASE_URL (PostgreSQL is ANALYZEd after
the load, as autovacuum would; SQLite is left as the app leaves it, without ANALYZE).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import timedelta

from harness import bench_app
from sqlalchemy import event, insert, select, text

from directory import accounts, listing
from directory.db import db
from directory.models import App, AppSession, DirectorySession, Role, User

PASSWORD = "bench password"
USERS = 3000
# End reasons and how often sessions end for each: password changes are rare on purpose.
REASONS = {"signed_out": 40, "idle_timeout": 35, "absolute_timeout": 10, "replaced": 5, "session_limit": 4,
           "ended_by_user": 3, "ended_by_admin": 2.5, "password_changed": 0.5}
APPS = {"CRM": 0.25, "Wiki": 0.10, "Mail": 0.05, "Payroll": 0.002}  # share of sessions signed in to each


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    with bench_app() as (app, clock, database):
        with app.app_context():
            started = time.perf_counter()
            load(args.sessions, clock.now())
            loaded = time.perf_counter() - started
            apps = dict(db.session.execute(select(App.name, App.id)).all())
            someone = db.session.scalar(select(User.username).where(User.username != "admin").order_by(User.id))
            halfway = db.session.scalars(
                select(DirectorySession).order_by(DirectorySession.last_activity_at.desc(), DirectorySession.id.desc())
                .offset(args.sessions // 2).limit(1)
            ).one()
            deep = listing.cursor_of(halfway)
        admin = signed_in_admin(app)
        cases = {
            "first page": "",
            "deep page (cursor, half-way)": f"after={deep}",
            "user": f"user={someone}",
            "status=active": "status=active",
            "status=ended": "status=ended",
            "end reason (common)": "reason=signed_out",
            "end reason (rare)": "reason=password_changed",
            "app (common)": f"app={apps['CRM']}",
            "app (rare)": f"app={apps['Payroll']}",
            "user + status=active": f"user={someone}&status=active",
            "status=ended + reason + app": f"status=ended&reason=ended_by_admin&app={apps['Wiki']}",
        }
        print(f"database           {database}")
        print(f"rows               {args.sessions} sessions, {USERS} users, loaded in {loaded:.1f} s")
        for name, query in cases.items():
            url = f"/admin/sessions?{query}"
            answer = admin.get(url)
            assert answer.status_code == 200 and answer.data.count(b'<td><a href="/admin/sessions/') > 0, (url, answer.status)
            times = []
            for _ in range(args.requests):
                started = time.perf_counter()
                admin.get(url)
                times.append((time.perf_counter() - started) * 1000)
            print(f"{name:<32} median {statistics.median(times):6.1f} ms   max {max(times):6.1f} ms   GET {url}")
        with app.app_context():
            user_id = db.session.scalar(select(User.id).where(User.username == someone))
            for name, wanted, after in (
                ("first page", listing.SessionFilter(), None),
                ("deep page", listing.SessionFilter(), deep),
                ("status=active", listing.SessionFilter(status="active"), None),
                ("app (rare)", listing.SessionFilter(app_id=apps["Payroll"]), None),
                ("end reason (rare)", listing.SessionFilter(end_reason="password_changed"), None),
                ("user", listing.SessionFilter(user_id=user_id), None),
                ("user + status=active", listing.SessionFilter(user_id=user_id, status="active"), None),
            ):
                print(f"\nquery plan, {name}:")
                for line in plan(lambda: listing.sessions_page(wanted, now=clock.now(), after=after)):
                    print(f"  {line}")


def load(count: int, now) -> None:
    """Users, apps and `count` sessions, inserted in bulk (no audit, no argon2 per user)."""
    rng = random.Random(5)
    accounts.create_user("admin", PASSWORD, now=now, role="admin")
    roles = dict(db.session.execute(select(Role.name, Role.id)).all())
    hashed = db.session.scalar(select(User.password_hash).where(User.username == "admin"))
    db.session.execute(insert(User), [
        {"username": f"user{n:04d}", "email": f"user{n:04d}@example.org", "display_name": f"User {n}", "password_hash": hashed,
         "role_id": roles["session-manager" if n % 100 == 0 else "user"], "created_at": now - timedelta(days=400)}
        for n in range(USERS)
    ])
    db.session.execute(insert(App), [{"name": name, "protocol": "oidc", "created_at": now - timedelta(days=400)} for name in APPS])
    user_ids = db.session.scalars(select(User.id).order_by(User.id)).all()
    app_ids = dict(db.session.execute(select(App.name, App.id)).all())
    agents = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
              "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
              "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"]
    ips = ["81.2.69.160", "8.8.8.8", "10.0.0.7", "2a02:c7f::1", "203.0.113.9"]
    reasons, weights = list(REASONS), list(REASONS.values())
    batch, links = [], []
    for n in range(count):
        # Whole seconds over 30 days: some sessions share an instant of last activity.
        last = now - timedelta(seconds=rng.randrange(30 * 86400))
        created = last - timedelta(seconds=rng.randrange(8 * 3600))
        row = {"token_hash": f"{n:064x}", "user_id": rng.choice(user_ids), "created_at": created, "authenticated_at": created,
               "last_activity_at": last, "inactivity_seconds": 1800, "absolute_seconds": 8 * 3600,
               "expires_at": min(last + timedelta(minutes=30), created + timedelta(hours=8)),
               "ip_address": rng.choice(ips), "user_agent": rng.choice(agents), "persistent": False, "ended_at": None, "end_reason": None,
               "ended_by_id": None}
        kind = rng.random()
        if kind < 0.15:  # alive: persistent sessions with a long absolute timeout and no idle one
            row.update(inactivity_seconds=None, absolute_seconds=60 * 86400, persistent=True, expires_at=created + timedelta(days=60))
        elif kind >= 0.20:  # ended; the other 5% expired without a request or sweep noticing yet
            reason = rng.choices(reasons, weights)[0]
            row.update(ended_at=min(row["expires_at"], now), end_reason=reason,
                       ended_by_id=row["user_id"] if reason in ("ended_by_user", "signed_out") else user_ids[0] if reason == "ended_by_admin" else None)
        batch.append(row)
        for name, share in APPS.items():
            if rng.random() < share:
                links.append((n, app_ids[name], row))
        if len(batch) == 5000 or n == count - 1:
            inserted = db.session.execute(insert(DirectorySession.__table__).returning(DirectorySession.id, sort_by_parameter_order=True), batch)
            session_ids = dict(zip(range(n - len(batch) + 1, n + 1), inserted.scalars()))
            if links:
                db.session.execute(insert(AppSession.__table__), [
                    {"app_id": app_id, "user_id": row["user_id"], "directory_session_id": session_ids[index],
                     "sid": f"{index}-{app_id}", "subject": str(row["user_id"]), "created_at": row["created_at"],
                     "last_used_at": row["last_activity_at"], "idle_seconds": 7 * 86400, "max_seconds": 30 * 86400,
                     "ended_at": row["ended_at"], "end_reason": "directory_signout" if row["ended_at"] else None}
                    for index, app_id, row in links
                ])
            batch, links = [], []
    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("ANALYZE"))
        db.session.commit()


def signed_in_admin(app):
    admin = app.test_client()
    page = admin.get("/login").get_data(as_text=True)
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    assert admin.post("/login", data={"username": "admin", "password": PASSWORD, "csrf_token": csrf}).status_code == 303
    return admin


def plan(run) -> list[str]:
    """The database's plan for the first query `run` makes (the page of sessions)."""
    caught = []

    def catch(conn, cursor, statement, parameters, context, executemany):
        if not caught and "FROM directory_sessions" in statement:
            caught.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", catch)
    try:
        run()
    finally:
        event.remove(db.engine, "before_cursor_execute", catch)
    statement, parameters = caught[0]
    raw = db.session.connection().connection.driver_connection
    if db.engine.dialect.name == "sqlite":
        return [row[-1] for row in raw.execute("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()]
    with raw.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, COSTS OFF) " + statement, parameters)
        # The access paths and the time; the joins to users and roles (by primary key) are left out.
        return [row[0] for row in cursor.fetchall() if ("Scan" in row[0] or "Sort" in row[0] or "Time" in row[0])
                and "users" not in row[0] and "roles" not in row[0]]


if __name__ == "__main__":
    main()
