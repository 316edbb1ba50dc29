"""Model data over HTTP from a real server on loopback: download, status errors, cut connections, timeouts."""

from __future__ import annotations

import io
import tarfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from modelhost.errors import DeploymentError
from modelhost.storage.artifacts import ArtifactCache
from modelhost.storage.limits import DataLimits
from modelhost.storage.uris import parse_model_data_url

MODEL = {"serving.properties": b"engine=Python\n", "weights.bin": bytes(range(256)) * 64}


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


ARCHIVE = tar_gz(MODEL)


class ModelFiles(BaseHTTPRequestHandler):
    """/model.tar.gz whole; /slow.tar.gz 100 bytes every 0.2 s; /stall.tar.gz headers only;
    /short.tar.gz half, then hangs up."""

    def do_GET(self) -> None:
        if self.path == "/model.tar.gz":
            self._send(ARCHIVE)
        elif self.path == "/slow.tar.gz":
            self._send_headers(len(ARCHIVE))
            for start in range(0, len(ARCHIVE), 100):
                self.wfile.write(ARCHIVE[start : start + 100])
                self.wfile.flush()
                time.sleep(0.2)
        elif self.path == "/stall.tar.gz":
            self._send_headers(len(ARCHIVE))
            self.wfile.flush()
            time.sleep(5)
        elif self.path == "/short.tar.gz":
            self._send_headers(len(ARCHIVE))
            self.wfile.write(ARCHIVE[: len(ARCHIVE) // 2])
            self.close_connection = True
        else:
            self.send_error(404, "Not Found")

    def _send_headers(self, length: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def _send(self, body: bytes) -> None:
        self._send_headers(len(body))
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ModelFiles)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def cache(tmp_path: Path) -> ArtifactCache:
    # the test server listens on loopback, which model data may come from only when allowed
    return ArtifactCache(
        tmp_path / "artifacts", max_extract_bytes=1 << 30, chunk_bytes=4096, limits=DataLimits(allow_private_http=True)
    )


def test_http_archive_is_downloaded_and_extracted(cache: ArtifactCache, http_base: str) -> None:
    lines: list[str] = []
    folder = cache.prepare(parse_model_data_url(f"{http_base}/model.tar.gz"), timeout_s=30, progress=lines.append)
    assert (folder / "weights.bin").read_bytes() == MODEL["weights.bin"]
    assert any(line.endswith("(100%)") for line in lines), lines


def test_http_404_names_the_url(cache: ArtifactCache, http_base: str) -> None:
    with pytest.raises(DeploymentError) as caught:
        cache.prepare(parse_model_data_url(f"{http_base}/missing.tar.gz"), timeout_s=30)
    assert caught.value.phase == "download"
    assert caught.value.reason == f"{http_base}/missing.tar.gz answered HTTP 404 Not Found"


def test_cut_connection_is_a_download_error(tmp_path: Path, cache: ArtifactCache, http_base: str) -> None:
    with pytest.raises(DeploymentError) as caught:
        cache.prepare(parse_model_data_url(f"{http_base}/short.tar.gz"), timeout_s=30)
    assert caught.value.phase == "download"
    assert caught.value.reason.startswith(f"could not download {http_base}/short.tar.gz: RemoteProtocolError")
    assert not (tmp_path / "artifacts" / "blobs").exists()


@pytest.mark.parametrize("path", ["/slow.tar.gz", "/stall.tar.gz"])
def test_slow_download_stops_at_the_timeout(tmp_path: Path, cache: ArtifactCache, http_base: str, path: str) -> None:
    started = time.monotonic()
    with pytest.raises(DeploymentError) as caught:
        cache.prepare(parse_model_data_url(f"{http_base}{path}"), timeout_s=1)
    elapsed_s = time.monotonic() - started
    assert caught.value.phase == "download"
    assert caught.value.reason.startswith("model data did not download within 1 s (ModelDataDownloadTimeoutInSeconds)")
    assert elapsed_s < 3
    assert list((tmp_path / "artifacts" / "tmp").iterdir()) == []


def test_connection_refused_is_a_download_error(cache: ArtifactCache, closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/model.tar.gz"
    with pytest.raises(DeploymentError) as caught:
        cache.prepare(parse_model_data_url(url), timeout_s=30)
    assert caught.value.reason == f"could not download {url}: could not connect to the host"
