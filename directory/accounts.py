"""Users, roles and permissions, and the password check (argon2id at the OWASP minimum)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, or_, select

from directory import audit, sessions
from directory.db import db
from directory.models import DirectorySession, Role, RolePermission, User
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
_ROLE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
#: Whoever holds it administers users and roles; nobody may take it from themselves.
MANAGE = "users:manage"

# OWASP's minimum for argon2id: 19 MiB, 2 passes, 1 lane.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


class AccountError(ValueError):
    """A request about accounts or roles that cannot be carried out; the message is fit to show.
    `field` names the form field at fault, when one is."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def normalize_username(raw: str) -> str:
    """Usernames compare case-insensitively, so they are stored case-folded."""
    name = raw.strip().casefold()
    if not _USERNAME.fullmatch(name):
        raise AccountError(
            "a username is 1 to 150 letters, digits or . _ @ + -, starting with a letter or digit", "username"
        )
    return name


def check_password_rules(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise AccountError(f"a password is {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters long", "password")


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


def find_role(name: str) -> Role | None:
    return db.session.scalar(select(Role).where(Role.name == name.strip()))


def _role_named(name: str) -> Role:
    role = find_role(name)
    if role is None:
        raise AccountError(f"there is no role {name!r}", "role")
    return role


def create_user(
    username: str,
    password: str,
    *,
    now: datetime,
    email: str = "",
    display_name: str = "",
    role: str = "user",
    actor: User | None = None,
    actor_label: str = "cli",
    ip: str = "",
) -> User:
    name = normalize_username(username)
    email, display_name = email.strip(), display_name.strip()
    if email and (len(email) > 254 or not _EMAIL.fullmatch(email)):
        raise AccountError("an email address looks like name@example.org (at most 254 characters)", "email")
    if len(display_name) > 200:
        raise AccountError("a display name is at most 200 characters", "display_name")
    role_row = _role_named(role)
    check_password_rules(password)
    if db.session.scalar(select(User.id).where(User.username == name)) is not None:
        raise AccountError(f"user {name!r} already exists", "username")
    user = User(
        username=name,
        email=email,
        display_name=display_name or name,
        password_hash=_hasher.hash(password),
        role=role_row,
        created_at=now,
    )
    db.session.add(user)
    db.session.flush()
    audit.record("user.created", now=now, actor=actor, actor_label=actor_label, ip=ip, target_user=user, role=role_row.name)
    db.session.commit()
    return user


def set_password(user: User, password: str, *, now: datetime, actor: User | None = None, actor_label: str = "cli", ip: str = "") -> None:
    """Replace the password; the user's sessions end, since whoever held them may not know it."""
    check_password_rules(password)
    user.password_hash = _hasher.hash(password)
    audit.record("user.password_changed", now=now, actor=actor, actor_label=actor_label, ip=ip, target_user=user)
    sessions.end_all(user=user, reason=EndReason.PASSWORD_CHANGED, now=now, actor=actor, actor_label=actor_label)


# --- administering users: each change is validated first, audited, and committed whole -------


def disable_user(user: User, *, now: datetime, actor: User | None = None, actor_label: str = "cli", ip: str = "") -> int:
    """Stop `user` signing in and end their sessions (and, through Single Logout, their
    applications' sessions); returns how many directory sessions ended."""
    if actor is not None and actor.id == user.id:
        raise AccountError("you cannot disable your own account")
    if user.disabled:
        raise AccountError(f"user {user.username!r} is already disabled")
    user.disabled = True
    audit.record("user.disabled", now=now, actor=actor, actor_label=actor_label, ip=ip, target_user=user)
    return sessions.end_all(user=user, reason=EndReason.USER_DISABLED, now=now, actor=actor, actor_label=actor_label)


def enable_user(user: User, *, now: datetime, actor: User | None = None, actor_label: str = "cli", ip: str = "") -> None:
    if not user.disabled:
        raise AccountError(f"user {user.username!r} is not disabled")
    user.disabled = False
    audit.record("user.enabled", now=now, actor=actor, actor_label=actor_label, ip=ip, target_user=user)
    db.session.commit()


def set_role(user: User, role: str, *, now: datetime, actor: User | None = None, actor_label: str = "cli", ip: str = "") -> bool:
    """Give `user` the role named `role`; False when they already had it (nothing recorded).
    Permissions are read on every request, so the change applies to live sessions at once."""
    new = _role_named(role)
    if new.id == user.role_id:
        return False
    if actor is not None and actor.id == user.id and MANAGE not in new.permissions:
        raise AccountError(f"you cannot take {MANAGE} away from yourself", "role")
    old = user.role.name
    user.role = new
    audit.record("user.role_changed", now=now, actor=actor, actor_label=actor_label, ip=ip, target_user=user, old=old, new=new.name)
    db.session.commit()
    return True


def sign_out_everywhere(user: User, *, now: datetime, actor: User | None = None, actor_label: str = "cli", ip: str = "",
                        keep: DirectorySession | None = None) -> int:
    """End every live session of `user` but `keep` (with Single Logout); returns how many."""
    audit.record("user.signed_out_everywhere", now=now, actor=actor, actor_label=actor_label, ip=ip, target_user=user)
    return sessions.end_all(user=user, reason=EndReason.ENDED_BY_ADMIN, now=now, keep=keep, actor=actor, actor_label=actor_label)


@dataclass(frozen=True)
class UserPage:
    rows: list[User]
    live: dict[int, int]  # user id -> live directory sessions
    next_cursor: str | None  # the last username shown, when more follow


def users_page(search: str = "", *, now: datetime, after: str | None = None, limit: int = 50) -> UserPage:
    """Users whose username, email or display name contains `search` (any case), by username,
    after the username `after` (keyset pages)."""
    query = select(User)
    if term := search.strip().casefold():
        query = query.where(or_(*(func.lower(column).contains(term, autoescape=True)
                                  for column in (User.username, User.email, User.display_name))))
    if after:
        query = query.where(User.username > after)
    rows = list(db.session.scalars(query.order_by(User.username).limit(limit + 1)))
    more, rows = len(rows) > limit, rows[:limit]
    return UserPage(rows=rows, live=live_session_counts([user.id for user in rows], now=now),
                    next_cursor=rows[-1].username if more else None)


def live_session_counts(user_ids: list[int], *, now: datetime) -> dict[int, int]:
    counted = db.session.execute(
        select(DirectorySession.user_id, func.count())
        .where(DirectorySession.user_id.in_(user_ids), DirectorySession.ended_at.is_(None), DirectorySession.expires_at > now)
        .group_by(DirectorySession.user_id)
    )
    return dict(counted.all())


# --- roles --------------------------------------------------------------------------------


def _role_fields(permissions, description: str) -> tuple[list[str], str]:
    unknown = sorted(set(permissions) - set(PERMISSIONS))
    if unknown:
        raise AccountError(f"no such permission: {', '.join(unknown)} (there are {', '.join(PERMISSIONS)})", "permissions")
    description = description.strip()
    if len(description) > 200:
        raise AccountError("a description is at most 200 characters", "description")
    return [p for p in PERMISSIONS if p in set(permissions)], description


def create_role(name: str, permissions, description: str = "", *, now: datetime, actor: User | None = None,
                actor_label: str = "cli", ip: str = "") -> Role:
    """A custom role granting exactly `permissions`."""
    name = name.strip().casefold()
    if not _ROLE_NAME.fullmatch(name):
        raise AccountError("a role name is 1 to 64 letters, digits or . _ -, starting with a letter or digit", "name")
    granted, description = _role_fields(permissions, description)
    if find_role(name) is not None:
        raise AccountError(f"role {name!r} already exists", "name")
    role = Role(name=name, description=description, builtin=False, grants=[RolePermission(permission=p) for p in granted])
    db.session.add(role)
    audit.record("role.created", now=now, actor=actor, actor_label=actor_label, ip=ip, target=name, permissions=granted)
    db.session.commit()
    return role


def _custom(role: Role, doing: str) -> None:
    if role.builtin:
        raise AccountError(f"{role.name!r} is a built-in role and cannot be {doing}")


def update_role(role: Role, permissions, description: str, *, now: datetime, actor: User | None = None,
                actor_label: str = "cli", ip: str = "") -> dict:
    """Set a custom role's permissions and description; returns the changes ({} for none).
    Everyone holding the role gains or loses permissions on their next request."""
    _custom(role, "changed")
    granted, description = _role_fields(permissions, description)
    if actor is not None and actor.role_id == role.id and MANAGE not in granted:
        raise AccountError(f"you cannot take {MANAGE} away from your own role", "permissions")
    old = {"permissions": [p for p in PERMISSIONS if p in role.permissions], "description": role.description}
    new = {"permissions": granted, "description": description}
    changes = {key: {"old": old[key], "new": new[key]} for key in old if old[key] != new[key]}
    if changes:
        kept = [grant for grant in role.grants if grant.permission in granted]
        role.grants = kept + [RolePermission(permission=p) for p in granted if p not in role.permissions]
        role.description = description
        audit.record("role.changed", now=now, actor=actor, actor_label=actor_label, ip=ip, target=role.name, changes=changes)
        db.session.commit()
    return changes


def delete_role(role: Role, *, now: datetime, actor: User | None = None, actor_label: str = "cli", ip: str = "") -> None:
    _custom(role, "deleted")
    holders = db.session.scalar(select(func.count()).select_from(User).where(User.role_id == role.id))
    if holders:
        raise AccountError(f"role {role.name!r} is still held by {holders} user(s); give them another role first")
    db.session.delete(role)
    audit.record("role.deleted", now=now, actor=actor, actor_label=actor_label, ip=ip, target=role.name)
    db.session.commit()


def role_holders() -> dict[int, int]:
    """Role id -> how many users hold it."""
    return dict(db.session.execute(select(User.role_id, func.count()).group_by(User.role_id)).all())


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
