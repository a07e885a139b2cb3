"""What every benchmark needs: the app on a fresh schema, a FrozenClock, nothing in the background."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from directory import accounts  # noqa: E402
from directory.clock import FrozenClock  # noqa: E402
from directory.db import db  # noqa: E402
from idp import create_app  # noqa: E402


@contextmanager
def bench_app() -> Iterator[tuple]:
    """(app, clock, database name): a fresh SQLite file, or IDP_BENCH_DATABASE_URL, dropped after."""
    clock = FrozenClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    with tempfile.TemporaryDirectory() as tmp:
        url = os.environ.get("IDP_BENCH_DATABASE_URL") or f"sqlite:///{tmp}/bench.sqlite3"
        config = {"SECRET_KEY": "b" * 40, "DATABASE_URL": url, "SWEEP_INTERVAL": 0, "DELIVERY_INTERVAL": 0, "CERTS_PATH": f"{tmp}/certs"}
        app = create_app(config, clock=clock)
        with app.app_context():
            db.drop_all()
            db.create_all()
            accounts.ensure_builtin_roles()
        try:
            yield app, clock, url.split(":")[0]
        finally:
            with app.app_context():
                db.drop_all()


def rate(count: int, run) -> tuple[float, float]:
    """(calls per second, microseconds per call) of `run` called `count` times."""
    started = time.perf_counter()
    for _ in range(count):
        run()
    elapsed = time.perf_counter() - started
    return count / elapsed, elapsed / count * 1e6
