"""The browser's part of a sign-out, whatever started it: the portal, an OIDC app, a SAML SP.

The directory session has ended and its notices are queued (directory/logout.py). SAML SPs
that can only be told through the browser are visited one after another: each gets a
LogoutRequest and sends the browser back here with its LogoutResponse. Then one page loads
the OIDC front-channel logout pages in hidden iframes and moves on: to a URL, or, when an SP
asked, back to it with a LogoutResponse, PartialLogout if some app was not reached.
"""

from __future__ import annotations

from flask import Response
from sqlalchemy import inspect

from directory import logout
from directory.db import db
from directory.models import DirectorySession
from idp import context, delivery, navigation
from idp.saml import logout as saml_logout
from idp.saml.models import LogoutChain, ServiceProvider


def leave(ended: DirectorySession, *, return_url: str | None = None, asked: saml_logout.LogoutAsk | None = None,
          relay_state: str | None = None) -> Response:
    """Carry the sign-out of `ended` through this browser, then go to `return_url`, or answer
    the SP's request `asked`. The chain is stored only if a SAML SP has to be visited."""
    chain = LogoutChain(
        directory_session_id=ended.id, return_url=return_url, created_at=context.now(), missed=[],
        answer_sp_id=asked.sp.id if asked else None, answer_request_id=asked.id if asked else None,
        answer_relay_state=relay_state,
    )
    return proceed(chain, ended)


def proceed(chain: LogoutChain, ended: DirectorySession) -> Response:
    """The next SAML SP to visit, or the last page when none is left."""
    now = context.now()
    for row in logout.take_front_channel(ended, now=now, protocol="saml", limit=1):
        step = saml_logout.front_step(row)
        if step is None:  # the SP dropped its front-channel endpoint since
            chain.missed = [*chain.missed, row.app_session.app.name]
            return proceed(chain, ended)
        chain.pending_sp_id, chain.pending_request_id, destination = step
        db.session.add(chain)
        db.session.commit()
        return navigation.go(destination, title="Signing you out")
    return _finish(chain, ended, now)


def _finish(chain: LogoutChain, ended: DirectorySession, now) -> Response:
    frames = delivery.front_channel_urls(ended, now=now)
    asker = db.session.get(ServiceProvider, chain.answer_sp_id) if chain.answer_sp_id else None
    if asker is not None:
        destination = saml_logout.answer(asker, chain.answer_request_id, chain.answer_relay_state,
                                         outcome(ended, asker, missed=chain.missed))
    else:
        destination = navigation.Destination(chain.return_url or "/")
    if inspect(chain).persistent:
        db.session.delete(chain)
    db.session.commit()
    return navigation.go(destination, frames, title="Signing you out")


def outcome(ended: DirectorySession, asker: ServiceProvider, *, missed: list[str] = ()):
    """The status for the SP that asked: the back-channel notices are tried now rather than
    later, so that PartialLogout means some app really was not reached."""
    delivery.deliver_due(now=context.now(), directory_session=ended)
    return saml_logout.status(missed=bool(missed) or bool(logout.unreached(ended, skip=asker.app)))
