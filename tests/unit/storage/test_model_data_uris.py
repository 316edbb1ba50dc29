"""ModelDataUrl and S3DataSource parsing: every accepted form, and clear refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelhost.storage.uris import (
    HttpLocation,
    Layout,
    LocalLocation,
    S3Location,
    parse_model_data_url,
    parse_s3_data_source,
)


@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("s3://bucket/model.tar.gz", S3Location("bucket", "model.tar.gz")),
        ("s3://my.bucket-1/a/b/model.tar.gz", S3Location("my.bucket-1", "a/b/model.tar.gz")),
        ("S3://bucket/k?v=1#frag.tar.gz", S3Location("bucket", "k?v=1#frag.tar.gz")),
        (
            "https://example.com/m/model.tar.gz?sig=1",
            HttpLocation("https://example.com/m/model.tar.gz?sig=1"),
        ),
        ("http://127.0.0.1:8000/model.tar.gz", HttpLocation("http://127.0.0.1:8000/model.tar.gz")),
        ("file:///srv/models/model.tar.gz", LocalLocation(Path("/srv/models/model.tar.gz"))),
        ("file://localhost/srv/my%20model", LocalLocation(Path("/srv/my model"))),
        ("/srv/models/llama", LocalLocation(Path("/srv/models/llama"))),
        ("  /srv/models/llama  ", LocalLocation(Path("/srv/models/llama"))),
    ],
)
def test_model_data_url_forms(url: str, location: object) -> None:
    source = parse_model_data_url(url)
    assert source.location == location
    assert source.layout is Layout.ARCHIVE
    assert source.uri == url


def test_home_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parse_model_data_url("~/models/m.tar.gz").location == LocalLocation(tmp_path / "models/m.tar.gz")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("", "empty"),
        ("models/model.tar.gz", "must be absolute"),
        ("gs://bucket/model.tar.gz", "gs:// is not supported"),
        ("hf://org/model", "hf:// is not supported"),
        ("s3://", "not an S3 bucket name"),
        ("s3://Bad Bucket/k", "not an S3 bucket name"),
        ("s3://bucket", "names a prefix"),
        ("s3://bucket/models/", "names a prefix"),
        ("https:///model.tar.gz", "names no host"),
        ("file://otherhost/model.tar.gz", "must be local"),
    ],
)
def test_unparseable_model_data_url_says_what_is_accepted(url: str, why: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_model_data_url(url)
    message = str(caught.value)
    assert why in message
    assert "s3://bucket/key.tar.gz" in message and "file:///absolute/path" in message


def _s3ds(uri: str, data_type: str = "S3Prefix", compression: str = "None", **extra: Any) -> dict[str, Any]:
    return {"S3Uri": uri, "S3DataType": data_type, "CompressionType": compression, **extra}


@pytest.mark.parametrize(
    ("data", "location", "layout"),
    [
        (_s3ds("s3://bkt/models/llama/"), S3Location("bkt", "models/llama/"), Layout.PREFIX),
        (_s3ds("s3://bkt/"), S3Location("bkt", ""), Layout.PREFIX),
        (_s3ds("s3://bkt/m.tar.gz", "S3Object", "Gzip"), S3Location("bkt", "m.tar.gz"), Layout.ARCHIVE),
        (_s3ds("s3://bkt/dir/weights.bin", "S3Object"), S3Location("bkt", "dir/weights.bin"), Layout.OBJECT),
        (_s3ds("file:///srv/llama"), LocalLocation(Path("/srv/llama")), Layout.PREFIX),
        (_s3ds("/srv/m.tar.gz", "S3Object", "Gzip"), LocalLocation(Path("/srv/m.tar.gz")), Layout.ARCHIVE),
        (
            _s3ds("s3://bkt/p/", ModelAccessConfig={"AcceptEula": True}),
            S3Location("bkt", "p/"),
            Layout.PREFIX,
        ),
    ],
)
def test_s3_data_source_forms(data: dict[str, Any], location: object, layout: Layout) -> None:
    source = parse_s3_data_source(data)
    assert (source.location, source.layout, source.uri) == (location, layout, data["S3Uri"])


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ({"S3DataType": "S3Prefix", "CompressionType": "None"}, "S3Uri is required"),
        (_s3ds("s3://bkt/p/", "S3Folder"), "S3DataType must be one of S3Prefix, S3Object"),
        (_s3ds("s3://bkt/p/", compression="Zstd"), "CompressionType must be one of None, Gzip"),
        (_s3ds("s3://bkt/p/", compression="Gzip"), "needs S3DataType S3Object"),
        (_s3ds("s3://bkt/prefix"), "must end with '/'"),
        (_s3ds("s3://bkt/dir/", "S3Object"), "must name an object"),
        (_s3ds("https://host/m/", "S3Prefix"), "must be an s3:// URI"),
        (_s3ds("s3://bkt/p/", ManifestS3Uri="s3://bkt/manifest.csv"), "ManifestS3Uri is not supported"),
        (_s3ds("relative/dir/"), "must be absolute"),
    ],
)
def test_bad_s3_data_source(data: dict[str, Any], why: str) -> None:
    with pytest.raises(ValueError, match=why.replace("(", r"\(")):
        parse_s3_data_source(data)


def test_locations_print_as_uris() -> None:
    assert str(S3Location("bkt", "k/m.tar.gz")) == "s3://bkt/k/m.tar.gz"
    assert str(LocalLocation(Path("/srv/m"))) == "/srv/m"
