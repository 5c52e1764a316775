"""
TLS for the test servers: a private certificate authority and a TLS-terminating relay on 127.0.0.1.

:func:`make_private_ca` writes, into a folder, a CA certificate (``ca.pem``) and a server certificate
it signed for ``127.0.0.1`` / ``localhost`` (``server.pem`` + ``server.key``): what an on-prem MinIO
or Ceph endpoint presents. :func:`tls_relay` serves a plain-TCP server (moto's S3) over TLS with that
certificate, so a client sees ``https://127.0.0.1:PORT`` and must either trust the CA or skip
verification. A client that rejects the certificate ends its handshake; the relay closes that
connection and keeps accepting.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import select
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.tcp import accept_loop, close_both


@dataclass(frozen=True)
class PrivateCa:
    ca_file: str
    cert_file: str
    key_file: str


def make_private_ca(folder: Path, *, names: tuple[str, ...] = (), expired: bool = False) -> PrivateCa:
    """
    A CA and a server certificate for 127.0.0.1 / localhost it signed (PEM files in ``folder``).

    :param names: DNS names the server certificate is for instead (a certificate for another host).
    :param expired: a server certificate whose validity ended an hour ago.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlops test private CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=2 if expired else 0, hours=1))
        .not_valid_after(now - dt.timedelta(hours=1) if expired else now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name) for name in names]
                or [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    (folder / "server.pem").write_bytes(cert.public_bytes(pem))
    (folder / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return PrivateCa(str(folder / "ca.pem"), str(folder / "server.pem"), str(folder / "server.key"))


def _pump(client: socket.socket, upstream: socket.socket, context: ssl.SSLContext) -> None:
    """One relayed connection: TLS handshake with the client, then bytes both ways until either closes."""
    try:
        client.settimeout(10)
        tls = context.wrap_socket(client, server_side=True)
    except (OSError, ssl.SSLError):
        close_both(client, upstream)
        return
    tls.settimeout(None)
    try:
        while True:
            if not tls.pending():
                readable, _, _ = select.select([tls, upstream], [], [], 60)
                if not readable:
                    break
            else:
                readable = [tls]
            if tls in readable:
                data = tls.recv(65536)
                if not data:
                    break
                upstream.sendall(data)
            if upstream in readable:
                data = upstream.recv(65536)
                if not data:
                    break
                tls.sendall(data)
    except (OSError, ssl.SSLError):
        pass
    close_both(tls, upstream)


@dataclass
class TlsRelay:
    """``https://127.0.0.1:port`` in front of a plain server on ``upstream_port``."""

    port: int
    ca: PrivateCa
    connections: int = 0  # accepted so far (a TLS check's handshake is one)
    contexts: list[ssl.SSLContext] = field(default_factory=list)

    def present(self, ca: PrivateCa) -> None:
        """New connections get ``ca``'s server certificate (a certificate replaced on the server)."""
        self.contexts[:] = [server_context(ca)]

    @property
    def endpoint_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


def server_context(ca: PrivateCa) -> ssl.SSLContext:
    """A server-side TLS context presenting ``ca``'s server certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(ca.cert_file, ca.key_file)
    return context


@contextlib.contextmanager
def tls_relay(upstream_port: int, ca: PrivateCa) -> Iterator[TlsRelay]:
    """Serve the server on ``upstream_port`` over TLS with ``ca``'s server certificate."""
    listener = socket.create_server(("127.0.0.1", 0))

    def relay(client: socket.socket, upstream: socket.socket) -> None:
        served.connections += 1
        threading.Thread(target=_pump, args=(client, upstream, served.contexts[0]), daemon=True).start()

    served = TlsRelay(listener.getsockname()[1], ca, contexts=[server_context(ca)])
    threading.Thread(
        target=accept_loop, args=(listener, upstream_port, relay), name="tls-relay", daemon=True
    ).start()
    try:
        yield served
    finally:
        listener.close()
