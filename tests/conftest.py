"""Fixtures: an app on a fresh database (SQLite file, or PostgreSQL when IDP_TEST_DATABASE_URL
is set) driven by a FrozenClock, a browser-like client, and portal actions."""

from __future__ import annotations

import contextvars
import os
import re
from datetime import UTC, datetime

import pytest
from flask.testing import FlaskClient

from directory import accounts
from directory.clock import FrozenClock
from directory.db import db
from idp import create_app

START = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def database_url(tmp_path) -> str:
    return os.environ.get("IDP_TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'directory.sqlite3'}"


class BrowserClient(FlaskClient):
    """Runs each request in a fresh context, as a server does: its own app context, `g` and
    database session, never the test's."""

    def open(self, *args, **kwargs):
        return contextvars.Context().run(super().open, *args, **kwargs)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """One signing key ring per test run: key generation is slow and keys are not under test."""
    return tmp_path_factory.mktemp("certs")


@pytest.fixture
def make_app(tmp_path, clock, certs):
    """Build an app with config overrides, on an empty schema with the built-in roles."""
    built = []

    def build(**overrides):
        config = {
            "TESTING": True,
            "SWEEP_INTERVAL": 0,
            "DELIVERY_INTERVAL": 0,
            "SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
            "DATABASE_URL": database_url(tmp_path),
            "ISSUER": "http://localhost",
            "CERTS_PATH": certs,
            **overrides,
        }
        app = create_app(config, clock=clock)
        app.test_client_class = BrowserClient
        with app.app_context():
            db.drop_all()
            db.create_all()
            accounts.ensure_builtin_roles()
        built.append(app)
        return app

    yield build
    for app in built:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app):
    app = make_app()
    with app.app_context():
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


def csrf_from(html: bytes | str) -> str:
    text = html.decode() if isinstance(html, bytes) else html
    match = _CSRF.search(text)
    assert match, "page has no CSRF field"
    return match.group(1)


class Portal:
    """What a person does in the portal, through one browser (the test client)."""

    def __init__(self, client) -> None:
        self.client = client

    def csrf(self) -> str:
        """The token from the sign-in page, or from the sign-out page when already signed in."""
        page = self.client.get("/login")
        return csrf_from((self.client.get("/logout") if page.status_code == 302 else page).data)

    def login(self, username: str = "alice", password: str = PASSWORD, *, remember: bool = False, next: str | None = None, **extra):
        form = {"csrf_token": self.csrf(), "username": username, "password": password, **extra}
        if remember:
            form["remember"] = "on"
        if next:
            form["next"] = next
        return self.client.post("/login", data=form)

    def logout(self):
        token = csrf_from(self.client.get("/logout").data)
        return self.client.post("/logout", data={"csrf_token": token})

    def session_cookie(self):
        return self.client.get_cookie(self.client.application.config["DIRECTORY_COOKIE"])


@pytest.fixture
def portal(client) -> Portal:
    return Portal(client)
