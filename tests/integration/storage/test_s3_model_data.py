"""Model data from S3 (moto's server, found through AWS_ENDPOINT_URL_S3): archives, prefixes, errors."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from modelhost.errors import DeploymentError
from modelhost.storage.artifacts import ArtifactCache
from modelhost.storage.uris import parse_model_data_url, parse_s3_data_source

MODEL = {"serving.properties": b"engine=Python\n", "code/model.py": b"def handle(inputs, context): ...\n"}


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def s3_source(uri: str, data_type: str = "S3Prefix", compression: str = "None") -> Any:
    return parse_s3_data_source({"S3Uri": uri, "S3DataType": data_type, "CompressionType": compression})


@pytest.fixture
def cache(tmp_path: Path) -> ArtifactCache:
    return ArtifactCache(tmp_path / "artifacts", max_extract_bytes=1 << 30)


def test_archive_is_downloaded_through_the_environment_endpoint(cache: ArtifactCache, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="llama/model.tar.gz", Body=tar_gz(MODEL))
    url = f"s3://{bucket}/llama/model.tar.gz"
    lines: list[str] = []

    folder = cache.prepare(parse_model_data_url(url), timeout_s=60, progress=lines.append)

    assert {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} == set(MODEL)
    assert (folder / "code/model.py").read_bytes() == MODEL["code/model.py"]
    assert lines[0].startswith(f"downloading {url} (")
    assert any(line.startswith(f"downloaded {url}:") for line in lines)

    again: list[str] = []
    assert cache.prepare(parse_model_data_url(url), timeout_s=60, progress=again.append) == folder
    assert again == [f"{url} is already cached"]


def test_generic_aws_endpoint_url_is_honoured_too(
    monkeypatch: pytest.MonkeyPatch, cache: ArtifactCache, s3: Any, bucket: str, s3_env: str
) -> None:
    s3.put_object(Bucket=bucket, Key="m.tar.gz", Body=tar_gz(MODEL))
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_env)
    folder = cache.prepare(parse_model_data_url(f"s3://{bucket}/m.tar.gz"), timeout_s=60)
    assert (folder / "serving.properties").is_file()


def test_same_archive_under_two_keys_shares_one_folder(
    tmp_path: Path, cache: ArtifactCache, s3: Any, bucket: str
) -> None:
    body = tar_gz(MODEL)
    s3.put_object(Bucket=bucket, Key="a/model.tar.gz", Body=body)
    s3.put_object(Bucket=bucket, Key="b/model.tar.gz", Body=body)
    one = cache.prepare(parse_model_data_url(f"s3://{bucket}/a/model.tar.gz"), timeout_s=60)
    two = cache.prepare(s3_source(f"s3://{bucket}/b/model.tar.gz", "S3Object", "Gzip"), timeout_s=60)
    assert one == two
    assert len(os.listdir(tmp_path / "artifacts" / "blobs")) == 1


def test_uncompressed_prefix_keeps_relative_paths(cache: ArtifactCache, s3: Any, bucket: str) -> None:
    objects = {
        "llama/config.json": b"{}",
        "llama/tokenizer/vocab.txt": b"a\nb\n",
        "llama/weights/part-0.safetensors": os.urandom(3000),
        "llama/empty/": b"",  # an S3-console folder marker: skipped
        "llama-v2/other.bin": b"not under the prefix",
        "other/config.json": b"nope",
    }
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)

    folder = cache.prepare(s3_source(f"s3://{bucket}/llama/"), timeout_s=60)

    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert files == {k.removeprefix("llama/"): v for k, v in objects.items() if k.startswith("llama/") and v}
    assert not (folder / "empty").exists()
    assert cache.prepare(s3_source(f"s3://{bucket}/llama/"), timeout_s=60) == folder

    s3.put_object(Bucket=bucket, Key="llama/config.json", Body=b'{"changed": true}')
    changed = cache.prepare(s3_source(f"s3://{bucket}/llama/"), timeout_s=60)
    assert changed != folder
    assert (changed / "config.json").read_bytes() == b'{"changed": true}'


def test_uncompressed_object_is_placed_under_its_name(cache: ArtifactCache, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="gguf/SmolLM2.Q4_1.gguf", Body=b"GGUF" + b"\x00" * 64)
    folder = cache.prepare(s3_source(f"s3://{bucket}/gguf/SmolLM2.Q4_1.gguf", "S3Object"), timeout_s=60)
    assert os.listdir(folder) == ["SmolLM2.Q4_1.gguf"]


def test_file_and_folder_name_clash_is_refused(cache: ArtifactCache, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="m/weights", Body=b"1")
    s3.put_object(Bucket=bucket, Key="m/weights/part1", Body=b"2")
    with pytest.raises(DeploymentError, match="'weights' under s3://.*/m/ is both a file and a folder"):
        cache.prepare(s3_source(f"s3://{bucket}/m/"), timeout_s=60)


def test_missing_key_names_the_url(cache: ArtifactCache, bucket: str) -> None:
    url = f"s3://{bucket}/nope/model.tar.gz"
    with pytest.raises(DeploymentError) as caught:
        cache.prepare(parse_model_data_url(url), timeout_s=60)
    assert caught.value.phase == "download"
    assert caught.value.reason == f"no object at {url} (NoSuchKey)"


def test_missing_bucket_says_so(cache: ArtifactCache, s3_env: str) -> None:
    url = "s3://no-such-bucket-here/model.tar.gz"
    with pytest.raises(DeploymentError) as caught:
        cache.prepare(parse_model_data_url(url), timeout_s=60)
    assert caught.value.phase == "download"
    assert caught.value.reason == f"the bucket of {url} does not exist (NoSuchBucket)"


def test_empty_prefix_and_missing_bucket_listing(cache: ArtifactCache, bucket: str) -> None:
    with pytest.raises(DeploymentError, match=rf"no objects under s3://{bucket}/empty/ \(S3Prefix\)"):
        cache.prepare(s3_source(f"s3://{bucket}/empty/"), timeout_s=60)
    with pytest.raises(DeploymentError, match=r"the bucket of s3://no-such-bucket-here/p/ does not exist"):
        cache.prepare(s3_source("s3://no-such-bucket-here/p/"), timeout_s=60)


def test_unreachable_endpoint_is_a_clear_download_error(
    monkeypatch: pytest.MonkeyPatch, cache: ArtifactCache, s3_env: str, closed_port: int
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{closed_port}")
    with pytest.raises(DeploymentError) as caught:
        cache.prepare(parse_model_data_url("s3://models/m.tar.gz"), timeout_s=60)
    assert caught.value.phase == "download"
    assert caught.value.reason.startswith("could not connect to S3 to read s3://models/m.tar.gz")


def test_missing_credentials_are_explained(monkeypatch: pytest.MonkeyPatch, cache: ArtifactCache, s3_env: str) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(DeploymentError, match="no AWS credentials to read s3://models/m.tar.gz"):
        cache.prepare(parse_model_data_url("s3://models/m.tar.gz"), timeout_s=60)
