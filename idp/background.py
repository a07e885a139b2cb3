"""The in-server housekeeping loop: sweeps expired sessions every IDP_SWEEP_INTERVAL seconds.

Started by the first request a server process handles, so forked workers each run their own;
sweeping is idempotent, so several processes sweeping at once end each session once.
"""

from __future__ import annotations

import logging
import threading

from directory import sessions, settings

log = logging.getLogger(__name__)


def init_app(app) -> None:
    interval = app.config["SWEEP_INTERVAL"]
    if not interval:
        return
    lock = threading.Lock()
    sweeper = threading.Thread(target=_loop, args=(app, interval), name="idp-sweeper", daemon=True)

    @app.before_request
    def start_once() -> None:
        if not sweeper.is_alive():
            with lock:
                if sweeper.ident is None:
                    sweeper.start()


def _loop(app, interval: int) -> None:
    while not threading.Event().wait(interval):
        sweep_once(app)


def sweep_once(app) -> tuple[int, int]:
    """One sweep in its own app context; a failure is logged and the loop goes on."""
    with app.app_context():
        try:
            now = app.extensions["idp.clock"].now()
            ended, purged = sessions.sweep(now=now, retention=settings.load().retention)
        except Exception:  # the loop must outlive a database hiccup
            log.exception("session sweep failed")
            return 0, 0
    if ended or purged:
        log.info("sweep ended %d expired sessions, purged %d", ended, purged)
    return ended, purged
