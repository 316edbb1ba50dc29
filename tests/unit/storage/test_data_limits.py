"""Model data limits: allowed local roots, regular files and folders only, private copies, and no http(s)
fetches of loopback, link-local or private addresses unless allowed."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import httpx
import pytest

from modelhost.errors import DeploymentError
from modelhost.storage.artifacts import ArtifactCache
from modelhost.storage.limits import (
    DataLimits,
    outside_roots_reason,
    parse_local_roots,
    private_address_reason,
)
from modelhost.storage.uris import parse_model_data_url
from tests.unit.storage.test_artifact_cache import MODEL, make_tar_gz


def cache(
    tmp_path: Path, limits: DataLimits | None = None, transport: httpx.BaseTransport | None = None
) -> ArtifactCache:
    return ArtifactCache(tmp_path / "cache", max_extract_bytes=1 << 20, limits=limits, http_transport=transport)


def refusal(c: ArtifactCache, url: str) -> str:
    with pytest.raises(DeploymentError) as caught:
        c.prepare(parse_model_data_url(url), timeout_s=10)
    assert caught.value.phase == "download"
    return caught.value.reason


# deciders -------------------------------------------------------------------------------------------
def test_roots_parse() -> None:
    assert parse_local_roots(None) is None and parse_local_roots("") is None
    assert parse_local_roots("/data/models:/srv/m/") == (Path("/data/models"), Path("/srv/m"))
    with pytest.raises(ValueError, match="not an absolute folder"):
        parse_local_roots("relative/dir")


def test_outside_roots_is_judged_from_the_text() -> None:
    roots = (Path("/data/models"),)
    assert outside_roots_reason(Path("/etc/passwd"), None) is None  # no roots configured: today's behaviour
    assert outside_roots_reason(Path("/data/models/a/model.tar.gz"), roots) is None
    assert outside_roots_reason(Path("/data/models"), roots) is None
    for path in ("/etc", "/data/models/../../etc/shadow", "/data/models-other/x", "/data"):
        reason = outside_roots_reason(Path(path), roots)
        assert reason is not None and "is outside the folders model data may be read from" in reason


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                                     "fe80::1", "0.0.0.0", "::ffff:127.0.0.1", "fd00::1", "224.0.0.1"])  # fmt: skip
def test_private_addresses_are_refused(address: str) -> None:
    reason = private_address_reason("h", [address])
    assert reason is not None and "MODELHOST_ALLOW_PRIVATE_MODEL_DATA=1" in reason


def test_public_addresses_pass() -> None:
    assert private_address_reason("h", ["93.184.216.34", "2606:2800:220:1::1"]) is None
    assert private_address_reason("h", ["93.184.216.34", "10.0.0.1"]) is not None  # any private one refuses


# local paths ------------------------------------------------------------------------------------------
def test_outside_roots_same_answer_for_missing_and_present(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    secret = tmp_path / "secret.tar.gz"
    make_tar_gz(secret, MODEL)
    c = cache(tmp_path, DataLimits(local_roots=(allowed,)))
    present = refusal(c, str(secret)).replace(str(secret), "X")
    missing = refusal(c, str(tmp_path / "nothing.tar.gz")).replace(str(tmp_path / "nothing.tar.gz"), "X")
    assert present == missing
    assert "is outside the folders model data may be read from" in present
    assert refusal(c, "file:///etc").startswith("/etc is outside")


def test_inside_roots_is_served_and_a_symlink_out_is_refused(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    make_tar_gz(allowed / "m.tar.gz", MODEL)
    c = cache(tmp_path, DataLimits(local_roots=(allowed,)))
    folder = c.prepare(parse_model_data_url(str(allowed / "m.tar.gz")), timeout_s=10)
    assert (folder / "serving.properties").read_bytes() == MODEL["serving.properties"]
    (allowed / "escape").symlink_to(tmp_path)
    assert "leads outside the folders" in refusal(c, str(allowed / "escape"))


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "model.tar.gz"
    os.mkfifo(fifo)
    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(refusal(cache(tmp_path), str(fifo))), daemon=True)
    worker.start()
    worker.join(timeout=5)
    assert result == [f"{fifo} is not a regular file or folder"]


def test_a_device_is_refused(tmp_path: Path) -> None:
    assert refusal(cache(tmp_path), "/dev/zero") == "/dev/zero is not a regular file or folder"


def test_copies_are_private(tmp_path: Path) -> None:
    archive = make_tar_gz(tmp_path / "m.tar.gz", MODEL)
    archive.chmod(0o600)
    c = cache(tmp_path)
    c.prepare(parse_model_data_url(str(archive)), timeout_s=10)
    root = tmp_path / "cache"
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    for folder in ("blobs", "models", "refs", "tmp"):
        assert stat.S_IMODE((root / folder).stat().st_mode) & 0o077 == 0, folder
    blobs = list((root / "blobs").iterdir())
    assert blobs and all(stat.S_IMODE(b.stat().st_mode) == 0o600 for b in blobs)


# http(s) --------------------------------------------------------------------------------------------
def test_private_http_is_refused_before_connecting(tmp_path: Path) -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        return httpx.Response(200)

    c = cache(tmp_path, transport=httpx.MockTransport(handler))
    for url in ("http://127.0.0.1:22/m.tar.gz", "http://169.254.169.254/latest/meta-data", "https://[::1]/m"):
        assert "loopback, link-local or private address" in refusal(c, url)
    assert sent == []


def test_a_redirect_to_a_private_address_is_refused(tmp_path: Path) -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        return httpx.Response(302, headers={"Location": "http://10.0.0.5/internal"})

    c = cache(tmp_path, transport=httpx.MockTransport(handler))
    assert "10.0.0.5 is a loopback, link-local or private address" in refusal(c, "http://93.184.216.34/m.tar.gz")
    assert sent == ["http://93.184.216.34/m.tar.gz"]


def test_allowed_private_http_is_fetched(tmp_path: Path) -> None:
    body = make_tar_gz(tmp_path / "m.tar.gz", MODEL).read_bytes()
    transport = httpx.MockTransport(lambda request: httpx.Response(200, stream=httpx.ByteStream(body)))
    c = cache(tmp_path, DataLimits(allow_private_http=True), transport)
    folder = c.prepare(parse_model_data_url("http://127.0.0.1:9/m.tar.gz"), timeout_s=10)
    assert (folder / "serving.properties").exists()


def test_a_new_data_directory_and_store_are_private(tmp_path: Path) -> None:
    from modelhost.home import HomeLock
    from modelhost.store.sqlite import SqliteStore

    home = tmp_path / "fresh-home"
    lock = HomeLock(home)
    lock.acquire()
    store = SqliteStore(home / "modelhost.db")
    store.open()
    store.close()
    lock.release()
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "modelhost.db").stat().st_mode) == 0o600
