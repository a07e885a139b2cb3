"""Plain factory functions with sensible defaults; call them inside an app context."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select

from directory import accounts, settings
from directory.db import db
from directory.models import App, AuditEvent, DirectorySession
from tests.conftest import PASSWORD, START


def make_user(username: str = "alice", *, role: str = "user", password: str = PASSWORD, now=START, **fields):
    return accounts.create_user(username, password, now=now, role=role, **fields)


def set_settings(now=START, **changes) -> settings.SessionSettings:
    """Store the defaults with `changes` applied, as an admin would."""
    new = replace(settings.SessionSettings(), **changes)
    settings.save(new, now=now, actor=None, actor_label="test")
    return new


def session_rows(user=None) -> list[DirectorySession]:
    db.session.expire_all()
    query = select(DirectorySession).order_by(DirectorySession.id)
    if user is not None:
        query = query.where(DirectorySession.user_id == user.id)
    return list(db.session.scalars(query))


def audit_actions() -> list[str]:
    return list(db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def make_app_record(name: str = "CRM", *, protocol: str = "oidc", now=START, **fields) -> App:
    """A relying application as the directory knows it (protocol details live elsewhere)."""
    app = App(name=name, protocol=protocol, created_at=now, **fields)
    db.session.add(app)
    db.session.commit()
    return app


def make_oidc_client(name: str = "CRM", **fields):
    """A registered relying party; returns (client, secret). Defaults: confidential, trusted
    (no consent screen), one redirect URI, back-channel logout at https://crm.example/logout."""
    from idp.oidc import clients

    spec = {
        "redirect_uris": [f"https://{name.lower()}.example/cb"],
        "backchannel_logout_uri": f"https://{name.lower()}.example/logout",
        "trusted": True,
        **fields,
    }
    return clients.register(clients.Registration(name=name, **spec), now=START, actor_label="test")
