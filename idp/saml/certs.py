"""The SAML signing keys, their self-signed certificates in `certs/`, and their rollover.

Service providers pin our certificate from our metadata and re-read that metadata on their own
schedule, so a new certificate is published before it signs and an old one stays published after
it stops (the rollover ADFS, Keycloak and Shibboleth use):

1. `rotate` (`flask saml rotate-cert`) makes a key and certificate and *stages* it: role `next`,
   listed in the metadata, signing nothing. One at a time: a second rotate is refused unless it
   replaces the staged pair (which never signed, so dropping it is safe).
2. `activate` (`flask saml activate-cert`), no sooner than `publish_for` after staging unless
   forced, makes it the `signing` one; the one it replaces becomes `previous`, retired then.
3. A previous certificate is published while `now < retired_at + publish_for` (as OIDC keys are,
   `idp/keys.py`); after that it is out of the metadata, and the next rotate or activate deletes
   its files.

Files: the first pair is `saml-signing-key.pem` / `saml-signing-cert.pem`, made on first use;
later ones are `saml-<id>-key.pem` / `saml-<id>-cert.pem`, `<id>` the first 16 hex digits of the
certificate's SHA-256 fingerprint. Keys are mode 0600; every name matches the `certs/*.pem`
git-ignore rule. `certs/saml.json` records when each pair was staged, activated and retired; the
first rotate writes it, and without it the first pair signs (as before rotation existed).

Every change happens under the `flock` on `certs/.lock` shared with `idp/keys.py`, starting from
the manifest on disk; files are written before the manifest that names them. A running process
caches the pairs and reads them again when the manifest has been replaced, so an activation needs
no restart; roles follow from the times, so a previous certificate leaves the metadata on time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from idp import keys
from idp.keys import DEFAULT_PUBLISH_FOR, KeyRingError, _locked, _stamp, _sync_folder, _utc, _write_aside, keyring_folder

KEY_FILE = "saml-signing-key.pem"
CERT_FILE = "saml-signing-cert.pem"
MANIFEST = "saml.json"
VALID_FOR = timedelta(days=3650)
BACKDATE = timedelta(minutes=5)  # tolerate peers whose clocks run a little behind
PUBLISH_FOR = DEFAULT_PUBLISH_FOR


class CertError(KeyRingError):
    """A certificate change refused in the current state; the message says why and what to do."""


@dataclass(frozen=True)
class SigningPair:
    key_file: Path
    cert_file: Path
    cert_pem: bytes

    @property
    def cert_base64(self) -> str:
        """The certificate's DER in base64 on one line, as it appears in `<ds:X509Certificate>`."""
        lines = self.cert_pem.decode().strip().splitlines()
        return "".join(line for line in lines if not line.startswith("-----"))

    @cached_property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the DER, colon-separated hex: what SP administrators compare."""
        return self.certificate.fingerprint(hashes.SHA256()).hex(":").upper()

    @property
    def id(self) -> str:
        return self.certificate.fingerprint(hashes.SHA256()).hex()[:16]


@dataclass(frozen=True)
class CertEntry:
    """One manifest line. Its role follows from the times: not activated = next, activated and
    not retired = signing, retired = previous while still published, then gone."""

    id: str
    key_file: str
    cert_file: str
    staged_at: datetime
    activated_at: datetime | None = None
    retired_at: datetime | None = None

    @property
    def live_role(self) -> str | None:
        """signing or next; None once retired (then the role depends on the time)."""
        if self.retired_at is None:
            return "signing" if self.activated_at is not None else "next"
        return None

    def role(self, now: datetime, publish_for: timedelta) -> str:
        """live_role, else previous while published, else retired (out of the metadata)."""
        if self.retired_at is None:
            return self.live_role
        return "previous" if now < self.retired_at + publish_for else "retired"

    def as_json(self) -> dict:
        def text(moment):
            return moment.isoformat() if moment else None
        return {"id": self.id, "key_file": self.key_file, "cert_file": self.cert_file, "staged_at": text(self.staged_at),
                "activated_at": text(self.activated_at), "retired_at": text(self.retired_at)}


_ORDER = {"signing": 0, "next": 1, "previous": 2, "retired": 3}


class CertSet:
    """Every SAML pair in the folder, read and checked once."""

    def __init__(self, folder: Path, host: str, entries: list[CertEntry], pairs: dict[str, SigningPair],
                 publish_for: timedelta = PUBLISH_FOR) -> None:
        self.folder, self.host, self.publish_for = folder, host, publish_for
        self._set(entries, pairs)

    @classmethod
    def load(cls, folder: Path, *, host: str, now: datetime) -> CertSet:
        """Read the pairs in `folder`, making the first one when there is neither manifest nor pair."""
        folder, now = Path(folder), _utc(now)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        with _locked(folder):
            entries = _entries(folder, host, now)
            pairs = _read_pairs(folder, entries)
        return cls(folder, host, entries, pairs)

    @property
    def signing(self) -> SigningPair:
        return next(self._pairs[e.id] for e in self._entries if e.live_role == "signing")

    @property
    def staged(self) -> SigningPair | None:
        return next((self._pairs[e.id] for e in self._entries if e.live_role == "next"), None)

    def rows(self, now: datetime) -> list[tuple[str, CertEntry, SigningPair]]:
        """(role, entry, pair) for every pair: signing, next, previous (newest first), retired."""
        rows = [(e.role(now, self.publish_for), e, self._pairs[e.id]) for e in self._entries]
        return sorted(rows, key=lambda row: (_ORDER[row[0]], -(row[1].retired_at or now).timestamp()))

    def published(self, now: datetime) -> list[SigningPair]:
        """The certificates the metadata lists at `now`, the signing one first."""
        return [pair for role, _, pair in self.rows(_utc(now)) if role != "retired"]

    def rotate(self, *, now: datetime, replace_staged: bool = False) -> SigningPair:
        """Stage a new pair. A second one while one is staged is refused unless `replace_staged`,
        which discards the staged pair (it never signed) and restarts the publish period."""
        now = _utc(now)

        def stage(entries):
            staged = [e for e in entries if e.live_role == "next"]
            if staged and not replace_staged:
                raise CertError(f"certificate {staged[0].id} is already staged since {staged[0].staged_at:%Y-%m-%d %H:%M} UTC; "
                                "activate it with `saml activate-cert`, or discard it with `saml rotate-cert --replace`")
            return [e for e in entries if e not in staged] + [_new_pair(self.folder, self.host, now)]
        self._change(now, stage)
        return self.staged

    def activate(self, *, now: datetime, force: bool = False) -> SigningPair:
        """Sign with the staged pair and retire the signing one at `now`. Refused before the staged
        pair has been published for `publish_for` (SPs may not have it yet) unless `force`."""
        now = _utc(now)

        def promote(entries):
            staged = next((e for e in entries if e.live_role == "next"), None)
            if staged is None:
                raise CertError("no certificate is staged; run `saml rotate-cert` first")
            ready = staged.staged_at + self.publish_for
            if now < ready and not force:
                raise CertError(f"certificate {staged.id} has been published only since {staged.staged_at:%Y-%m-%d %H:%M} UTC; "
                                f"service providers may not have it yet: activate from {ready:%Y-%m-%d %H:%M} UTC, or use --force")
            return [replace(e, activated_at=now) if e is staged
                    else replace(e, retired_at=now) if e.live_role == "signing" else e for e in entries]
        self._change(now, promote)
        return self.signing

    def _change(self, now: datetime, edit) -> None:
        """Apply `edit` to the manifest on disk (another process may have changed it), drop pairs
        no longer published, write the manifest, then delete the files it no longer names."""
        with _locked(self.folder):
            before = _entries(self.folder, self.host, now)
            after = [e for e in edit(before) if e.role(now, self.publish_for) != "retired"]
            self._set(after, _read_pairs(self.folder, after))  # checked before it is written
            _write_manifest(self.folder, after)
            kept = {e.id for e in after}
            for entry in before:
                if entry.id not in kept:
                    (self.folder / entry.key_file).unlink(missing_ok=True)
                    (self.folder / entry.cert_file).unlink(missing_ok=True)

    def _set(self, entries: list[CertEntry], pairs: dict[str, SigningPair]) -> None:
        roles = [e.live_role for e in entries]
        if roles.count("signing") != 1 or roles.count("next") > 1:
            raise KeyRingError(f"{self.folder / MANIFEST} must have one signing certificate and at most one staged")
        self._entries, self._pairs = list(entries), pairs


def issuer_host(app) -> str:
    return urlsplit(app.config["ISSUER"]).hostname or "localhost"


def read(app) -> CertSet:
    """The pairs as on disk now, for commands that change them."""
    return CertSet.load(keyring_folder(app), host=issuer_host(app), now=app.extensions["idp.clock"].now())


def cert_set(app) -> CertSet:
    """The app's pairs, cached, and re-read when the manifest has been replaced (a rotate or
    activate in any process): one `stat` per call, so a running server follows an activation
    without a restart. Roles are computed from the times, so no re-read is needed for those."""
    try:
        found = (keyring_folder(app) / MANIFEST).stat()
        stamp = (found.st_ino, found.st_mtime_ns)  # a rewrite is a new file: os.replace
    except FileNotFoundError:
        stamp = None
    cached = app.extensions.get("idp.saml.signing")
    if cached is None or cached[0] != stamp:
        cached = app.extensions["idp.saml.signing"] = (stamp, read(app))
    return cached[1]


def current(app) -> SigningPair:
    """The pair that signs responses and metadata, made on first use."""
    return cert_set(app).signing


def published(app) -> list[SigningPair]:
    """What the metadata lists now, at the app's clock: the signing pair first."""
    return cert_set(app).published(app.extensions["idp.clock"].now())


def load(folder: Path, *, host: str, now: datetime) -> SigningPair:
    """The signing pair in `folder`, made when missing (also how tests make an SP's pair)."""
    return CertSet.load(folder, host=host, now=now).signing


def _entries(folder: Path, host: str, now: datetime) -> list[CertEntry]:
    """The manifest's entries or, before the first rotation, the one pair under the fixed names."""
    entries = _read_manifest(folder)
    return [_first_pair(folder, host, now)] if entries is None else entries


def _first_pair(folder: Path, host: str, now: datetime) -> CertEntry:
    """Without a manifest, the pair under the fixed names signs; it is made here when missing."""
    key_path, cert_path = folder / KEY_FILE, folder / CERT_FILE
    if not key_path.exists():
        cert_path.unlink(missing_ok=True)  # a certificate without its key is useless
        _place(folder, KEY_FILE, _key_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)), 0o600)
    if not cert_path.exists():
        _place(folder, CERT_FILE, _self_signed(_read_key(key_path), host, now).public_bytes(serialization.Encoding.PEM), 0o644)
    pair = _read_pair(folder, KEY_FILE, CERT_FILE)
    made = pair.certificate.not_valid_before_utc + BACKDATE
    return CertEntry(pair.id, KEY_FILE, CERT_FILE, staged_at=made, activated_at=made)


def _new_pair(folder: Path, host: str, now: datetime) -> CertEntry:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = _self_signed(key, host, now).public_bytes(serialization.Encoding.PEM)
    ident = SigningPair(Path(), Path(), pem).id
    entry = CertEntry(ident, f"saml-{ident}-key.pem", f"saml-{ident}-cert.pem", staged_at=now)
    _place(folder, entry.key_file, _key_pem(key), 0o600)
    _place(folder, entry.cert_file, pem, 0o644)
    return entry


def _place(folder: Path, name: str, data: bytes, mode: int) -> None:
    """Write `name` whole or not at all, never over an existing file, and on disk before the
    manifest (or certificate) that names it."""
    draft = _write_aside(folder, name.removesuffix(".pem"), data, mode)
    try:
        os.link(draft, folder / name)
    finally:
        draft.unlink()
    _sync_folder(folder)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _write_manifest(folder: Path, entries: list[CertEntry]) -> None:
    keys.write_json(folder, MANIFEST, {"certs": [e.as_json() for e in entries]})


def _read_manifest(folder: Path) -> list[CertEntry] | None:
    entries = keys.read_entries(folder, MANIFEST, "certs", lambda item: CertEntry(
        item["id"], item["key_file"], item["cert_file"], _stamp(item["staged_at"]),
        *(_stamp(item[k]) if item[k] is not None else None for k in ("activated_at", "retired_at"))))
    for entry in entries or ():
        if any(not isinstance(name, str) or Path(name).name != name for name in (entry.key_file, entry.cert_file)):
            raise KeyRingError(f"{folder / MANIFEST}: bad file names for certificate {entry.id!r}")
    return entries


def _read_pairs(folder: Path, entries: list[CertEntry]) -> dict[str, SigningPair]:
    pairs = {}
    for entry in entries:
        pair = pairs[entry.id] = _read_pair(folder, entry.key_file, entry.cert_file)
        if pair.id != entry.id:
            raise KeyRingError(f"{pair.cert_file}: its fingerprint starts {pair.id}, not {entry.id} as {MANIFEST} says")
    return pairs


def _read_pair(folder: Path, key_name: str, cert_name: str) -> SigningPair:
    """A key and certificate, checked: the key is RSA, the certificate reads and belongs to it."""
    key_path, cert_path = folder / key_name, folder / cert_name
    key = _read_key(key_path)
    try:
        cert_pem = cert_path.read_bytes()
        cert = x509.load_pem_x509_certificate(cert_pem)
    except OSError as error:
        raise KeyRingError(f"cannot read {cert_path}: {error.strerror}") from None
    except ValueError:
        raise KeyRingError(f"{cert_path} is not a PEM certificate") from None
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        raise KeyRingError(f"{cert_path} does not belong to the key {key_path}")
    return SigningPair(key_file=key_path, cert_file=cert_path, cert_pem=cert_pem)


def _read_key(path: Path) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as error:
        raise KeyRingError(f"cannot read {path}: {error.strerror}") from None
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
        raise KeyRingError(f"{path} is not an RSA private key of at least 2048 bits")
    return key


def _self_signed(key: rsa.RSAPrivateKey, host: str, now: datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
        ), critical=True)
        .sign(key, hashes.SHA256())
    )
