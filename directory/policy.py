"""Every session rule that mentions time, as pure functions over plain values and a `now`.

Nothing here reads a clock or a database, so each rule is tested as a table of instants
(tests/test_policy.py). A deadline is the first instant at which the session is over:
a session is alive strictly before it and ended at it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

T = TypeVar("T")

#: Activity is written at most this often, and more often for short inactivity timeouts.
MAX_TOUCH_INTERVAL = timedelta(seconds=60)
#: The expiry warning shows this long before the deadline, or a quarter of a shorter timeout.
MAX_WARNING_LEAD = timedelta(minutes=2)


class EndReason(StrEnum):
    """Why a directory session ended; stored on the row, shown to the user and to admins."""

    IDLE_TIMEOUT = "idle_timeout"
    ABSOLUTE_TIMEOUT = "absolute_timeout"
    SIGNED_OUT = "signed_out"
    SESSION_LIMIT = "session_limit"
    REPLACED = "replaced"
    ENDED_BY_USER = "ended_by_user"
    ENDED_BY_ADMIN = "ended_by_admin"
    PASSWORD_CHANGED = "password_changed"
    USER_DISABLED = "user_disabled"

    @property
    def is_expiry(self) -> bool:
        return self in (EndReason.IDLE_TIMEOUT, EndReason.ABSOLUTE_TIMEOUT)


class LoginReason(StrEnum):
    """Why a sign-in request for an application must show the password form."""

    NO_SESSION = "no_session"
    PROMPT_LOGIN = "prompt_login"  # OIDC prompt=login
    MAX_AGE = "max_age"  # OIDC max_age exceeded
    FORCE_AUTHN = "force_authn"  # SAML ForceAuthn="true"


class OnLimit(StrEnum):
    """What a sign-in does when the user already holds the maximum number of sessions."""

    END_OLDEST = "end-oldest"
    REFUSE = "refuse"


@dataclass(frozen=True)
class Lifetime:
    """The limits captured on a session when it was opened (or re-applied by an admin)."""

    inactivity: timedelta | None  # None: the inactivity timeout is switched off
    absolute: timedelta


def idle_deadline(last_activity: datetime, lifetime: Lifetime) -> datetime | None:
    if lifetime.inactivity is None:
        return None
    return last_activity + lifetime.inactivity


def absolute_deadline(created_at: datetime, lifetime: Lifetime) -> datetime:
    return created_at + lifetime.absolute


def expiry(created_at: datetime, last_activity: datetime, lifetime: Lifetime) -> tuple[datetime, EndReason]:
    """The earlier of the two deadlines and the reason it would end the session.

    When both fall on the same instant the absolute limit is named: it is the one no
    activity could have moved.
    """
    absolute = absolute_deadline(created_at, lifetime)
    idle = idle_deadline(last_activity, lifetime)
    if idle is not None and idle < absolute:
        return idle, EndReason.IDLE_TIMEOUT
    return absolute, EndReason.ABSOLUTE_TIMEOUT


def evaluate(created_at: datetime, last_activity: datetime, lifetime: Lifetime, now: datetime) -> EndReason | None:
    """None while the session is alive at `now`, else the reason it has expired."""
    deadline, reason = expiry(created_at, last_activity, lifetime)
    return reason if now >= deadline else None


def touch_interval(lifetime: Lifetime) -> timedelta:
    """How stale the recorded activity may get: min(60 s, inactivity timeout / 10).

    This bounds the error of throttled writes: a session can end at most this long before
    `last request + inactivity timeout`, never after it.
    """
    if lifetime.inactivity is None:
        return MAX_TOUCH_INTERVAL
    return min(MAX_TOUCH_INTERVAL, lifetime.inactivity / 10)


def warning_lead(lifetime: Lifetime, ends_by: EndReason) -> timedelta:
    """How long before the coming deadline the page warns: 2 minutes, or a quarter of the
    timeout that sets the deadline when that is shorter (a 1-minute timeout warns at 15 s)."""
    timeout = lifetime.inactivity if ends_by is EndReason.IDLE_TIMEOUT and lifetime.inactivity else lifetime.absolute
    return min(MAX_WARNING_LEAD, timeout / 4)


def should_touch(last_activity: datetime, lifetime: Lifetime, now: datetime) -> bool:
    """Whether this request's activity must be written to the database."""
    return now - last_activity >= touch_interval(lifetime)


@dataclass(frozen=True)
class Admission:
    """The answer to a sign-in under the concurrent-session limit."""

    allowed: bool
    evict: tuple  # the sessions to end to make room, oldest first


def admit(active_oldest_first: Sequence[T], limit: int | None, on_limit: OnLimit) -> Admission:
    """Decide a new sign-in given the user's live sessions, counting the new one."""
    if limit is None:
        return Admission(True, ())
    excess = len(active_oldest_first) + 1 - limit
    if excess <= 0:
        return Admission(True, ())
    if on_limit is OnLimit.REFUSE:
        return Admission(False, ())
    return Admission(True, tuple(active_oldest_first[:excess]))


def cookie_expires(persistent: bool, created_at: datetime, lifetime: Lifetime) -> datetime | None:
    """Expires for the session cookie: the absolute deadline when persistent, else none.

    A persistent cookie only survives a browser restart; it never outlives the session.
    """
    return absolute_deadline(created_at, lifetime) if persistent else None


def purge_cutoff(now: datetime, retention: timedelta) -> datetime:
    """Ended sessions that ended before this instant are deleted."""
    return now - retention


def needs_login(
    authenticated_at: datetime | None,
    now: datetime,
    *,
    fresh: bool = False,
    max_age: int | None = None,
    requested_at: datetime | None = None,
) -> LoginReason | None:
    """Whether an application's sign-in request must see the password form, and why.

    `authenticated_at` is None without a live directory session. `fresh` is OIDC
    prompt=login or SAML ForceAuthn. `requested_at` is when this same request first sent
    the person to sign in: a password entered since then satisfies it, so a request that
    demands a fresh sign-in does not loop back to the form.
    """
    if authenticated_at is None:
        return LoginReason.NO_SESSION
    if requested_at is not None and authenticated_at >= requested_at:
        return None
    if fresh:
        return LoginReason.PROMPT_LOGIN
    # OIDC Core 3.1.2.1: re-authenticate once more than max_age has passed; 0 means always.
    if max_age is not None and (max_age == 0 or now - authenticated_at > timedelta(seconds=max_age)):
        return LoginReason.MAX_AGE
    return None


#: Logout deliveries are retried 10 s, 20 s, 40 s ... after failures, at most an hour apart.
FIRST_RETRY = timedelta(seconds=10)
LONGEST_RETRY = timedelta(hours=1)


def retry_delay(attempts: int, jitter: float) -> timedelta:
    """How long to wait after the `attempts`-th failed delivery.

    Exponential back-off, scaled by `jitter` (drawn from [0.5, 1] by the caller) so that
    many notices that failed together do not all retry at the same instant.
    """
    if not 0.5 <= jitter <= 1:
        raise ValueError("jitter must be between 0.5 and 1")
    return min(FIRST_RETRY * 2 ** (attempts - 1), LONGEST_RETRY) * jitter


def delivery_abandoned(created_at: datetime, now: datetime, window: timedelta) -> bool:
    """A notice still undelivered `window` after its session ended is marked failed."""
    return now - created_at >= window
