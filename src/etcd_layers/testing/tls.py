"""Throw-away certificates (a CA, a server and a client) for TLS test clusters."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["TLSFiles", "generate_tls_files"]

_VALIDITY = datetime.timedelta(days=7)
# Clocks of the test machine and of etcd are the same, but a cert valid "from now" can look
# not-yet-valid to a verifier that truncates to the second.
_BACKDATE = datetime.timedelta(hours=1)


@dataclasses.dataclass(frozen=True, slots=True)
class TLSFiles:
    """Paths of the PEM files of one test PKI.

    The paths are `str` so they pass straight to `Client(ca_cert=..., cert=..., key=...)`.

    Attributes:
        ca_cert: The CA that signed both certificates; trust it on either side.
        ca_key: The CA's private key (to sign more certificates in a test).
        server_cert: The members' certificate: SAN IP 127.0.0.1 and DNS localhost; it is also
            valid for client auth, because etcd's own JSON gateway dials the member with it.
        server_key: Its private key.
        client_cert: A client certificate (CN `etcd-layers-client`).
        client_key: Its private key.
    """

    ca_cert: str
    ca_key: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str

    def client_ssl_context(self) -> ssl.SSLContext:
        """Return an SSL context that trusts the CA and presents the client certificate."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_cert)
        context.load_cert_chain(self.client_cert, self.client_key)
        return context


def generate_tls_files(
    directory: str | os.PathLike[str],
    *,
    hosts: Sequence[str] = ("127.0.0.1", "localhost"),
    client_common_name: str = "etcd-layers-client",
) -> TLSFiles:
    """Write a fresh CA, server and client certificate with their keys into `directory`.

    Keys are ECDSA P-256, which is quick to generate and accepted by Go and gRPC.

    Args:
        directory: An existing directory; files named `ca.pem`, `server.pem`, ... are written.
        hosts: The server certificate's subject alternative names: IP addresses or DNS names.
        client_common_name: The client certificate's CN (the user name etcd derives from it
            when auth is enabled).

    Returns:
        The paths written.

    Raises:
        ImportError: `cryptography` is not installed (it comes with the `[test]` extra).
    """
    try:
        from cryptography import x509  # noqa: PLC0415  # optional: only TLS clusters need it
        from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415
    except ImportError as err:
        raise ImportError(
            "TLS test clusters need the 'cryptography' package: "
            "pip install 'etcd_layers[test]' (or pip install cryptography)"
        ) from err

    root = Path(directory)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "etcd-layers test CA")])
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, _sha256())
    )

    def leaf(
        common_name: str, usages: list[x509.ObjectIdentifier], sans: list[x509.GeneralName]
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        builder = (
            _builder(subject, ca_name, key.public_key(), now)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(ca_key, _sha256()), key

    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    both = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    server_cert, server_key = leaf("etcd-layers test server", both, sans)
    client_cert, client_key = leaf(client_common_name, [ExtendedKeyUsageOID.CLIENT_AUTH], [])

    files = TLSFiles(
        ca_cert=str(root / "ca.pem"),
        ca_key=str(root / "ca-key.pem"),
        server_cert=str(root / "server.pem"),
        server_key=str(root / "server-key.pem"),
        client_cert=str(root / "client.pem"),
        client_key=str(root / "client-key.pem"),
    )
    _write_cert(files.ca_cert, ca_cert)
    _write_key(files.ca_key, ca_key)
    _write_cert(files.server_cert, server_cert)
    _write_key(files.server_key, server_key)
    _write_cert(files.client_cert, client_cert)
    _write_key(files.client_key, client_key)
    return files


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
) -> x509.CertificateBuilder:
    from cryptography import x509  # noqa: PLC0415  # imported lazily, see generate_tls_files

    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
    )


def _sha256() -> hashes.SHA256:
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415  # see generate_tls_files

    return hashes.SHA256()


def _write_cert(path: str, cert: x509.Certificate) -> None:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    Path(path).write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write_key(path: str, key: ec.EllipticCurvePrivateKey) -> None:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Only this user may read a private key (etcd does not insist, but it is good manners).
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(pem)
