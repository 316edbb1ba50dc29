"""ArtifactCache with local and mocked-HTTP sources: reuse by content, in-place folders, timeouts."""

from __future__ import annotations

import io
import os
import tarfile
import threading
from pathlib import Path

import httpx
import pytest

from modelhost.errors import DeploymentError
from modelhost.storage.artifacts import ArtifactCache
from modelhost.storage.limits import DataLimits
from modelhost.storage.uris import parse_model_data_url, parse_s3_data_source


def make_tar_gz(path: Path, files: dict[str, bytes]) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path


class FakeClock:
    """Advances by `step_s` every time it is read, so a transfer 'takes' time without sleeping."""

    def __init__(self, step_s: float) -> None:
        self.now_s = 0.0
        self.step_s = step_s

    def __call__(self) -> float:
        self.now_s += self.step_s
        return self.now_s


MODEL = {"serving.properties": b"engine=Python\n", "code/model.py": b"def handle(i, c): ...\n"}


def test_same_content_from_two_urls_is_stored_and_extracted_once(tmp_path: Path) -> None:
    first = make_tar_gz(tmp_path / "a" / "model.tar.gz", MODEL)
    second = tmp_path / "b" / "copy.tgz"
    second.parent.mkdir()
    second.write_bytes(first.read_bytes())
    cache = ArtifactCache(tmp_path / "cache", max_extract_bytes=1 << 20)

    one = cache.prepare(parse_model_data_url(str(first)), timeout_s=60)
    two = cache.prepare(parse_model_data_url(f"file://{second}"), timeout_s=60)

    assert one == two
    assert one.parent == tmp_path / "cache" / "models"
    assert (one / "code/model.py").read_bytes() == MODEL["code/model.py"]
    assert len(os.listdir(tmp_path / "cache" / "blobs")) == 1
    assert os.listdir(tmp_path / "cache" / "models") == [one.name]
    assert os.listdir(tmp_path / "cache" / "tmp") == []


def test_known_local_archive_is_not_read_again(tmp_path: Path) -> None:
    archive = make_tar_gz(tmp_path / "model.tar.gz", MODEL)
    cache = ArtifactCache(tmp_path / "cache", max_extract_bytes=1 << 20)
    lines: list[str] = []
    first = cache.prepare(parse_model_data_url(str(archive)), timeout_s=60)
    second = cache.prepare(parse_model_data_url(str(archive)), timeout_s=60, progress=lines.append)
    assert first == second
    assert lines == [f"{archive} is already cached"]


def test_changed_local_archive_gets_a_new_folder(tmp_path: Path) -> None:
    archive = make_tar_gz(tmp_path / "model.tar.gz", MODEL)
    cache = ArtifactCache(tmp_path / "cache", max_extract_bytes=1 << 20)
    first = cache.prepare(parse_model_data_url(str(archive)), timeout_s=60)
    make_tar_gz(archive, {**MODEL, "extra.txt": b"new"})
    os.utime(archive, ns=(1, 1))  # a different mtime even on coarse-grained filesystems
    second = cache.prepare(parse_model_data_url(str(archive)), timeout_s=60)
    assert first != second
    assert (second / "extra.txt").read_bytes() == b"new"
    assert not (first / "extra.txt").exists()


def test_local_folder_is_used_in_place(tmp_path: Path) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "serving.properties").write_text("engine=Python\n")
    cache = ArtifactCache(tmp_path / "cache", max_extract_bytes=1 << 20)
    assert cache.prepare(parse_model_data_url(str(folder)), timeout_s=60) == folder
    assert cache.prepare(parse_s3_data_source(_prefix(f"file://{folder}")), timeout_s=60) == folder
    assert not (tmp_path / "cache" / "models").exists()


def _prefix(uri: str) -> dict[str, str]:
    return {"S3Uri": uri, "S3DataType": "S3Prefix", "CompressionType": "None"}


def test_uncompressed_local_object_is_placed_under_its_name(tmp_path: Path) -> None:
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"GGUF" + b"\x00" * 100)
    cache = ArtifactCache(tmp_path / "cache", max_extract_bytes=1 << 20)
    source = parse_s3_data_source({"S3Uri": str(weights), "S3DataType": "S3Object", "CompressionType": "None"})
    folder = cache.prepare(source, timeout_s=60)
    assert os.listdir(folder) == ["model.gguf"]
    assert (folder / "model.gguf").read_bytes() == weights.read_bytes()
    assert cache.prepare(source, timeout_s=60) == folder


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p / "missing.tar.gz", "no file or folder at {p}/missing.tar.gz"),
        (lambda p: make_tar_gz(p / "m.tar.gz", MODEL), "is a file; S3DataType S3Prefix needs a folder"),
    ],
)
def test_local_source_errors(tmp_path: Path, make, expected: str) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path)
    source = parse_s3_data_source(_prefix(str(path)))
    with pytest.raises(DeploymentError) as caught:
        ArtifactCache(tmp_path / "cache", max_extract_bytes=1 << 20).prepare(source, timeout_s=60)
    assert caught.value.phase == "download"
    assert expected.format(p=tmp_path) in caught.value.reason


def test_bad_archive_fails_in_the_extract_phase_and_leaves_no_folder(tmp_path: Path) -> None:
    bogus = tmp_path / "model.tar.gz"
    bogus.write_text("this is not an archive\n" * 50)
    cache = ArtifactCache(tmp_path / "cache", max_extract_bytes=1 << 20)
    with pytest.raises(DeploymentError) as caught:
        cache.prepare(parse_model_data_url(str(bogus)), timeout_s=60)
    assert caught.value.phase == "extract"
    assert "not a gzip-compressed tar archive (ModelDataUrl must point to a .tar.gz)" in caught.value.reason
    assert list((tmp_path / "cache").glob("models/*")) == []


def test_bomb_is_refused_with_the_setting_name(tmp_path: Path) -> None:
    archive = make_tar_gz(tmp_path / "m.tar.gz", {"big.bin": b"\x00" * 5000})
    cache = ArtifactCache(tmp_path / "cache", max_extract_bytes=4096)
    with pytest.raises(DeploymentError, match="MODELHOST_MAX_EXTRACT_BYTES"):
        cache.prepare(parse_model_data_url(str(archive)), timeout_s=60)


def test_slow_source_times_out_with_the_setting_name(tmp_path: Path) -> None:
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(os.urandom(10 * 1024))
    cache = ArtifactCache(tmp_path / "cache", max_extract_bytes=1 << 20, clock=FakeClock(1.0), chunk_bytes=1024)
    with pytest.raises(DeploymentError) as caught:
        cache.prepare(parse_model_data_url(str(archive)), timeout_s=4)
    assert caught.value.phase == "download"
    assert caught.value.reason.startswith(
        "model data did not download within 4 s (ModelDataDownloadTimeoutInSeconds); "
    )
    assert str(archive) in caught.value.reason
    assert os.listdir(tmp_path / "cache" / "tmp") == []
    assert not (tmp_path / "cache" / "blobs").exists()


def test_same_source_within_the_timeout_succeeds(tmp_path: Path) -> None:
    archive = make_tar_gz(tmp_path / "model.tar.gz", MODEL)
    cache = ArtifactCache(tmp_path / "cache", max_extract_bytes=1 << 20, clock=FakeClock(1.0), chunk_bytes=1 << 20)
    assert (cache.prepare(parse_model_data_url(str(archive)), timeout_s=20) / "serving.properties").is_file()


def test_progress_is_throttled_to_every_five_percent(tmp_path: Path) -> None:
    archive = make_tar_gz(tmp_path / "m.tar.gz", {"w.bin": os.urandom(100 * 1024)})
    cache = ArtifactCache(tmp_path / "cache", max_extract_bytes=1 << 20, clock=FakeClock(0.0), chunk_bytes=1024)
    lines: list[str] = []
    cache.prepare(parse_model_data_url(str(archive)), timeout_s=60, progress=lines.append)
    downloading = [line for line in lines if line.startswith(f"downloading {archive}:")]
    assert 15 <= len(downloading) <= 21, lines  # ~100 chunks, one line per 5%
    assert downloading[-1].endswith("(100%)")
    assert lines[0].startswith(f"downloading {archive} (")
    assert lines[-1] == f"extracting {archive}"


def test_concurrent_prepares_share_one_folder(tmp_path: Path) -> None:
    archive = make_tar_gz(tmp_path / "model.tar.gz", {**MODEL, "w.bin": os.urandom(256 * 1024)})
    cache = ArtifactCache(tmp_path / "cache", max_extract_bytes=1 << 20, chunk_bytes=4096)
    results: list[Path] = []
    errors: list[BaseException] = []

    def prepare() -> None:
        try:
            results.append(cache.prepare(parse_model_data_url(str(archive)), timeout_s=60))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=prepare) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(results)) == 1
    assert len(os.listdir(tmp_path / "cache" / "blobs")) == 1
    assert os.listdir(tmp_path / "cache" / "models") == [results[0].name]


def _http_cache(tmp_path: Path, handler) -> ArtifactCache:  # type: ignore[no-untyped-def]
    return ArtifactCache(
        tmp_path / "cache",
        max_extract_bytes=1 << 20,
        http_transport=httpx.MockTransport(handler),
        limits=DataLimits(allow_private_http=True),  # models.example is not resolved offline
    )


def test_http_archive_is_downloaded_and_extracted(tmp_path: Path) -> None:
    body = make_tar_gz(tmp_path / "m.tar.gz", MODEL).read_bytes()
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, stream=httpx.ByteStream(body), headers={"Content-Length": str(len(body))})

    folder = _http_cache(tmp_path, handler).prepare(parse_model_data_url("https://models.example/m.tar.gz"), 60)
    assert (folder / "serving.properties").read_bytes() == MODEL["serving.properties"]
    assert seen == ["https://models.example/m.tar.gz"]


def test_http_error_status_names_the_url(tmp_path: Path) -> None:
    cache = _http_cache(tmp_path, lambda request: httpx.Response(404))
    with pytest.raises(DeploymentError) as caught:
        cache.prepare(parse_model_data_url("https://models.example/gone.tar.gz"), 60)
    assert caught.value.phase == "download"
    assert caught.value.reason == "https://models.example/gone.tar.gz answered HTTP 404 Not Found"


def test_http_connection_failure_is_a_download_error(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    with pytest.raises(DeploymentError) as caught:
        _http_cache(tmp_path, handler).prepare(parse_model_data_url("http://10.0.0.1/m.tar.gz"), 60)
    assert caught.value.phase == "download"
    # the same words for refused, unreachable and filtered: no port oracle
    assert caught.value.reason == "could not download http://10.0.0.1/m.tar.gz: could not connect to the host"
