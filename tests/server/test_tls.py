"""``opseal-server serve`` speaks TLS itself when given a certificate and key."""

from __future__ import annotations

import datetime
import ipaddress
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from opseal.client.api import ApiClient
from opseal.client.errors import TransportError

from .procs import ServerProcess, prepare_database


def self_signed(folder) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key, written to ``folder``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "opseal test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


@pytest.fixture
async def tls_server(tmp_path):
    """A real server process on SQLite serving HTTPS with a self-signed certificate."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'opseal.db'}"
    await prepare_database(url)
    cert, key = self_signed(tmp_path)
    async with ServerProcess(url, env={"OPSEAL_TLS_CERT": cert, "OPSEAL_TLS_KEY": key}) as proc:
        yield proc, cert


async def test_client_trusting_the_certificate_connects(tls_server):
    """A client given the server's CA bundle talks to it over TLS."""
    proc, cert = tls_server
    assert proc.url.startswith("https://")
    context = ssl.create_default_context(cafile=cert)
    async with ApiClient(proc.url, ssl_context=context) as api:
        assert (await api.instance()).instance_id.startswith("opseal-")


async def test_client_refuses_an_unknown_certificate(tls_server):
    """Without the CA bundle, the client refuses the server's certificate."""
    proc, _ = tls_server
    async with ApiClient(proc.url) as api:
        with pytest.raises(TransportError, match=r"[Cc]ertificate"):
            await api.instance()
