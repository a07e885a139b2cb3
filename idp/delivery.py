"""Sends due Single Logout notices from the outbox: in the server's background loop, or in
`flask --app wsgi logout-worker` for deployments that want it apart.

Each protocol builds its own request (idp/oidc/logout.py, idp/saml/logout.py); this module claims the rows,
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
    """One notice on the wire: a POST of `data` (a form, or a body with `headers`). It counts as
    delivered on a 2xx answer that `check` (if given) finds no fault in."""

    url: str
    data: dict | bytes
    headers: dict | None = None
    check: Callable[[requests.Response], str | None] | None = None  # run in the app's thread


def _protocol(app_session):
    """The module that speaks this app's protocol (imported late: they import Outgoing)."""
    from idp.oidc import logout as oidc_logout
    from idp.saml import logout as saml_logout

    return {"oidc": oidc_logout, "saml": saml_logout}[app_session.app.protocol]


def front_channel_urls(directory_session, *, now) -> list[str]:
    """Addresses the signed-out page loads in hidden iframes, one per OpenID Connect
    front-channel notice (SAML SPs are visited in turn instead: idp/signout.py)."""
    from idp.oidc import logout as oidc_logout

    rows = logout.take_front_channel(directory_session, now=now, protocol="oidc")
    return [url for row in rows if (url := oidc_logout.front_url(row))]


def deliver_due(*, now, jitter: Callable[[], float] = lambda: random.uniform(0.5, 1.0),
                directory_session=None) -> dict[str, int]:
    """Claim due back-channel notices (only `directory_session`'s when given), send them, record
    the outcomes; returns counts."""
    config = current_app.config
    timeout = config["LOGOUT_TIMEOUT"]
    claimed = logout.claim(now=now, lease=timedelta(seconds=timeout * 3), limit=BATCH, directory_session=directory_session)
    requests_out = [_protocol(row.app_session).build(row, now=now) for row in claimed]
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        answers = list(pool.map(lambda outgoing: _send(outgoing, timeout), requests_out))
    # Answers are judged here, in the app's thread: a protocol's check may need the app.
    errors = [_judge(outgoing, answer) for outgoing, answer in zip(requests_out, answers)]
    window = timedelta(seconds=config["LOGOUT_RETRY_WINDOW"])
    counts = {"sent": 0, "retrying": 0, "failed": 0}
    for row, error in zip(claimed, errors):
        logout.record(row, now=now, error=error, window=window, jitter=jitter())
        counts[{"sent": "sent", "pending": "retrying", "failed": "failed"}[row.status]] += 1
    db.session.commit()
    return counts


def _send(outgoing: Outgoing | None, timeout: float) -> requests.Response | str:
    """The answer, or what went wrong (kept on the row, never a token)."""
    if outgoing is None:
        return "the application has no logout endpoint"
    try:
        return requests.post(outgoing.url, data=outgoing.data, headers=outgoing.headers, timeout=timeout,
                             allow_redirects=False)
    except requests.RequestException as error:
        return f"{type(error).__name__} from {outgoing.url}"


def _judge(outgoing: Outgoing | None, answer: requests.Response | str) -> str | None:
    """None when delivered, else why not."""
    if isinstance(answer, str):
        return answer
    if not 200 <= answer.status_code < 300:
        return f"HTTP {answer.status_code} from {outgoing.url}"
    return outgoing.check(answer) if outgoing.check else None
