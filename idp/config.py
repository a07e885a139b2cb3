"""Configuration: `IDP_*` environment variables, then explicit overrides, checked once at start."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_ISSUER = "http://127.0.0.1:8000"
_ENV = {
    "ISSUER": "IDP_ISSUER",
    "DATABASE_URL": "IDP_DATABASE_URL",
    "SECRET_KEY": "IDP_SECRET_KEY",
    "TRUSTED_PROXIES": "IDP_TRUSTED_PROXIES",
    "SWEEP_INTERVAL": "IDP_SWEEP_INTERVAL",
    "DELIVERY_INTERVAL": "IDP_DELIVERY_INTERVAL",
    "LOGOUT_TIMEOUT": "IDP_LOGOUT_TIMEOUT",
    "LOGOUT_RETRY_WINDOW": "IDP_LOGOUT_RETRY_WINDOW",
    "GEOIP_DATABASE": "IDP_GEOIP_DATABASE",
}


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def load(environ: Mapping[str, str], overrides: Mapping | None, instance_path: str) -> dict:
    """Flask config from the environment with `overrides` on top, validated and derived."""
    raw = {key: environ[var] for key, var in _ENV.items() if environ.get(var)}
    raw.update(overrides or {})
    issuer = _issuer(str(raw.get("ISSUER", DEFAULT_ISSUER)))
    secure = issuer.startswith("https://")
    config = dict(raw)
    config.update(
        ISSUER=issuer,
        SQLALCHEMY_DATABASE_URI=_database_url(raw.get("DATABASE_URL"), instance_path),
        SECRET_KEY=raw.get("SECRET_KEY") or _instance_secret(Path(instance_path)),
        TRUSTED_PROXIES=_whole(raw.get("TRUSTED_PROXIES", 0), "IDP_TRUSTED_PROXIES", high=10),
        SWEEP_INTERVAL=_whole(raw.get("SWEEP_INTERVAL", 60), "IDP_SWEEP_INTERVAL", high=86400),
        DELIVERY_INTERVAL=_whole(raw.get("DELIVERY_INTERVAL", 2), "IDP_DELIVERY_INTERVAL", high=3600),
        LOGOUT_TIMEOUT=_whole(raw.get("LOGOUT_TIMEOUT", 5), "IDP_LOGOUT_TIMEOUT", high=60) or 5,
        LOGOUT_RETRY_WINDOW=_whole(raw.get("LOGOUT_RETRY_WINDOW", 86400), "IDP_LOGOUT_RETRY_WINDOW", high=30 * 86400),
        GEOIP_DATABASE=_readable_file(raw.get("GEOIP_DATABASE"), "IDP_GEOIP_DATABASE"),
        # The `__Host-` prefix pins a cookie to this host, path / and HTTPS.
        DIRECTORY_COOKIE="__Host-idp_session" if secure else "idp_session",
        SESSION_COOKIE_NAME="__Host-idp_ui" if secure else "idp_ui",
        SESSION_COOKIE_SECURE=secure,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_PATH="/",
        PREFERRED_URL_SCHEME="https" if secure else "http",
    )
    if len(config["SECRET_KEY"]) < 32:
        raise ConfigError("IDP_SECRET_KEY must be at least 32 characters")
    return config


def _readable_file(value, variable: str) -> str | None:
    if not value:
        return None
    if not os.access(str(value), os.R_OK) or not Path(str(value)).is_file():
        raise ConfigError(f"{variable} must name a readable file, got {value!r}")
    return str(value)


def _issuer(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"IDP_ISSUER must be an http(s) URL without query or fragment, got {value!r}")
    return value.rstrip("/")


def _database_url(value: str | None, instance_path: str) -> str:
    if not value:
        Path(instance_path).mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{Path(instance_path) / 'directory.sqlite3'}"
    if value.startswith(("postgres://", "postgresql://")):
        # SQLAlchemy's default PostgreSQL driver is psycopg2; we ship psycopg 3.
        return "postgresql+psycopg://" + value.split("://", 1)[1]
    if not value.startswith(("sqlite:", "postgresql+psycopg:")):
        raise ConfigError("IDP_DATABASE_URL must be a sqlite:/// or postgresql:// URL")
    return value


def _whole(value, name: str, *, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None
    if not 0 <= number <= high:
        raise ConfigError(f"{name} must be between 0 and {high}, got {number}")
    return number


def _instance_secret(instance: Path) -> str:
    """The signing secret kept under instance/, made on first start (mode 0600)."""
    path = instance / "secret_key"
    if not path.exists():
        instance.mkdir(parents=True, exist_ok=True)
        # Written aside, then linked into place: two processes starting at once agree on one.
        draft = instance / f".secret_key.{os.getpid()}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()
