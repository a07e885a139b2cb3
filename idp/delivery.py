"""Sends due Single Logout notices from the outbox: in the server's background loop, or in
`flask --app wsgi logout-worker` for deployments that want it apart.

Each protocol builds its own request (idp/oidc/logout.py); this module claims the rows,
sends the requests in parallel with a timeout, and records each outcome.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

import requests
from flask import current_app

from directory import logout
from directory.db import db

PARALLEL = 8
BATCH = 50  # notices claimed per round


@dataclass(frozen=True)
class Outgoing:
    """One notice on the wire: a form POST that counts as delivered only on a 2xx answer."""

    url: str
    data: dict


def _protocol(app_session):
    """The module that speaks this app's protocol (imported late: it imports Outgoing)."""
    from idp.oidc import logout as oidc_logout

    return {"oidc": oidc_logout}[app_session.app.protocol]


def front_channel_urls(directory_session, *, now) -> list[str]:
    """Addresses the signed-out page loads in hidden iframes, one per front-channel notice."""
    rows = logout.take_front_channel(directory_session, now=now)
    return [url for row in rows if (url := _protocol(row.app_session).front_url(row))]


def deliver_due(*, now, jitter: Callable[[], float] = lambda: random.uniform(0.5, 1.0)) -> dict[str, int]:
    """Claim due back-channel notices, send them, record the outcomes; returns counts."""
    config = current_app.config
    timeout = config["LOGOUT_TIMEOUT"]
    claimed = logout.claim(now=now, lease=timedelta(seconds=timeout * 3), limit=BATCH)
    requests_out = [_protocol(row.app_session).build(row, now=now) for row in claimed]
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        errors = list(pool.map(lambda outgoing: _send(outgoing, timeout), requests_out))
    window = timedelta(seconds=config["LOGOUT_RETRY_WINDOW"])
    counts = {"sent": 0, "retrying": 0, "failed": 0}
    for row, error in zip(claimed, errors):
        logout.record(row, now=now, error=error, window=window, jitter=jitter())
        counts[{"sent": "sent", "pending": "retrying", "failed": "failed"}[row.status]] += 1
    db.session.commit()
    return counts


def _send(outgoing: Outgoing | None, timeout: float) -> str | None:
    """None when delivered, else what went wrong (kept on the row, never a token)."""
    if outgoing is None:
        return "the application has no logout endpoint"
    try:
        response = requests.post(outgoing.url, data=outgoing.data, timeout=timeout, allow_redirects=False)
    except requests.RequestException as error:
        return f"{type(error).__name__} from {outgoing.url}"
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code} from {outgoing.url}"
