"""https model data from a real TLS server on 127.0.0.1: the connection goes to the checked address while the
certificate is still verified against the URL's name (SNI), with a CA bundle this test makes."""

from __future__ import annotations

import datetime
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from modelhost.errors import DeploymentError
from modelhost.storage.artifacts import ArtifactCache
from modelhost.storage.limits import DataLimits, resolve
from modelhost.storage.uris import parse_model_data_url
from tests.integration.storage.test_http_model_data import ARCHIVE, MODEL

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

NAME = "models.modelhost.test"  # no DNS has it: only the test's resolver answers for it


def _certificate(
    subject: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, public: object, *, ca: bool, names: list[str]
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(public)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    return builder.sign(key, hashes.SHA256())


@dataclass
class Tls:
    ca_file: Path
    cert_file: Path
    key_file: Path


def make_tls(folder: Path, names: list[str]) -> Tls:
    """A private CA and a server certificate for `names` (DNS names only: no IP address)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelhost test CA")])
    ca = _certificate("modelhost test CA", ca_name, ca_key, ca_key.public_key(), ca=True, names=[])
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(names[0], ca_name, ca_key, key.public_key(), ca=False, names=names)
    tls = Tls(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    tls.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    tls.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tls.key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return tls


class Files(BaseHTTPRequestHandler):
    hosts: list[str] = []

    def do_GET(self) -> None:
        Files.hosts.append(self.headers.get("Host", ""))
        if self.path != "/model.tar.gz":
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(ARCHIVE)))
        self.end_headers()
        self.wfile.write(ARCHIVE)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def https_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    tls = make_tls(tmp_path, [NAME, "localhost"])
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca_file))  # httpx trusts the test's CA (and only it)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Files)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.cert_file, tls.key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    Files.hosts = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def only_loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"] if host == NAME else resolve(host, port)


def cache(tmp_path: Path) -> ArtifactCache:
    # the server is on loopback, which model data may come from only with the allowance
    return ArtifactCache(
        tmp_path / "artifacts", 1 << 30, limits=DataLimits(allow_private_http=True), resolver=only_loopback
    )


def test_a_pinned_https_download_verifies_the_certificate_against_the_name(tmp_path: Path, https_server: int) -> None:
    # NAME resolves (once, for the check) to 127.0.0.1; the connection goes there, and TLS still checks NAME
    folder = cache(tmp_path).prepare(parse_model_data_url(f"https://{NAME}:{https_server}/model.tar.gz"), 30)
    assert (folder / "weights.bin").read_bytes() == MODEL["weights.bin"]
    assert Files.hosts == [f"{NAME}:{https_server}"]  # the Host header keeps the name


def test_localhost_through_the_systems_resolver(tmp_path: Path, https_server: int) -> None:
    folder = cache(tmp_path).prepare(parse_model_data_url(f"https://localhost:{https_server}/model.tar.gz"), 30)
    assert (folder / "serving.properties").is_file()


def test_a_certificate_for_another_name_is_refused(tmp_path: Path, https_server: int) -> None:
    # the certificate names NAME and localhost, not the address: asked by address, verification fails
    with pytest.raises(DeploymentError) as failure:
        cache(tmp_path).prepare(parse_model_data_url(f"https://127.0.0.1:{https_server}/model.tar.gz"), 30)
    assert failure.value.phase == "download"
    assert failure.value.reason.startswith(
        f"could not download https://127.0.0.1:{https_server}/model.tar.gz: the server's certificate could not be "
        "verified (IP address mismatch"
    ), failure.value.reason
    assert Files.hosts == []  # no request was sent over an unverified connection
