"""DJL Serving's lone-folder rule (model_root.py) and ArtifactCache.prepare returning the inner folder."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modelhost.storage.artifacts import ArtifactCache
from modelhost.storage.model_root import is_hidden, lone_folder, model_root
from modelhost.storage.uris import parse_model_data_url, parse_s3_data_source
from modelhost.worker.engine_mode.serving_mode import choose_mode
from modelhost.worker.properties import build_serving_properties

HANDLER_FILES = {"serving.properties": "engine=Python\n", "model.py": "def handle(inputs): ...\n"}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    root.mkdir(parents=True, exist_ok=True)
    return root


def pack_like_the_guide(folder: Path, target: Path) -> Path:
    """The guide's create_tar_gz: every file under one top-level folder named like the source folder."""
    with tarfile.open(target, "w:gz") as tar:
        tar.add(folder, arcname=os.path.basename(folder))
    return target


# -- the rule, on names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ([("code_container", True)], "code_container"),
        ([("code_container", True), ("._code_container", False), (".DS_Store", False)], "code_container"),
        ([(".git", True), ("model", True)], "model"),
        ([("code_container", True), ("__MACOSX", True)], None),  # DJL skips only names starting with '.'
        ([("a", True), ("b", True)], None),
        ([("model", True), ("serving.properties", False)], None),
        ([("model.tar.gz", False)], None),
        ([(".hidden", True)], None),
        ([], None),
    ],
)
def test_lone_folder_follows_djl(entries: list[tuple[str, bool]], expected: str | None) -> None:
    assert lone_folder(entries) == expected


def test_hidden_means_a_leading_dot() -> None:
    assert is_hidden(".DS_Store") and is_hidden("._model.py") and is_hidden(".git")
    assert not is_hidden("__MACOSX") and not is_hidden("model.py") and not is_hidden("Thumbs.db")


def test_lone_folder_stops_reading_at_the_second_visible_entry() -> None:
    def entries() -> Iterator[tuple[str, bool]]:
        yield ("a", True)
        yield ("b", True)
        raise AssertionError("read past the second visible entry")

    assert lone_folder(entries()) is None


# -- the rule, on folders ---------------------------------------------------------------------------------


def test_lone_folder_is_descended_into(tmp_path: Path) -> None:
    write_tree(tmp_path / "code_container", HANDLER_FILES)
    assert model_root(tmp_path) == tmp_path / "code_container"


def test_lone_folder_beside_macos_junk_is_descended_into(tmp_path: Path) -> None:
    write_tree(tmp_path / "code_container", HANDLER_FILES)
    write_tree(tmp_path, {"._code_container": "x", ".DS_Store": "x", "._x": "x"})
    assert model_root(tmp_path) == tmp_path / "code_container"


def test_macosx_folder_counts_as_an_entry(tmp_path: Path) -> None:
    write_tree(tmp_path / "code_container", HANDLER_FILES)
    write_tree(tmp_path / "__MACOSX", {"._model.py": "x"})
    assert model_root(tmp_path) == tmp_path


def test_two_folders_are_not_descended_into(tmp_path: Path) -> None:
    write_tree(tmp_path / "a", HANDLER_FILES)
    write_tree(tmp_path / "b", HANDLER_FILES)
    assert model_root(tmp_path) == tmp_path


def test_a_folder_and_a_file_are_not_descended_into(tmp_path: Path) -> None:
    write_tree(tmp_path, {"serving.properties": "engine=Python\n", "code/model.py": "x"})
    assert model_root(tmp_path) == tmp_path


def test_a_lone_file_is_not_descended_into(tmp_path: Path) -> None:
    write_tree(tmp_path, {"model.gguf": "GGUF"})
    assert model_root(tmp_path) == tmp_path


def test_descends_one_level_only(tmp_path: Path) -> None:
    write_tree(tmp_path / "outer" / "inner", HANDLER_FILES)
    assert model_root(tmp_path) == tmp_path / "outer"


def test_a_lone_symlink_to_a_folder_counts_as_a_folder(tmp_path: Path) -> None:
    write_tree(tmp_path / "store" / "real", HANDLER_FILES)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "current").symlink_to(tmp_path / "store" / "real", target_is_directory=True)
    assert model_root(tmp_path / "model") == tmp_path / "model" / "current"


# -- wired into ArtifactCache.prepare ---------------------------------------------------------------------


def test_the_guides_archive_serves_from_its_top_folder(tmp_path: Path) -> None:
    folder = write_tree(tmp_path / "code_container", HANDLER_FILES)
    archive = pack_like_the_guide(folder, tmp_path / "code_packaged.tar.gz")
    cache = ArtifactCache(tmp_path / "cache", max_extract_bytes=1 << 20)
    lines: list[str] = []

    root = cache.prepare(parse_model_data_url(str(archive)), timeout_s=60, progress=lines.append)

    assert root.name == "code_container" and root.parent.parent == tmp_path / "cache" / "models"
    assert sorted(os.listdir(root)) == ["model.py", "serving.properties"]
    assert lines[-1] == "the model data holds only the folder code_container/; serving from it, as DJL Serving does"
    again = cache.prepare(parse_model_data_url(archive.as_uri()), timeout_s=60)
    assert again == root  # file:// and the cached path agree


def test_a_local_folder_wrapping_one_folder_is_used_in_place_from_inside(tmp_path: Path) -> None:
    write_tree(tmp_path / "upload" / "code_container", HANDLER_FILES)
    (tmp_path / "upload" / ".DS_Store").write_bytes(b"\x00")
    cache = ArtifactCache(tmp_path / "cache", max_extract_bytes=1 << 20)
    inner = tmp_path / "upload" / "code_container"
    assert cache.prepare(parse_model_data_url(str(tmp_path / "upload")), timeout_s=60) == inner
    assert cache.prepare(parse_model_data_url((tmp_path / "upload").as_uri()), timeout_s=60) == inner
    prefix = {"S3Uri": f"file://{tmp_path / 'upload'}", "S3DataType": "S3Prefix", "CompressionType": "None"}
    assert cache.prepare(parse_s3_data_source(prefix), timeout_s=60) == inner
    assert not (tmp_path / "cache" / "models").exists()


def test_an_archive_at_the_root_is_served_from_the_root(tmp_path: Path) -> None:
    folder = write_tree(tmp_path / "model", HANDLER_FILES)
    archive = tmp_path / "flat.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    lines: list[str] = []
    root = ArtifactCache(tmp_path / "cache", max_extract_bytes=1 << 20).prepare(
        parse_model_data_url(str(archive)), timeout_s=60, progress=lines.append
    )
    assert root.parent == tmp_path / "cache" / "models"
    assert not any("holds only the folder" in line for line in lines)


def test_an_uncompressed_single_object_stays_at_the_root(tmp_path: Path) -> None:
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"GGUF")
    source = parse_s3_data_source({"S3Uri": str(weights), "S3DataType": "S3Object", "CompressionType": "None"})
    root = ArtifactCache(tmp_path / "cache", max_extract_bytes=1 << 20).prepare(source, timeout_s=60)
    assert os.listdir(root) == ["model.gguf"]


def test_an_http_archive_wrapping_one_folder_serves_from_it(tmp_path: Path) -> None:
    body = pack_like_the_guide(write_tree(tmp_path / "code_container", HANDLER_FILES), tmp_path / "m.tar.gz")
    data = body.read_bytes()
    transport = httpx.MockTransport(lambda request: httpx.Response(200, stream=httpx.ByteStream(data)))
    public = lambda host, port: ["93.184.216.34"]  # noqa: E731  (no real DNS in unit tests)
    cache = ArtifactCache(tmp_path / "cache", max_extract_bytes=1 << 20, http_transport=transport, resolver=public)
    root = cache.prepare(parse_model_data_url("https://models.example/code_packaged.tar.gz"), 60)
    assert root.name == "code_container" and (root / "model.py").is_file()


def test_engine_mode_sees_the_nested_serving_properties(tmp_path: Path) -> None:
    """The worker picks its mode from the names at the top of the folder it is given: the resolved one."""
    text = "option.model_id=HuggingFaceTB/SmolLM2-135M-Instruct\n"
    folder = write_tree(tmp_path / "smol", {"serving.properties": text})
    archive = pack_like_the_guide(folder, tmp_path / "smol.tar.gz")
    root = ArtifactCache(tmp_path / "cache", max_extract_bytes=1 << 20).prepare(
        parse_model_data_url(str(archive)), timeout_s=60
    )
    properties = build_serving_properties((root / "serving.properties").read_text(), {})
    decision = choose_mode(properties, {}, sorted(os.listdir(root)))
    assert decision.mode == "engine"
    assert properties.model_id == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_a_tar_with_only_a_top_folder_member_list_still_descends(tmp_path: Path) -> None:
    """Archives written without a directory member for the top folder (only 'code_container/x' names)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in HANDLER_FILES.items():
            data = text.encode()
            info = tarfile.TarInfo(f"code_container/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        junk = tarfile.TarInfo("._code_container")
        junk.size = 1
        tar.addfile(junk, io.BytesIO(b"\x00"))
    archive = tmp_path / "m.tar.gz"
    archive.write_bytes(buffer.getvalue())
    root = ArtifactCache(tmp_path / "cache", max_extract_bytes=1 << 20).prepare(
        parse_model_data_url(str(archive)), timeout_s=60
    )
    assert root.name == "code_container" and (root / "serving.properties").is_file()
