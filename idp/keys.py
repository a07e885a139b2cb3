"""Token signing keys in `certs/`: the only module that reads that folder.

Layout: one private key per file, `certs/<kid>.pem` (mode 0600, git-ignored), and a manifest
`certs/keys.json` saying which key signs for which algorithm, when it was made and when it was
retired. The kid is the key's RFC 7638 thumbprint, so a file can always be checked against its
name. The ring holds one active RS256 (RSA 2048) and one active ES256 (P-256) key.

A retired key is still published (JWKS, verification) while a token it signed may be valid:
a key is published at `now` when it is active or `now < retired_at + publish_for`; at exactly
`retired_at + publish_for` it is no longer published and `prune` deletes it.

Every change (first creation, rotate, prune) happens under an exclusive `flock` on
`certs/.lock` and re-reads the manifest first, so two processes starting or rotating at once
end with one consistent ring. Files are written aside and linked or renamed into place, and key
files before the manifest that names them, so a crash never leaves a manifest naming a
missing file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from joserfc.jwk import ECKey, KeySet, RSAKey

from idp import ROOT

MANIFEST = "keys.json"
LOCK = ".lock"
DEFAULT_PUBLISH_FOR = timedelta(hours=24)
# Algorithm -> how to make its key and which key class reads it back.
_KINDS = {
    "RS256": (RSAKey, lambda: RSAKey.generate_key(2048)),
    "ES256": (ECKey, lambda: ECKey.generate_key("P-256")),
}


class KeyRingError(Exception):
    """`certs/` is missing, unreadable or inconsistent; the one-line message says what and where."""


def keyring_folder(app) -> Path:
    """The app's key folder: `CERTS_PATH` if configured (tests), else `certs/` in the repository."""
    return Path(app.config.get("CERTS_PATH", ROOT / "certs"))


RELOAD_AFTER = timedelta(hours=1)


def current(app) -> KeyRing:
    """The app's key ring, created on first use and re-read when `keys rotate` changed the
    manifest (or hourly, so retired keys leave the JWKS on time). Cached: JWKS and token
    signing need no disk access per request."""
    now = app.extensions["idp.clock"].now()
    folder = keyring_folder(app)
    manifest = folder / MANIFEST
    stamp = manifest.stat().st_mtime_ns if manifest.exists() else None
    cached = app.extensions.get("idp.keyring")
    if cached is None or cached[0] != stamp or now - cached[1] >= RELOAD_AFTER:
        ring = KeyRing.load(folder, now=now)
        cached = (manifest.stat().st_mtime_ns, now, ring)
        app.extensions["idp.keyring"] = cached
    return cached[2]


@dataclass(frozen=True)
class KeyEntry:
    """One manifest line; `retired_at` is None while the key signs."""

    kid: str
    alg: str
    file: str
    created_at: datetime
    retired_at: datetime | None = None

    def published(self, now: datetime, publish_for: timedelta) -> bool:
        return self.retired_at is None or now < self.retired_at + publish_for

    def as_json(self) -> dict:
        return {
            "kid": self.kid, "alg": self.alg, "file": self.file,
            "created_at": self.created_at.isoformat(),
            "retired_at": self.retired_at.isoformat() if self.retired_at else None,
        }


class KeyRing:
    """The signing keys, loaded and checked once; JWKS bytes and verification keys are
    computed once per load/rotate/prune, as of that call's `now` (requests only read them)."""

    def __init__(self, folder: Path, entries: list[KeyEntry], keys: dict, *, now: datetime, publish_for: timedelta) -> None:
        self.folder = folder
        self.publish_for = publish_for
        self._set(entries, keys, now)

    @classmethod
    def load(cls, folder: Path, *, now: datetime, create: bool = True,
             publish_for: timedelta = DEFAULT_PUBLISH_FOR) -> KeyRing:
        """Read and check the ring in `folder`, first making an RS256 and an ES256 key when there is
        no manifest and `create` is true. `publish_for` must be longer than any token signed with a
        key can stay valid: that is how long a retired key keeps being published."""
        if publish_for <= timedelta(0):
            raise ValueError("publish_for must be positive")
        folder, now = Path(folder), _utc(now)
        if create:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        elif not (folder / MANIFEST).exists():
            raise KeyRingError(f"no signing keys in {folder} (no {MANIFEST}); they are made on first start")
        with _locked(folder):
            entries = _read_manifest(folder)
            if entries is None:
                entries, keys = [], {}
                for alg in _KINDS:
                    entry, key = _new_key(folder, alg, now)
                    entries.append(entry)
                    keys[entry.kid] = key
                _write_manifest(folder, entries)
            else:
                keys = _read_keys(folder, entries)
        return cls(folder, entries, keys, now=now, publish_for=publish_for)

    @property
    def entries(self) -> list[KeyEntry]:
        """Every key in the manifest, published or not, oldest first."""
        return list(self._entries)

    def kid(self, alg: str = "RS256") -> str:
        """The kid of the active key for `alg` (what goes into a token's header)."""
        for entry in self._entries:
            if entry.alg == alg and entry.retired_at is None:
                return entry.kid
        raise KeyRingError(f"no active {alg} signing key; the ring has {', '.join(_KINDS)}")

    def signing_key(self, alg: str = "RS256"):
        """The active private joserfc key for `alg`, its kid, alg and use set."""
        return self._keys[self.kid(alg)]

    def public_jwks(self) -> dict:
        """{"keys": [...]}: public members only, every published key, newest first (a fresh copy)."""
        return json.loads(self._jwks_bytes)

    @property
    def jwks_bytes(self) -> bytes:
        """`public_jwks()` as JSON, encoded once: it is served on every JWKS request."""
        return self._jwks_bytes

    def verification_keys(self) -> KeySet:
        """The published public keys, to check signatures of tokens this provider issued."""
        return self._key_set

    def rotate(self, *, now: datetime) -> dict[str, str]:
        """Make a new key for each algorithm and retire the active ones at `now` (they stay
        published for `publish_for`). Returns {alg: new kid}."""
        now = _utc(now)
        with _locked(self.folder):
            entries = self._reread()
            keys = _read_keys(self.folder, entries)
            entries = [replace(e, retired_at=now) if e.retired_at is None else e for e in entries]
            made = {}
            for alg in _KINDS:
                entry, key = _new_key(self.folder, alg, now)
                entries.append(entry)
                keys[entry.kid] = key
                made[alg] = entry.kid
            _write_manifest(self.folder, entries)
        self._set(entries, keys, now)
        return made

    def prune(self, *, now: datetime) -> list[str]:
        """Delete the keys no longer published at `now` (retired at or before `now - publish_for`):
        the manifest first, then their files. Returns their kids."""
        now = _utc(now)
        with _locked(self.folder):
            entries = self._reread()
            gone = [e for e in entries if not e.published(now, self.publish_for)]
            entries = [e for e in entries if e.published(now, self.publish_for)]
            if gone:
                _write_manifest(self.folder, entries)
                for entry in gone:
                    (self.folder / entry.file).unlink(missing_ok=True)
            keys = _read_keys(self.folder, entries)
        self._set(entries, keys, now)
        return [e.kid for e in gone]

    def _reread(self) -> list[KeyEntry]:
        """Another process may have changed the ring since we loaded it: start from the disk."""
        entries = _read_manifest(self.folder)
        if entries is None:
            raise KeyRingError(f"{self.folder / MANIFEST} has disappeared")
        return entries

    def _set(self, entries: list[KeyEntry], keys: dict, now: datetime) -> None:
        for alg in _KINDS:
            if sum(e.alg == alg and e.retired_at is None for e in entries) != 1:
                raise KeyRingError(f"{self.folder / MANIFEST} must have exactly one active {alg} key")
        published = sorted((e for e in entries if e.published(now, self.publish_for)),
                           key=lambda e: e.created_at, reverse=True)
        jwks = {"keys": [{**keys[e.kid].as_dict(private=False), "kid": e.kid, "alg": e.alg, "use": "sig"}
                         for e in published]}
        self._entries, self._keys = list(entries), keys
        self._jwks_bytes = json.dumps(jwks).encode()
        self._key_set = KeySet([_KINDS[e.alg][0].import_key(jwk) for e, jwk in zip(published, jwks["keys"])])


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC)


@contextlib.contextmanager
def _locked(folder: Path):
    """Exclusive across processes on this host; readers of an unchanged ring wait only briefly."""
    try:
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        raise KeyRingError(f"cannot open {folder / LOCK}: {error.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _new_key(folder: Path, alg: str, now: datetime):
    fresh = _KINDS[alg][1]()
    kid = fresh.thumbprint()
    entry = KeyEntry(kid=kid, alg=alg, file=f"{kid}.pem", created_at=now)
    pem = fresh.as_pem(private=True)
    draft = _write_aside(folder, kid, pem, 0o600)
    try:
        os.link(draft, folder / entry.file)  # never replaces: a kid names one key forever
    finally:
        draft.unlink()
    _sync_folder(folder)  # the key file must be on disk before the manifest that names it
    return entry, _KINDS[alg][0].import_key(pem, {"kid": kid, "alg": alg, "use": "sig"})


def _write_aside(folder: Path, stem: str, data: bytes, mode: int) -> Path:
    """A new file next to its final place (O_EXCL, so never someone else's), flushed to disk."""
    draft = folder / f".{stem}.{secrets.token_hex(4)}.tmp"
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return draft


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(folder: Path, name: str, payload: dict) -> None:
    """Replace `folder/name` with `payload` as JSON, atomically: a crash leaves old or new."""
    data = json.dumps(payload, indent=2).encode() + b"\n"
    os.replace(_write_aside(folder, Path(name).stem, data, 0o644), folder / name)
    _sync_folder(folder)


def read_entries(folder: Path, name: str, section: str, build) -> list | None:
    """`build(item)` for each item of `section` in the JSON file `folder/name`; None if there is
    no such file; `KeyRingError` if it cannot be read or an item is malformed."""
    path = folder / name
    try:
        return [build(item) for item in json.loads(path.read_bytes())[section]]
    except FileNotFoundError:
        return None
    except OSError as error:
        raise KeyRingError(f"cannot read {path}: {error.strerror}") from None
    except (ValueError, KeyError, TypeError) as error:
        raise KeyRingError(f"{path} is malformed: {type(error).__name__} {error}") from None


def _write_manifest(folder: Path, entries: list[KeyEntry]) -> None:
    write_json(folder, MANIFEST, {"keys": [e.as_json() for e in entries]})


def _read_manifest(folder: Path) -> list[KeyEntry] | None:
    entries = read_entries(folder, MANIFEST, "keys", lambda item: KeyEntry(
        kid=item["kid"], alg=item["alg"], file=item["file"], created_at=_stamp(item["created_at"]),
        retired_at=_stamp(item["retired_at"]) if item["retired_at"] is not None else None,
    ))
    for entry in entries or ():
        if entry.alg not in _KINDS or not isinstance(entry.kid, str) or Path(entry.file).name != entry.file:
            raise KeyRingError(f"{folder / MANIFEST}: bad entry for kid {entry.kid!r} (alg {entry.alg!r}, file {entry.file!r})")
    return entries


def _stamp(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    return moment.astimezone(UTC)


def _read_keys(folder: Path, entries: list[KeyEntry]) -> dict:
    """Each entry's private key, checked: it reads, is the right kind, and its thumbprint is its kid."""
    keys = {}
    for entry in entries:
        path = folder / entry.file
        try:
            pem = path.read_bytes()
        except OSError as error:
            raise KeyRingError(f"cannot read key file {path} (kid {entry.kid}): {error.strerror}") from None
        cls = _KINDS[entry.alg][0]
        try:
            key = cls.import_key(pem, {"kid": entry.kid, "alg": entry.alg, "use": "sig"})
            right_kind = key.is_private and (
                key.curve_name == "P-256" if entry.alg == "ES256" else key.raw_value.key_size >= 2048
            )
        except Exception:  # joserfc and cryptography raise several types for a bad PEM
            right_kind = False
        if not right_kind:
            raise KeyRingError(f"{path} is not a private {entry.alg} key")
        if key.thumbprint() != entry.kid:
            raise KeyRingError(f"{path}: kid {entry.kid} does not match the key's thumbprint {key.thumbprint()}")
        keys[entry.kid] = key
    return keys
