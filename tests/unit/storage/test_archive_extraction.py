"""Safe extraction: good archives come out whole; unsafe, oversized or corrupt ones leave nothing."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest

from modelhost.errors import DeploymentError
from modelhost.storage.extract import extract_archive

Member = tuple[tarfile.TarInfo, bytes | None]


def file_member(name: str, data: bytes = b"x", mode: int = 0o644) -> Member:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    return info, data


def typed_member(name: str, kind: bytes, linkname: str = "") -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    info.mode = 0o755
    return info, None


def write_tar(path: Path, members: list[Member], *, compress: bool = True) -> Path:
    with tarfile.open(path, "w:gz" if compress else "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def refusal(tmp_path: Path, members: list[Member], max_extract_bytes: int = 1 << 20) -> str:
    archive = write_tar(tmp_path / "model.tar.gz", members)
    dest = tmp_path / "models" / "abc"
    with pytest.raises(DeploymentError) as caught:
        extract_archive(archive, dest, max_extract_bytes=max_extract_bytes)
    assert caught.value.phase == "extract"
    assert not dest.exists()
    assert os.listdir(dest.parent) == [], "a partial folder was left behind"
    return caught.value.reason


def test_good_archive_keeps_folders_and_inside_symlinks(tmp_path: Path) -> None:
    archive = write_tar(
        tmp_path / "model.tar.gz",
        [
            typed_member("code", tarfile.DIRTYPE),
            file_member("code/model.py", b"print('hi')\n"),
            file_member("serving.properties", b"engine=Python\n"),
            file_member("weights/shard/part-0.bin", b"\x00" * 1000),
            file_member("bin/run.sh", b"#!/bin/sh\n", mode=0o755),
            typed_member("weights/latest", tarfile.SYMTYPE, "shard/part-0.bin"),
            typed_member("weights/shard/props", tarfile.SYMTYPE, "../../serving.properties"),
            typed_member("copy.py", tarfile.LNKTYPE, "code/model.py"),
        ],
    )
    dest = extract_archive(archive, tmp_path / "out", max_extract_bytes=1 << 20)
    assert dest == tmp_path / "out"
    assert (dest / "code/model.py").read_bytes() == b"print('hi')\n"
    assert (dest / "weights/latest").is_symlink()
    assert (dest / "weights/latest").read_bytes() == b"\x00" * 1000
    assert (dest / "weights/shard/props").read_text() == "engine=Python\n"
    assert (dest / "copy.py").read_text() == "print('hi')\n"
    assert os.access(dest / "bin/run.sh", os.X_OK)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tar.gz", "out"]


def test_single_top_folder_is_not_unwrapped(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "m.tar.gz", [file_member("model/serving.properties")])
    dest = extract_archive(archive, tmp_path / "out", max_extract_bytes=100)
    assert [p.name for p in dest.iterdir()] == ["model"]


def test_plain_tar_is_detected_by_content_not_name(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "model.tar.gz", [file_member("a.txt", b"plain")], compress=False)
    dest = extract_archive(archive, tmp_path / "out", max_extract_bytes=100)
    assert (dest / "a.txt").read_bytes() == b"plain"


def test_gzip_is_detected_by_magic_bytes_whatever_the_name(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "weights.bin", [file_member("a.txt", b"gz")])
    assert (extract_archive(archive, tmp_path / "out", max_extract_bytes=100) / "a.txt").read_bytes() == b"gz"


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ([file_member("/etc/cron.d/evil")], "member '/etc/cron.d/evil' has an absolute path"),
        ([file_member("../x")], "member '../x' points outside the model folder"),
        ([file_member("a/../../x")], "member 'a/../../x' points outside the model folder"),
        (
            [typed_member("passwd", tarfile.SYMTYPE, "/etc/passwd")],
            "member 'passwd' is a symlink to the absolute path '/etc/passwd'",
        ),
        (
            [typed_member("a", tarfile.SYMTYPE, "../../x")],
            "member 'a' is a symlink to '../../x', outside the model folder",
        ),
        (
            [typed_member("deep/a", tarfile.SYMTYPE, "../../x")],
            "member 'deep/a' is a symlink to '../../x', outside the model folder",
        ),
        (
            [typed_member("h", tarfile.LNKTYPE, "../outside")],
            "member 'h' is a hard link to '../outside', outside the model folder",
        ),
        (
            [typed_member("h", tarfile.LNKTYPE, "/etc/shadow")],
            "member 'h' is a hard link to the absolute path '/etc/shadow'",
        ),
        ([typed_member("tty", tarfile.CHRTYPE)], "member 'tty' is a character device"),
        ([typed_member("sda", tarfile.BLKTYPE)], "member 'sda' is a block device"),
        ([typed_member("pipe", tarfile.FIFOTYPE)], "member 'pipe' is a FIFO"),
    ],
)
def test_unsafe_members_are_refused_by_name(tmp_path: Path, members: list[Member], expected: str) -> None:
    assert expected in refusal(tmp_path, [file_member("ok.txt"), *members])


def test_symlink_chain_leading_outside_is_refused(tmp_path: Path) -> None:
    # Each link looks inside by name; together "a" resolves to the parent of the model folder.
    reason = refusal(
        tmp_path,
        [
            typed_member("a", tarfile.SYMTYPE, "sub/b/.."),
            typed_member("sub", tarfile.DIRTYPE),
            typed_member("sub/b", tarfile.SYMTYPE, ".."),
        ],
    )
    assert "'a'" in reason and "outside the model folder" in reason


def test_writing_through_a_symlink_that_leads_outside_is_refused(tmp_path: Path) -> None:
    reason = refusal(
        tmp_path,
        [
            typed_member("a", tarfile.SYMTYPE, "sub/up/.."),  # inside while sub/up does not exist yet
            typed_member("sub", tarfile.DIRTYPE),
            typed_member("sub/up", tarfile.SYMTYPE, ".."),  # now "a" is the parent of the model folder
            file_member("a/escaped.txt"),
        ],
    )
    assert "refused" in reason and "'a/escaped.txt'" in reason
    assert not (tmp_path / "models" / "escaped.txt").exists()
    assert not (tmp_path / "escaped.txt").exists()


def test_archive_inflating_past_the_limit_is_refused(tmp_path: Path) -> None:
    members = [file_member(f"shard-{i}.bin", b"\x00" * 400) for i in range(3)]
    reason = refusal(tmp_path, members, max_extract_bytes=1000)
    assert "1,000 bytes" in reason and "MODELHOST_MAX_EXTRACT_BYTES" in reason and "'shard-2.bin'" in reason


def test_exactly_at_the_limit_is_fine(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "m.tar.gz", [file_member(f"s{i}", b"\x00" * 500) for i in range(2)])
    extract_archive(archive, tmp_path / "out", max_extract_bytes=1000)


def test_too_many_members_is_refused(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "m.tar.gz", [file_member(f"f{i}") for i in range(6)])
    with pytest.raises(DeploymentError, match="more than 5 members"):
        extract_archive(archive, tmp_path / "out", max_extract_bytes=100, max_members=5)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "model data is empty (0 bytes)"),
        (
            b"<html>not found</html>" * 40,
            "not a gzip-compressed tar archive (ModelDataUrl must point to a .tar.gz)",
        ),
        (b"PK\x03\x04" + b"\x00" * 600, "model data is a zip file, not a gzip-compressed tar archive"),
        (gzip.compress(b"just some text\n" * 100), "gzip-compressed but is not a tar archive"),
        (b"\x1f\x8b\x08\x00garbage-after-the-magic" * 30, "not a tar archive"),
    ],
)
def test_not_an_archive(tmp_path: Path, content: bytes, expected: str) -> None:
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(content)
    with pytest.raises(DeploymentError) as caught:
        extract_archive(archive, tmp_path / "models" / "x", max_extract_bytes=1 << 20)
    assert caught.value.phase == "extract"
    assert expected in caught.value.reason
    assert not (tmp_path / "models" / "x").exists()


def test_truncated_archive_names_where_it_broke(tmp_path: Path) -> None:
    data = os.urandom(200_000)  # incompressible, so the cut lands inside the second member
    full = write_tar(tmp_path / "full.tar.gz", [file_member("a.bin", data), file_member("b.bin", data)])
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.75)])
    with pytest.raises(DeploymentError) as caught:
        extract_archive(cut, tmp_path / "models" / "x", max_extract_bytes=1 << 30)
    assert "truncated or corrupt" in caught.value.reason
    assert not (tmp_path / "models" / "x").exists()
    assert os.listdir(tmp_path / "models") == []


def test_deadline_is_checked_per_member(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "m.tar.gz", [file_member(f"f{i}") for i in range(5)])
    calls: list[int] = []

    def check() -> None:
        calls.append(1)
        if len(calls) == 3:
            raise DeploymentError("download", "model data did not download within 1 s")

    with pytest.raises(DeploymentError, match="within 1 s"):
        extract_archive(archive, tmp_path / "out", max_extract_bytes=100, check_deadline=check)
    assert not (tmp_path / "out").exists()
