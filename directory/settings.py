"""The admin-set session settings: what is allowed, what is stored, and who changed it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from directory import audit, durations, sessions
from directory.db import db
from directory.models import DirectorySettings, User
from directory.policy import Lifetime, OnLimit

INACTIVITY_RANGE = (timedelta(minutes=1), timedelta(days=90))
ABSOLUTE_RANGE = (timedelta(minutes=5), timedelta(days=365))
RETENTION_RANGE = (timedelta(days=1), timedelta(days=3650))
AUDIT_RETENTION_RANGE = (timedelta(days=1), timedelta(days=3650))  # a day to ten years
MAX_SESSIONS_RANGE = (1, 100)
MAX_URL_LENGTH = 2000  # the column's size


class InvalidSettings(ValueError):
    """Raised with a message per field; nothing was saved."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class SessionSettings:
    inactivity: timedelta | None = timedelta(minutes=30)  # None: switched off
    absolute: timedelta = timedelta(hours=8)
    persistent_login: bool = False
    max_sessions: int | None = None  # None: unlimited
    on_limit: OnLimit = OnLimit.END_OLDEST
    signout_url: str | None = None  # None: the sign-in page
    retention: timedelta = timedelta(days=30)
    signout_apps_on_expiry: bool = False  # expiry, like a sign-out, ends the apps' sessions
    audit_retention: timedelta = timedelta(days=365)  # audit events older than this are deleted by the sweep

    @property
    def lifetime(self) -> Lifetime:
        return Lifetime(inactivity=self.inactivity, absolute=self.absolute)

    def errors(self) -> dict[str, str]:
        """Every rule the values break, by field name; empty when they are valid."""
        found: dict[str, str] = {}
        if self.inactivity is not None:
            _check_range(found, "inactivity", self.inactivity, INACTIVITY_RANGE)
            if "inactivity" not in found and self.inactivity > self.absolute:
                found["inactivity"] = "must not be longer than the absolute timeout"
        _check_range(found, "absolute", self.absolute, ABSOLUTE_RANGE)
        _check_range(found, "retention", self.retention, RETENTION_RANGE)
        _check_range(found, "audit_retention", self.audit_retention, AUDIT_RETENTION_RANGE)
        low, high = MAX_SESSIONS_RANGE
        if self.max_sessions is not None and not low <= self.max_sessions <= high:
            found["max_sessions"] = f"must be between {low} and {high}"
        if self.signout_url is not None and len(self.signout_url) > MAX_URL_LENGTH:
            found["signout_url"] = f"must be at most {MAX_URL_LENGTH} characters"
        elif self.signout_url is not None and not _is_destination(self.signout_url):
            found["signout_url"] = "must be an http(s) URL or a path on this site starting with /"
        return found

    def as_json(self) -> dict:
        """Plain values with durations written as `30m`, for the CLI and the audit log."""
        out = asdict(self)
        for name, value in out.items():
            if isinstance(value, timedelta):
                out[name] = durations.compact(value)
            elif isinstance(value, OnLimit):
                out[name] = value.value
        return out


def range_error(value: timedelta, bounds: tuple[timedelta, timedelta]) -> str | None:
    """The message for a duration outside `bounds`, else None."""
    low, high = bounds
    return None if low <= value <= high else f"must be between {durations.human(low)} and {durations.human(high)}"


def _check_range(found: dict[str, str], field: str, value: timedelta, bounds: tuple[timedelta, timedelta]) -> None:
    if message := range_error(value, bounds):
        found[field] = message


def _is_destination(url: str) -> bool:
    # Browsers read a backslash as a slash and drop control characters: either can turn a
    # path into another origin, or a header into two.
    if "\\" in url or any(ch.isspace() or not ch.isprintable() for ch in url):
        return False
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        return bool(parts.netloc)
    return not parts.scheme and not parts.netloc and url.startswith("/") and not url.startswith("//")


def load() -> SessionSettings:
    row = db.session.get(DirectorySettings, 1)
    if row is None:
        return SessionSettings()
    return SessionSettings(
        inactivity=None if row.inactivity_seconds is None else timedelta(seconds=row.inactivity_seconds),
        absolute=timedelta(seconds=row.absolute_seconds),
        persistent_login=row.persistent_login,
        max_sessions=row.max_sessions,
        on_limit=OnLimit(row.on_limit),
        signout_url=row.signout_url,
        retention=timedelta(seconds=row.retention_seconds),
        signout_apps_on_expiry=row.signout_apps_on_expiry,
        audit_retention=timedelta(seconds=row.audit_retention_seconds),
    )


def save(
    new: SessionSettings,
    *,
    now: datetime,
    actor: User | None,
    actor_label: str | None = None,
    apply_to_existing: bool = False,
    ip: str = "",
) -> list[str]:
    """Validate and store `new`, audit each changed field, and return their names.

    With `apply_to_existing`, live sessions take the new lifetime too; otherwise the limits
    captured at their sign-in keep governing them.
    """
    errors = new.errors()
    if errors:
        raise InvalidSettings(errors)
    old = load()
    changed = [f.name for f in fields(SessionSettings) if getattr(old, f.name) != getattr(new, f.name)]
    row = db.session.get(DirectorySettings, 1) or DirectorySettings(id=1)
    row.inactivity_seconds = None if new.inactivity is None else int(new.inactivity.total_seconds())
    row.absolute_seconds = int(new.absolute.total_seconds())
    row.persistent_login = new.persistent_login
    row.max_sessions = new.max_sessions
    row.on_limit = new.on_limit.value
    row.signout_url = new.signout_url
    row.retention_seconds = int(new.retention.total_seconds())
    row.signout_apps_on_expiry = new.signout_apps_on_expiry
    row.audit_retention_seconds = int(new.audit_retention.total_seconds())
    row.updated_at = now
    db.session.add(row)
    before, after = old.as_json(), new.as_json()
    for name in changed:
        audit.record(
            "settings.changed", now=now, actor=actor, actor_label=actor_label, ip=ip,
            target=name, old=before[name], new=after[name],
        )
    if apply_to_existing:
        count = sessions.apply(new, now=now)
        audit.record(
            "settings.applied_to_existing", now=now, actor=actor, actor_label=actor_label, ip=ip,
            sessions=count,
        )
    db.session.commit()
    return changed

