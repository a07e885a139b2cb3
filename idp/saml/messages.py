"""Checks every inbound SAML request gets, whatever it asks: who sent it, when, and whether it
was seen before. A refusal raises `Refused` with a one-line reason; nothing was changed."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

from saml2.time_util import str_to_time
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from directory.db import db
from idp.saml import registry
from idp.saml.models import SeenRequest, ServiceProvider

MAX_AGE = timedelta(minutes=5)  # a request issued longer ago is stale
MAX_SKEW = timedelta(minutes=1)  # nor may it come from further in the future
MAX_ID = 256


class Refused(Exception):
    """The request is not acted on; the reason is safe to show."""


def sender(message) -> ServiceProvider:
    """The registered SP named by the message's Issuer."""
    issuer = (message.issuer.text or "").strip() if message.issuer is not None else ""
    sp = registry.find(issuer) if issuer else None
    if sp is None:
        raise Refused("the request comes from a service provider that is not registered here")
    return sp


def message_id(message) -> str:
    value = message.id or ""
    if not value or len(value) > MAX_ID:
        raise Refused("the request has no usable ID")
    return value


def issued_at(message, *, first_seen: datetime) -> datetime:
    """The IssueInstant, if within MAX_AGE before `first_seen` (or MAX_SKEW after it)."""
    try:
        issued = datetime.fromtimestamp(calendar.timegm(str_to_time(message.issue_instant)), UTC)
    except Exception:  # pysaml2 raises several types for a malformed time
        raise Refused("the request has no valid IssueInstant") from None
    if issued < first_seen - MAX_AGE or issued > first_seen + MAX_SKEW:
        raise Refused("the request is too old, or dated in the future")
    return issued


def check_unseen(request_id: str) -> None:
    if db.session.get(SeenRequest, request_id) is not None:
        raise Refused("this request was already answered; it cannot be used again")


def remember(request_id: str, now: datetime) -> None:
    """Record the request ID (a second use is refused); forget IDs past the freshness window."""
    db.session.execute(delete(SeenRequest).where(SeenRequest.seen_at < now - MAX_AGE - MAX_SKEW - timedelta(minutes=10)))
    try:
        with db.session.begin_nested():
            db.session.add(SeenRequest(id=request_id, seen_at=now))
    except IntegrityError:
        raise Refused("this request was already answered; it cannot be used again") from None
