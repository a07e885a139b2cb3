"""Users, roles and permissions, and the password check (argon2id at the OWASP minimum)."""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from directory import audit, sessions
from directory.db import db
from directory.models import Role, RolePermission, User
from directory.policy import EndReason

PERMISSIONS = (
    "sessions:view",
    "sessions:revoke",
    "sessions:configure",
    "users:manage",
    "apps:manage",
    "audit:view",
)
BUILTIN_ROLES = {
    "admin": ("Every permission", PERMISSIONS),
    "session-manager": ("Sees and ends sessions", ("sessions:view", "sessions:revoke")),
    "user": ("Signs in; no admin permissions", ()),
}
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
_USERNAME = re.compile(r"[a-z0-9][a-z0-9._@+-]{0,149}")

# OWASP's minimum for argon2id: 19 MiB, 2 passes, 1 lane.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


class AccountError(ValueError):
    """A request about accounts that cannot be carried out; the message is fit to show."""


def normalize_username(raw: str) -> str:
    """Usernames compare case-insensitively, so they are stored case-folded."""
    name = raw.strip().casefold()
    if not _USERNAME.fullmatch(name):
        raise AccountError(
            "a username is 1 to 150 letters, digits or . _ @ + -, starting with a letter or digit"
        )
    return name


def check_password_rules(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise AccountError(f"a password is {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters long")


def ensure_builtin_roles() -> None:
    """Create the built-in roles if missing; idempotent, run by setup and tests."""
    existing = {role.name for role in db.session.scalars(select(Role))}
    for name, (description, permissions) in BUILTIN_ROLES.items():
        if name not in existing:
            db.session.add(
                Role(
                    name=name,
                    description=description,
                    builtin=True,
                    grants=[RolePermission(permission=p) for p in permissions],
                )
            )
    db.session.commit()


def find_user(username: str) -> User | None:
    try:
        name = normalize_username(username)
    except AccountError:
        return None
    return db.session.scalar(select(User).where(User.username == name))


def create_user(
    username: str,
    password: str,
    *,
    now: datetime,
    email: str = "",
    display_name: str = "",
    role: str = "user",
    actor_label: str = "cli",
) -> User:
    name = normalize_username(username)
    check_password_rules(password)
    role_row = db.session.scalar(select(Role).where(Role.name == role))
    if role_row is None:
        raise AccountError(f"there is no role {role!r}")
    if db.session.scalar(select(User.id).where(User.username == name)) is not None:
        raise AccountError(f"user {name!r} already exists")
    user = User(
        username=name,
        email=email.strip(),
        display_name=display_name.strip() or name,
        password_hash=_hasher.hash(password),
        role=role_row,
        created_at=now,
    )
    db.session.add(user)
    db.session.flush()
    audit.record("user.created", now=now, actor_label=actor_label, target_user=user, role=role)
    db.session.commit()
    return user


def set_password(user: User, password: str, *, now: datetime, actor_label: str = "cli") -> None:
    """Replace the password; the user's sessions end, since whoever held them may not know it."""
    check_password_rules(password)
    user.password_hash = _hasher.hash(password)
    audit.record("user.password_changed", now=now, actor_label=actor_label, target_user=user)
    sessions.end_all(user=user, reason=EndReason.PASSWORD_CHANGED, now=now, actor_label=actor_label)


@cache
def _dummy_hash() -> str:
    return _hasher.hash("a password nobody has")


def authenticate(username: str, password: str) -> tuple[User | None, str | None]:
    """(user, None) when the password is right and the account enabled, else (None, why).

    An unknown username still costs one argon2 verification, so timing does not reveal
    which usernames exist. The reason is for the audit log, never for the sign-in page.
    """
    user = find_user(username)
    try:
        _hasher.verify(user.password_hash if user else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return None, "unknown_user" if user is None else "bad_password"
    if user is None:
        return None, "unknown_user"
    if user.disabled:
        return None, "disabled"
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user, None
