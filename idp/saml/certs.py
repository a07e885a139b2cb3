"""The SAML signing key and its self-signed certificate in `certs/`.

`certs/saml-signing-key.pem` (RSA 2048, mode 0600) and `certs/saml-signing-cert.pem` (X.509,
self-signed, subject CN = the issuer's host, valid 10 years): both names match the
`certs/*.pem` git-ignore rule. They are made on first use under the same `flock` on
`certs/.lock` as the OIDC key ring (`idp/keys.py`), so two processes starting at once end with
one pair; the key is written before the certificate that names it.

Rotation is not built yet: SAML peers pin the certificate from our metadata, so a rotation
needs a period where metadata publishes both certificates (a later step).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from idp.keys import KeyRingError, _locked, _sync_folder, _utc, _write_aside, keyring_folder

KEY_FILE = "saml-signing-key.pem"
CERT_FILE = "saml-signing-cert.pem"
VALID_FOR = timedelta(days=3650)
BACKDATE = timedelta(minutes=5)  # tolerate peers whose clocks run a little behind


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


def current(app) -> SigningPair:
    """The app's signing pair, made on first use; cached for the app's lifetime."""
    pair = app.extensions.get("idp.saml.signing")
    if pair is None:
        host = urlsplit(app.config["ISSUER"]).hostname or "localhost"
        pair = load(keyring_folder(app), host=host, now=app.extensions["idp.clock"].now())
        app.extensions["idp.saml.signing"] = pair
    return pair


def load(folder: Path, *, host: str, now: datetime) -> SigningPair:
    """Read the pair in `folder`, making the key and/or certificate when missing, and check that
    the certificate belongs to the key."""
    folder, now = Path(folder), _utc(now)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_path, cert_path = folder / KEY_FILE, folder / CERT_FILE
    with _locked(folder):
        if not key_path.exists():
            cert_path.unlink(missing_ok=True)  # a certificate without its key is useless
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            os.replace(_write_aside(folder, "saml-key", pem, 0o600), key_path)
            _sync_folder(folder)
        key = _read_key(key_path)
        if not cert_path.exists():
            cert_pem = _self_signed(key, host, now).public_bytes(serialization.Encoding.PEM)
            os.replace(_write_aside(folder, "saml-cert", cert_pem, 0o644), cert_path)
            _sync_folder(folder)
        cert_pem = cert_path.read_bytes()
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
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
