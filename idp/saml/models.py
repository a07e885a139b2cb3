"""SAML rows: a service provider is the protocol half of an `App`, like an OIDC client."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from directory.db import db
from directory.models import App

NAMEID_FORMATS = {
    "persistent": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    "transient": "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
    "emailAddress": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    "unspecified": "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
}
ATTRIBUTES = ("uid", "email", "displayName", "role")
DEFAULT_ATTRIBUTES = ["uid", "email", "displayName"]


class ServiceProvider(db.Model):
    """A SAML service provider, registered from its metadata (kept verbatim, re-read by pysaml2)."""

    __tablename__ = "saml_service_providers"

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), unique=True)
    entity_id: Mapped[str] = mapped_column(String(1024), unique=True)
    metadata_xml: Mapped[str] = mapped_column(Text)
    nameid_format: Mapped[str] = mapped_column(String(64), default="persistent")  # a key of NAMEID_FORMATS
    released_attributes: Mapped[list[str]] = mapped_column(JSON, default=lambda: list(DEFAULT_ATTRIBUTES))
    wants_signed_requests: Mapped[bool] = mapped_column(default=False)  # default: its AuthnRequestsSigned

    app: Mapped[App] = relationship(lazy="joined")

    @property
    def nameid_format_uri(self) -> str:
        return NAMEID_FORMATS[self.nameid_format]


class SeenRequest(db.Model):
    """An AuthnRequest ID already answered: each is accepted once (replay defence). Rows older
    than the freshness window are useless (a request that old is refused anyway) and are
    deleted as new ones arrive."""

    __tablename__ = "saml_seen_requests"
    __table_args__ = (Index("ix_saml_seen_requests_seen_at", "seen_at"),)

    id: Mapped[str] = mapped_column(String(256), primary_key=True)
    seen_at: Mapped[datetime]


class LogoutChain(db.Model):
    """A sign-out carried by the browser from one SAML SP to the next (front-channel SLO).

    Each step sends a LogoutRequest (`pending_request_id`) and waits for the SP's
    LogoutResponse; then the next SP, and at the end the browser goes to `return_url`, or the
    SP that asked (`answer_*`) gets its LogoutResponse: PartialLogout if some app was missed.
    """

    __tablename__ = "saml_logout_chains"

    id: Mapped[int] = mapped_column(primary_key=True)
    directory_session_id: Mapped[int] = mapped_column(ForeignKey("directory_sessions.id", ondelete="CASCADE"))
    pending_request_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    pending_sp_id: Mapped[int | None] = mapped_column(ForeignKey("saml_service_providers.id", ondelete="SET NULL"))
    return_url: Mapped[str | None] = mapped_column(Text)
    answer_sp_id: Mapped[int | None] = mapped_column(ForeignKey("saml_service_providers.id", ondelete="SET NULL"))
    answer_request_id: Mapped[str | None] = mapped_column(String(256))
    answer_relay_state: Mapped[str | None] = mapped_column(Text)
    missed: Mapped[list[str]] = mapped_column(JSON, default=list)  # SPs that answered other than Success
    created_at: Mapped[datetime]
