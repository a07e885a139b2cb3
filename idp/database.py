"""Database wiring: the shared `db`, migrations, and SQLite's per-connection settings."""

from __future__ import annotations

from pathlib import Path

from flask_migrate import Migrate
from sqlalchemy import event

from directory.db import db

MIGRATIONS = str(Path(__file__).resolve().parent / "migrations")


def init_app(app) -> None:
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # Wait for the write lock instead of failing: sign-ins queue on it (sessions.open).
        app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"connect_args": {"timeout": 30}})
    db.init_app(app)
    Migrate(app, db, directory=MIGRATIONS, render_as_batch=True)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", _sqlite_pragmas)


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    # WAL lets readers proceed while one writer commits: the portal reads on every request.
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.close()
