"""Objects of batch transform jobs and async inference on S3 (moto's server, found through AWS_ENDPOINT_URL_S3)."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from modelhost.storage.limits import DataLimits
from modelhost.storage.objects import ObjectError, ObjectRef, Objects, output_uri


@pytest.fixture
def objects(s3_env: str) -> Objects:
    return Objects(DataLimits())


def refused(call: Any, *args: Any) -> str:
    with pytest.raises(ObjectError) as caught:
        call(*args)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_prefix_lists_by_key_prefix_skipping_folder_markers(objects: Objects, s3: Any, bucket: str) -> None:
    for key, body in {
        "data/in.jsonl": b"1",
        "data/input/x.csv": b"22",
        "data/input/": b"",  # a console "folder"
        "data/input/deep/y.csv": b"333",
        "data/other.jsonl": b"no",
        "elsewhere/in.jsonl": b"no",
    }.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)

    refs = objects.list_inputs(f"s3://{bucket}/data/in", "S3Prefix")

    assert refs == [
        ObjectRef(f"s3://{bucket}/data/in.jsonl", 1, "in.jsonl"),
        ObjectRef(f"s3://{bucket}/data/input/deep/y.csv", 3, "input/deep/y.csv"),
        ObjectRef(f"s3://{bucket}/data/input/x.csv", 2, "input/x.csv"),
    ]
    under_folder = objects.list_inputs(f"s3://{bucket}/data/input/", "S3Prefix")
    assert [r.relative for r in under_folder] == ["deep/y.csv", "x.csv"]
    single = objects.list_inputs(f"s3://{bucket}/data/in.jsonl", "S3Prefix")
    assert single == [ObjectRef(f"s3://{bucket}/data/in.jsonl", 1, "in.jsonl")]
    assert len(objects.list_inputs(f"s3://{bucket}", "S3Prefix")) == 5


def test_listing_pages_past_a_thousand_keys(objects: Objects, s3: Any, bucket: str) -> None:
    keys = [f"many/{i:05d}.txt" for i in range(1100)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=b"x"), keys))

    refs = objects.list_inputs(f"s3://{bucket}/many/", "S3Prefix")

    assert [r.relative for r in refs] == [key.removeprefix("many/") for key in keys]


def test_nothing_under_a_prefix_says_so(objects: Objects, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="empty/", Body=b"")
    assert refused(objects.list_inputs, f"s3://{bucket}/empty/", "S3Prefix") == f"no objects under s3://{bucket}/empty/"


def test_a_manifest_lists_its_keys_with_their_sizes(objects: Objects, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="in/a.jsonl", Body=b"aa")
    s3.put_object(Bucket=bucket, Key="in/sub/b.jsonl", Body=b"b")
    manifest = [{"prefix": f"s3://{bucket}/in/"}, "sub/b.jsonl", "a.jsonl"]
    s3.put_object(Bucket=bucket, Key="jobs/input.manifest", Body=json.dumps(manifest).encode())

    refs = objects.list_inputs(f"s3://{bucket}/jobs/input.manifest", "ManifestFile")

    assert refs == [
        ObjectRef(f"s3://{bucket}/in/sub/b.jsonl", 1, "sub/b.jsonl"),
        ObjectRef(f"s3://{bucket}/in/a.jsonl", 2, "a.jsonl"),
    ]


def test_a_manifest_naming_a_missing_object_names_it(objects: Objects, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="in/a.jsonl", Body=b"aa")
    manifest = [{"prefix": f"s3://{bucket}/in/"}, "a.jsonl", "gone.jsonl"]
    s3.put_object(Bucket=bucket, Key="m.manifest", Body=json.dumps(manifest).encode())
    message = refused(objects.list_inputs, f"s3://{bucket}/m.manifest", "ManifestFile")
    assert f"s3://{bucket}/m.manifest" in message and f"no object at s3://{bucket}/in/gone.jsonl" in message

    manifest = [{"prefix": "s3://no-such-bucket-for-objects/in/"}, "a.jsonl"]
    s3.put_object(Bucket=bucket, Key="m2.manifest", Body=json.dumps(manifest).encode())
    message = refused(objects.list_inputs, f"s3://{bucket}/m2.manifest", "ManifestFile")
    assert "the bucket of s3://no-such-bucket-for-objects/in/a.jsonl does not exist (NoSuchBucket)" in message


def test_read_write_round_trip(objects: Objects, s3: Any, bucket: str, tmp_path: Path) -> None:
    uri = f"s3://{bucket}/out/a.jsonl.out"
    assert not objects.exists(uri)
    objects.write(uri, b'{"answer": 42}\n')
    assert objects.exists(uri)
    assert objects.read(uri, 100) == b'{"answer": 42}\n'
    assert s3.get_object(Bucket=bucket, Key="out/a.jsonl.out")["Body"].read() == b'{"answer": 42}\n'
    assert objects.read(ObjectRef(uri, 15, "a.jsonl"), 15) == b'{"answer": 42}\n'
    assert refused(objects.read, uri, 14) == f"{uri} is 15 bytes, over the limit of 14 bytes"

    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(9 << 20))  # past boto3's multipart threshold
    big = output_uri(f"s3://{bucket}/out/", "big.bin")
    objects.write_file(big, source)
    assert objects.read(big, 10 << 20) == source.read_bytes()

    objects.delete(uri)
    objects.delete(uri)  # already gone: fine
    assert not objects.exists(uri)


def test_missing_buckets_and_keys_are_named(objects: Objects, bucket: str, tmp_path: Path) -> None:
    missing_bucket = "s3://no-such-bucket-for-objects"
    assert refused(objects.list_inputs, f"{missing_bucket}/in/", "S3Prefix") == (
        f"the bucket of {missing_bucket}/in/ does not exist (NoSuchBucket); create it or correct the bucket name"
    )
    assert "(NoSuchBucket)" in refused(objects.read, f"{missing_bucket}/a", 10)
    assert "(NoSuchBucket)" in refused(objects.write, f"{missing_bucket}/a", b"x")
    source = tmp_path / "s.bin"
    source.write_bytes(b"x")
    assert "(NoSuchBucket)" in refused(objects.write_file, f"{missing_bucket}/a", source)
    assert not objects.exists(f"{missing_bucket}/a")
    objects.delete(f"{missing_bucket}/a")
    assert refused(objects.read, f"s3://{bucket}/nope", 10) == f"no object at s3://{bucket}/nope (NoSuchKey)"
    manifest = f"s3://{bucket}/nope.manifest"
    assert f"no object at {manifest}" in refused(objects.list_inputs, manifest, "ManifestFile")


def test_no_credentials_say_what_to_set(objects: Objects, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    message = refused(objects.read, f"s3://{bucket}/a", 10)
    assert message.startswith(f"no AWS credentials to read s3://{bucket}/a; set AWS_ACCESS_KEY_ID")


def test_an_unreachable_endpoint_names_the_variable(
    objects: Objects, monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{closed_port}")
    message = refused(objects.list_inputs, "s3://some-bucket/in/", "S3Prefix")
    assert "could not connect to S3 to list s3://some-bucket/in/" in message
    assert "AWS_ENDPOINT_URL_S3" in message and str(closed_port) not in message


def test_the_generic_endpoint_variable_is_honoured(
    objects: Objects, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, s3_env: str
) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_env)
    assert objects.read(f"s3://{bucket}/k", 1) == b"v"
