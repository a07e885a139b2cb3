"""The in-server housekeeping loop: sends due Single Logout notices every
IDP_DELIVERY_INTERVAL seconds and sweeps expired sessions (and audit events past their
retention) every IDP_SWEEP_INTERVAL seconds.

Started by the first request a server process handles, so forked workers each run their own;
sweeping is idempotent, so several processes sweeping at once end each session once.
"""

from __future__ import annotations

import logging
import threading

from directory import audit, sessions, settings
from idp import delivery

log = logging.getLogger(__name__)


def init_app(app) -> None:
    sweep_every, deliver_every = app.config["SWEEP_INTERVAL"], app.config["DELIVERY_INTERVAL"]
    if not sweep_every and not deliver_every:
        return
    lock = threading.Lock()
    worker = threading.Thread(target=_loop, args=(app, sweep_every, deliver_every), name="idp-sweeper", daemon=True)

    @app.before_request
    def start_once() -> None:
        if not worker.is_alive():
            with lock:
                if worker.ident is None:
                    worker.start()


def _loop(app, sweep_every: int, deliver_every: int) -> None:
    tick = min(interval for interval in (sweep_every, deliver_every) if interval)
    elapsed = 0
    while not threading.Event().wait(tick):
        elapsed += tick
        if deliver_every and elapsed % deliver_every < tick:
            deliver_once(app)
        if sweep_every and elapsed % sweep_every < tick:
            sweep_once(app)


def _guarded(app, what: str, job, fallback):
    """Run `job(now)` in its own app context; a failure is logged and the loop goes on."""
    with app.app_context():
        try:
            return job(app.extensions["idp.clock"].now())
        except Exception:  # the loop must outlive a database hiccup
            log.exception("%s failed", what)
            return fallback


def deliver_once(app) -> dict[str, int]:
    """One round of Single Logout deliveries."""
    return _guarded(app, "logout delivery", lambda now: delivery.deliver_due(now=now), {})


def sweep_once(app) -> tuple[int, int]:
    """One sweep of expired sessions and of ended ones past retention, then of audit events
    past the audit retention. Returns the sessions (ended, purged)."""
    ended, purged = _guarded(
        app, "session sweep", lambda now: sessions.sweep(now=now, retention=settings.load().retention), (0, 0)
    )
    deleted = _guarded(app, "audit purge", lambda now: audit.purge(now=now, retention=settings.load().audit_retention), 0)
    if ended or purged or deleted:
        log.info("sweep ended %d expired sessions, purged %d, deleted %d audit events", ended, purged, deleted)
    return ended, purged
