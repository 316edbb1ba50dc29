"""Objects of batch transform jobs and async inference on local paths; location checks and output names."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from modelhost.storage import objects as objects_module
from modelhost.storage.limits import DataLimits
from modelhost.storage.objects import ObjectError, ObjectRef, Objects, output_uri


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    folder.mkdir()
    return folder


@pytest.fixture
def home(root: Path) -> Path:
    """The server's HOME, inside the allowed root: forbidden wins over the roots."""
    folder = root / "home"
    folder.mkdir()
    (folder / "keys.json").write_text("{}")
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("secret")
    return folder


@pytest.fixture
def objects(root: Path, home: Path) -> Objects:
    return Objects(DataLimits(local_roots=(root,)), forbidden=(home,))


def refused(call: object, *args: object, **kwargs: object) -> str:
    assert callable(call)
    with pytest.raises(ObjectError) as caught:
        call(*args, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def files_in(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


# locations ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "uri", ["s3://bucket/key", "s3://bucket", "s3://my.bucket-1/a/b?c#d", "S3://bucket/in/", "/anything"]
)
def test_accepted_locations_need_no_io(uri: str) -> None:
    Objects(DataLimits()).check_location(uri, for_write=False)
    Objects(DataLimits()).check_location(uri, for_write=True)


def test_file_urls_become_plain_paths(objects: Objects, root: Path) -> None:
    (root / "a b.txt").write_bytes(b"x")
    objects.check_location(f"file://{root}/a%20b.txt", for_write=False)
    objects.check_location(f"file://localhost{root}/out/", for_write=True)
    refs = objects.list_inputs(f"file://{root}/a%20b.txt", "S3Prefix")
    assert refs == [ObjectRef(str(root / "a b.txt"), 1, "a b.txt")]


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("https://example.com/data.jsonl", "is an https URL"),
        ("http://example.com/data.jsonl", "is an http URL"),
        ("ftp://host/x", "the scheme ftp:// is not supported"),
        ("relative/path", "is not an absolute path"),
        ("", "is not an absolute path"),
        ("~/data", "is not an absolute path"),
        ("s3://b/key", "is not an S3 bucket name"),
        ("s3:///key", "is not an S3 bucket name"),
        ("file://otherhost/data", "must be local"),
        ("file://relative", "must be local"),
        ("/data/a\x00b", "NUL"),
    ],
)
def test_malformed_locations_are_refused_with_what_to_use(uri: str, expected: str) -> None:
    message = refused(Objects(DataLimits()).check_location, uri, for_write=False)
    assert expected in message


def test_outside_the_roots_is_refused_alike_whether_it_exists_or_not(objects: Objects, outside: Path) -> None:
    existing = refused(objects.check_location, str(outside / "secret.txt"), for_write=False)
    missing = refused(objects.check_location, str(outside / "missing.txt"), for_write=False)
    assert existing.replace("secret", "missing") == missing
    assert "is outside the folders data may be read from (MODELHOST_LOCAL_DATA_ROOTS=" in existing
    written = refused(objects.check_location, str(outside / "out"), for_write=True)
    assert "may be written to" in written
    assert "outside" in refused(objects.read, str(outside / "secret.txt"), 100)
    assert "outside" in refused(objects.write, str(outside / "new.txt"), b"x")
    assert not (outside / "new.txt").exists()
    assert "outside" in refused(objects.list_inputs, str(outside), "S3Prefix")
    assert "outside" in refused(objects.delete, str(outside / "secret.txt"))
    assert (outside / "secret.txt").exists()


def test_dot_dot_is_folded_before_the_roots_are_checked(objects: Objects, root: Path, outside: Path) -> None:
    sneaky = f"{root}/../outside/secret.txt"
    assert "outside the folders" in refused(objects.read, sneaky, 100)


def test_no_local_paths_on_a_server_with_keys_and_no_roots(root: Path) -> None:
    message = refused(Objects(DataLimits(local_roots=())).check_location, str(root), for_write=False)
    assert "MODELHOST_LOCAL_DATA_ROOTS" in message and "use s3://" in message


def test_no_roots_means_anywhere_but_forbidden(tmp_path: Path, home: Path, outside: Path) -> None:
    anywhere = Objects(DataLimits(), forbidden=(home,))
    assert anywhere.read(str(outside / "secret.txt"), 100) == b"secret"
    assert "keeps private" in refused(anywhere.read, str(home / "keys.json"), 100)


def test_forbidden_folder_is_refused_inside_the_roots(objects: Objects, home: Path) -> None:
    for call, args in (
        (objects.read, (str(home / "keys.json"), 100)),
        (objects.write, (str(home / "keys.json"), b"{}")),
        (objects.delete, (str(home / "keys.json"),)),
        (objects.exists, (str(home / "keys.json"),)),
        (objects.list_inputs, (str(home), "S3Prefix")),
        (objects.check_location, (str(home / "new"),)),
    ):
        kwargs = {"for_write": True} if call == objects.check_location else {}
        message = refused(call, *args, **kwargs)
        assert "keeps private" in message
    assert (home / "keys.json").read_text() == "{}"


def test_a_folder_holding_the_forbidden_one_is_not_read(objects: Objects, root: Path, home: Path) -> None:
    message = refused(objects.list_inputs, str(root), "S3Prefix")
    assert "holds a folder the server keeps private" in message
    assert str(home) not in message
    assert "holds a folder" in refused(objects.check_location, str(root), for_write=False)
    objects.check_location(str(root), for_write=True)  # writes are checked file by file
    assert "keeps private" in refused(objects.write, output_uri(str(root), "home/keys.json", ""), b"x")


def test_a_symlink_into_the_forbidden_folder_is_refused(objects: Objects, root: Path, home: Path) -> None:
    data = root / "data"
    data.mkdir()
    (data / "keys").symlink_to(home / "keys.json")
    (data / "homedir").symlink_to(home)
    assert "keeps private" in refused(objects.read, str(data / "keys"), 100)
    assert "keeps private" in refused(objects.write, str(data / "homedir" / "x.out"), b"x")
    assert "keeps private" in refused(objects.list_inputs, str(data), "S3Prefix")
    assert not (home / "x.out").exists()


def test_a_linked_folder_that_holds_the_forbidden_one_is_refused(tmp_path: Path, home: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "up").symlink_to(home.parent)  # a link to the folder that holds HOME
    anywhere = Objects(DataLimits(), forbidden=(home,))
    assert "keeps private" in refused(anywhere.list_inputs, str(data), "S3Prefix")


def test_a_symlink_out_of_the_root_is_refused(objects: Objects, root: Path, outside: Path) -> None:
    data = root / "data"
    data.mkdir()
    (data / "a.jsonl").write_text("{}")
    (data / "leak").symlink_to(outside / "secret.txt")
    message = refused(objects.list_inputs, str(data), "S3Prefix")
    assert "leads outside the folders" in message and str(data / "leak") in message
    assert "leads outside" in refused(objects.read, str(data / "leak"), 100)
    (data / "leak").unlink()
    (data / "outdir").symlink_to(outside)
    assert "leads outside" in refused(objects.write, str(data / "outdir" / "x.out"), b"x")
    assert not (outside / "x.out").exists()


def test_symlinks_inside_the_root_are_followed_and_loops_end(objects: Objects, root: Path) -> None:
    data = root / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "x.csv").write_text("1,2")
    (data / "alias.csv").symlink_to(data / "sub" / "x.csv")
    (data / "sub" / "loop").symlink_to(data)
    (data / "dangling").symlink_to(root / "gone")
    refs = objects.list_inputs(str(data), "S3Prefix")
    assert [r.relative for r in refs] == ["alias.csv", "sub/x.csv"]


# listing ---------------------------------------------------------------------------------------------------
def test_a_folder_lists_every_regular_file_under_it_sorted(objects: Objects, root: Path) -> None:
    data = root / "in"
    for name, body in {"b.jsonl": b"22", "a/z.csv": b"1", "a/b/c.txt": b"333", ".hidden": b""}.items():
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_bytes(body)
    (data / "empty").mkdir()
    refs = objects.list_inputs(str(data) + "/", "S3Prefix")
    assert refs == [
        ObjectRef(str(data / ".hidden"), 0, ".hidden"),
        ObjectRef(str(data / "a/b/c.txt"), 3, "a/b/c.txt"),
        ObjectRef(str(data / "a/z.csv"), 1, "a/z.csv"),
        ObjectRef(str(data / "b.jsonl"), 2, "b.jsonl"),
    ]


def test_a_file_lists_itself_by_its_name(objects: Objects, root: Path) -> None:
    (root / "one.jsonl").write_bytes(b'{"a": 1}\n')
    assert objects.list_inputs(str(root / "one.jsonl"), "S3Prefix") == [
        ObjectRef(str(root / "one.jsonl"), 9, "one.jsonl")
    ]


def test_nothing_to_list_says_so(objects: Objects, root: Path) -> None:
    (root / "empty").mkdir()
    assert refused(objects.list_inputs, str(root / "empty"), "S3Prefix") == f"no objects under {root / 'empty'}"
    assert f"no objects under {root / 'missing'}" in refused(objects.list_inputs, str(root / "missing"), "S3Prefix")


def test_unknown_data_types_are_refused(objects: Objects, root: Path) -> None:
    message = refused(objects.list_inputs, str(root), "AugmentedManifestFile")
    assert "S3Prefix or ManifestFile" in message


def test_the_number_of_objects_is_capped(objects: Objects, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(objects_module, "MAX_OBJECTS", 3)
    data = root / "many"
    data.mkdir()
    for i in range(4):
        (data / f"{i}.txt").write_text("x")
    assert "more than 3 objects under" in refused(objects.list_inputs, str(data), "S3Prefix")


@pytest.mark.timeout(20)
def test_a_fifo_never_blocks(objects: Objects, root: Path) -> None:
    data = root / "fifo"
    data.mkdir()
    (data / "real.txt").write_text("ok")
    os.mkfifo(data / "pipe")
    assert [r.relative for r in objects.list_inputs(str(data), "S3Prefix")] == ["real.txt"]  # skipped
    assert "not a regular file" in refused(objects.read, str(data / "pipe"), 100)
    assert "not a regular file" in refused(objects.list_inputs, str(data / "pipe"), "S3Prefix")
    assert "not a regular file" in refused(objects.exists, str(data / "pipe"))
    (data / "link").symlink_to(data / "pipe")
    assert "not a regular file" in refused(objects.read, str(data / "link"), 100)


# manifests -------------------------------------------------------------------------------------------------
def write_manifest(path: Path, document: object) -> str:
    path.write_text(json.dumps(document))
    return str(path)


def test_a_local_manifest_lists_its_keys(objects: Objects, root: Path) -> None:
    (root / "in" / "sub").mkdir(parents=True)
    (root / "in" / "a.jsonl").write_bytes(b"aa")
    (root / "in" / "sub" / "b.jsonl").write_bytes(b"b")
    manifest = write_manifest(root / "m.manifest", [{"prefix": f"file://{root}/in/"}, "sub/b.jsonl", "a.jsonl"])
    assert objects.list_inputs(manifest, "ManifestFile") == [
        ObjectRef(str(root / "in/sub/b.jsonl"), 1, "sub/b.jsonl"),
        ObjectRef(str(root / "in/a.jsonl"), 2, "a.jsonl"),
    ]


def test_a_manifest_naming_a_missing_object_names_it(objects: Objects, root: Path) -> None:
    (root / "in").mkdir()
    manifest = write_manifest(root / "m.manifest", [{"prefix": str(root / "in")}, "missing.jsonl"])
    message = refused(objects.list_inputs, manifest, "ManifestFile")
    assert manifest in message and str(root / "in" / "missing.jsonl") in message


def test_a_manifest_cannot_lead_out_of_the_roots(objects: Objects, root: Path, outside: Path) -> None:
    escaping = write_manifest(root / "up.manifest", [{"prefix": f"{root}/"}, "../outside/secret.txt"])
    assert "'..'" in refused(objects.list_inputs, escaping, "ManifestFile")
    elsewhere = write_manifest(root / "out.manifest", [{"prefix": f"{outside}/"}, "secret.txt"])
    assert "outside the folders" in refused(objects.list_inputs, elsewhere, "ManifestFile")
    private = write_manifest(root / "home.manifest", [{"prefix": f"{root}/"}, "home/keys.json"])
    assert "keeps private" in refused(objects.list_inputs, private, "ManifestFile")


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"prefix": "s3://bkt/p/"}, "must be a JSON array"),
        ([], "must be a JSON array"),
        (["a"], "must be a JSON array"),
        ([{"prefix": 3}], "must be a JSON array"),
        ([{"prefix": "/x/"}, "a", ""], "entry 2 of the manifest"),
        ([{"prefix": "/x/"}, 7], "entry 1 of the manifest"),
        ([{"prefix": "http://host/"}, "a"], "is an http URL"),
    ],
)
def test_malformed_manifests_are_refused(objects: Objects, root: Path, document: object, expected: str) -> None:
    assert expected in refused(objects.list_inputs, write_manifest(root / "m", document), "ManifestFile")


def test_manifest_limits(objects: Objects, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (root / "not.json").write_text("[{")
    assert "is not JSON" in refused(objects.list_inputs, str(root / "not.json"), "ManifestFile")
    manifest = write_manifest(root / "m", [{"prefix": f"{root}/"}, "a", "b", "c"])
    monkeypatch.setattr(objects_module, "MAX_MANIFEST_ENTRIES", 2)
    assert "lists 3 keys; at most 2" in refused(objects.list_inputs, manifest, "ManifestFile")
    monkeypatch.setattr(objects_module, "MAX_MANIFEST_BYTES", 10)
    assert "over the limit of 10 bytes" in refused(objects.list_inputs, manifest, "ManifestFile")


# reading and writing -----------------------------------------------------------------------------------------
def test_read_is_whole_and_bounded(objects: Objects, root: Path) -> None:
    (root / "a.bin").write_bytes(b"0123456789")
    assert objects.read(str(root / "a.bin"), 10) == b"0123456789"
    assert objects.read(ObjectRef(str(root / "a.bin"), 10, "a.bin"), 100) == b"0123456789"
    message = refused(objects.read, str(root / "a.bin"), 9)
    assert message == f"{root / 'a.bin'} is 10 bytes, over the limit of 9 bytes"
    assert f"no file at {root / 'missing'}" == refused(objects.read, str(root / "missing"), 9)
    assert "not a regular file" in refused(objects.read, str(root), 9)


def test_write_creates_folders_and_replaces_atomically(objects: Objects, root: Path) -> None:
    target = root / "out" / "deep" / "a.jsonl.out"
    objects.write(str(target), b"first")
    objects.write(f"file://{target}", b"second")
    assert target.read_bytes() == b"second"
    assert files_in(root / "out") == ["deep", "deep/a.jsonl.out"]  # no temporary file left
    assert objects.exists(str(target)) and not objects.exists(str(root / "out" / "nothing"))


def test_a_write_that_fails_leaves_no_temporary_file(objects: Objects, root: Path) -> None:
    (root / "out" / "taken").mkdir(parents=True)
    assert "cannot write" in refused(objects.write, str(root / "out" / "taken"), b"x")
    (root / "out" / "file").write_text("x")
    assert "cannot create the folder" in refused(objects.write, str(root / "out" / "file" / "a.out"), b"x")
    assert "cannot read" in refused(objects.write_file, str(root / "out" / "b.out"), root / "no-source")
    assert files_in(root / "out") == ["file", "taken"]


def test_write_replaces_a_symlink_rather_than_writing_through_it(objects: Objects, root: Path) -> None:
    (root / "target.txt").write_text("keep")
    (root / "link.out").symlink_to(root / "target.txt")
    objects.write(str(root / "link.out"), b"new")
    assert (root / "target.txt").read_text() == "keep"
    assert not (root / "link.out").is_symlink() and (root / "link.out").read_bytes() == b"new"


def test_write_file_copies_a_server_file(objects: Objects, root: Path, tmp_path: Path) -> None:
    source = tmp_path / "result.bin"  # the server's own file: outside the roots is fine for a source
    source.write_bytes(os.urandom(3 << 20))
    objects.write_file(str(root / "o" / "r.out"), source)
    assert (root / "o" / "r.out").read_bytes() == source.read_bytes()
    assert files_in(root / "o") == ["r.out"]


def test_delete_is_fine_when_missing(objects: Objects, root: Path) -> None:
    (root / "x.out").write_text("x")
    objects.delete(str(root / "x.out"))
    objects.delete(str(root / "x.out"))
    objects.delete(str(root / "no" / "such" / "folder"))
    assert not (root / "x.out").exists()
    (root / "folder").mkdir()
    assert "cannot delete" in refused(objects.delete, str(root / "folder"))


def test_s3_objects_need_a_key(objects: Objects) -> None:
    for call, args in ((objects.read, ("s3://bucket/prefix/", 10)), (objects.write, ("s3://bucket", b"x"))):
        assert "names a prefix, not an object" in refused(call, *args)


# output names ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("output_path", "relative", "suffix", "expected"),
    [
        ("s3://bkt/out", "a.jsonl", ".out", "s3://bkt/out/a.jsonl.out"),
        ("s3://bkt/out/", "sub/a.jsonl", ".out", "s3://bkt/out/sub/a.jsonl.out"),
        ("s3://bkt/out//", "a", "", "s3://bkt/out/a"),
        ("s3://bkt", "a", ".out", "s3://bkt/a.out"),
        ("s3://bkt/", "a", ".out", "s3://bkt/a.out"),
        ("s3://bkt/out", "../x", ".out", "s3://bkt/out/../x.out"),  # just a key in S3
        ("/data/out", "a.jsonl", ".out", "/data/out/a.jsonl.out"),
        ("/data/out/", "sub/./a.jsonl", ".out", "/data/out/sub/a.jsonl.out"),
        ("file:///data/out", "sub//a", ".json", "/data/out/sub/a.json"),
        ("/data/../data/out", "a", ".out", "/data/out/a.out"),
    ],
)
def test_output_uri(output_path: str, relative: str, suffix: str, expected: str) -> None:
    assert output_uri(output_path, relative, suffix) == expected


@pytest.mark.parametrize(
    ("output_path", "relative"),
    [
        ("/data/out", "../x"),
        ("/data/out", "a/../../x"),
        ("/data/out", "/etc/passwd"),
        ("/data/out", "."),
        ("/data/out", ""),
        ("s3://bkt/out", ""),
        ("https://host/out", "a"),
        ("relative/out", "a"),
    ],
)
def test_output_uri_refuses_escapes_and_bad_paths(output_path: str, relative: str) -> None:
    with pytest.raises(ValueError):
        output_uri(output_path, relative)


# S3 error messages (pure) ------------------------------------------------------------------------------------
def client_error(code: str, message: str = "m") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "GetObject")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (client_error("NoSuchBucket"), "the bucket of s3://b/k does not exist (NoSuchBucket)"),
        (client_error("NoSuchKey"), "no object at s3://b/k (NoSuchKey)"),
        (client_error("404"), "no object at s3://b/k (NoSuchKey)"),
        (client_error("AccessDenied"), "access denied to read s3://b/k (AccessDenied); check the bucket policy"),
        (client_error("403"), "access denied to read s3://b/k (403)"),
        (client_error("InvalidAccessKeyId"), "did not accept the server's AWS credentials to read s3://b/k"),
        (client_error("SignatureDoesNotMatch"), "(SignatureDoesNotMatch); check its AWS_ACCESS_KEY_ID"),
        (client_error("SlowDown", "Please\nreduce"), "S3 refused to read s3://b/k: SlowDown Please\\nreduce"),
        (NoCredentialsError(), "no AWS credentials to read s3://b/k; set AWS_ACCESS_KEY_ID"),
        (EndpointConnectionError(endpoint_url="http://10.0.0.1:9000"), "check the server's AWS_ENDPOINT_URL_S3"),
    ],
)
def test_s3_errors_become_one_line_messages(exc: Exception, expected: str) -> None:
    def fail() -> None:
        with objects_module._s3_errors("s3://b/k", "read"):
            raise exc

    message = refused(fail)
    assert expected in message
    assert "10.0.0.1" not in message  # the endpoint is the server's business
