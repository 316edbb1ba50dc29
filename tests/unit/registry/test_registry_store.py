"""ModelRegistry add/get/list/remove on disk, with fake Hugging Face folders (no model is loaded)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelhost.registry import ModelRegistry
from modelhost.registry import store as store_module

pytestmark = pytest.mark.unit


def fake_hf_folder(folder: Path, marker: str = "v1") -> Path:
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "falcon", "marker": marker}))
    (folder / "model.safetensors").write_bytes(b"\0" * 1000)
    (folder / "tokenizer.json").write_text("{}")
    (folder / "sub" / "extra.txt").write_text("x")
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref")
    return folder


def test_add_links_the_folder_and_records_it(tmp_path: Path) -> None:
    source = fake_hf_folder(tmp_path / "src")
    registry = ModelRegistry(tmp_path / "registry")

    record = registry.add("tiiuae/falcon-40b", source)

    assert record.model_id == "tiiuae/falcon-40b"
    assert record.kind == "hf-folder"
    assert record.source == source
    assert record.linked and record.gguf_file is None and record.gguf_path is None
    assert len(record.revision) == 40 and int(record.revision, 16) >= 0
    assert record.size_bytes == len(json.dumps({"model_type": "falcon", "marker": "v1"})) + 1000 + 2 + 1
    weights = record.path
    assert (weights / "model.safetensors").is_symlink()
    assert (weights / "model.safetensors").resolve() == source / "model.safetensors"
    assert (weights / "sub" / "extra.txt").read_text() == "x"
    assert not (weights / ".git").exists()
    assert registry.get("tiiuae/falcon-40b") == record
    assert registry.resolve("tiiuae/falcon-40b") == weights
    assert registry.list() == [record]


def test_copy_makes_the_entry_independent_of_the_source(tmp_path: Path) -> None:
    source = fake_hf_folder(tmp_path / "src")
    registry = ModelRegistry(tmp_path / "registry")

    record = registry.add("gpt2", source, copy=True)
    (source / "model.safetensors").unlink()

    assert not record.linked
    assert not (record.path / "model.safetensors").is_symlink()
    assert (record.path / "model.safetensors").stat().st_size == 1000


def test_unknown_ids_resolve_to_none(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")

    assert registry.get("tiiuae/falcon-40b") is None
    assert registry.resolve("tiiuae/falcon-40b") is None
    assert registry.resolve("/opt/ml/model") is None  # a path, not an id
    assert registry.list() == []


def test_list_is_sorted_by_id(tmp_path: Path) -> None:
    source = fake_hf_folder(tmp_path / "src")
    registry = ModelRegistry(tmp_path / "registry")
    for model_id in ["zeta/m", "alpha/m", "gpt2"]:
        registry.add(model_id, source)

    assert [r.model_id for r in registry.list()] == ["alpha/m", "gpt2", "zeta/m"]


def test_re_adding_replaces_the_entry_and_deletes_the_old_version(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    first = registry.add("org/model", fake_hf_folder(tmp_path / "one", "v1"))
    old_version = first.path.resolve().parent

    second = registry.add("org/model", fake_hf_folder(tmp_path / "two", "v2"))

    assert second.path == first.path  # the stable path follows the id
    assert second.revision != first.revision
    assert json.loads((second.path / "config.json").read_text())["marker"] == "v2"
    assert not old_version.exists()
    assert registry.list() == [second]
    assert sorted(p.name for p in (tmp_path / "registry" / "versions").iterdir()) == [f"org--model@{second.revision}"]


def test_a_failed_add_leaves_the_previous_entry_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    first = registry.add("org/model", fake_hf_folder(tmp_path / "one", "v1"))

    def broken_mirror(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store_module, "_mirror_tree", broken_mirror)
    with pytest.raises(OSError, match="disk full"):
        registry.add("org/model", fake_hf_folder(tmp_path / "two", "v2"))

    assert registry.get("org/model") == first
    assert json.loads((first.path / "config.json").read_text())["marker"] == "v1"
    assert list((tmp_path / "registry" / "staging").iterdir()) == []


def test_re_registering_the_registered_folder_itself_keeps_the_files(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    registry.add("org/model", fake_hf_folder(tmp_path / "src"), copy=True)

    record = registry.add("org/model", registry.resolve("org/model") or Path("missing"))

    assert (record.path / "model.safetensors").stat().st_size == 1000


def test_remove_deletes_the_entry_but_not_the_source(tmp_path: Path) -> None:
    source = fake_hf_folder(tmp_path / "src")
    registry = ModelRegistry(tmp_path / "registry")
    record = registry.add("org/model", source)

    registry.remove("org/model")

    assert registry.get("org/model") is None
    assert not record.path.exists()
    assert (source / "model.safetensors").is_file()
    with pytest.raises(LookupError, match="not registered"):
        registry.remove("org/model")


@pytest.mark.parametrize("model_id", ["bad id", "a/b/c", "org--x"])
def test_add_rejects_invalid_ids(tmp_path: Path, model_id: str) -> None:
    with pytest.raises(ValueError, match="model id"):
        ModelRegistry(tmp_path / "registry").add(model_id, fake_hf_folder(tmp_path / "src"))


def test_add_rejects_a_folder_without_config_json(tmp_path: Path) -> None:
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "model.Q4.gguf").write_bytes(b"GGUF....")

    with pytest.raises(ValueError, match=r"no config\.json; to register a GGUF, pass the file itself"):
        ModelRegistry(tmp_path / "registry").add("org/model", folder)


def test_add_rejects_files_that_are_not_gguf(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 not a gguf")
    other = tmp_path / "model.bin"
    other.write_bytes(b"GGUF")
    registry = ModelRegistry(tmp_path / "registry")

    for path in (fake, other):
        with pytest.raises(ValueError, match="neither a Hugging Face model folder nor a GGUF file"):
            registry.add("org/model", path)
    with pytest.raises(ValueError, match="does not exist"):
        registry.add("org/model", tmp_path / "missing")
    assert registry.list() == []


def test_progress_reports_phases(tmp_path: Path) -> None:
    phases: list[str] = []

    ModelRegistry(tmp_path / "registry").add("org/model", fake_hf_folder(tmp_path / "src"), progress=phases.append)

    assert phases[0].startswith("linking files of")
    assert phases[-1] == "registered org/model"


def test_unreadable_entries_are_skipped(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    record = registry.add("org/model", fake_hf_folder(tmp_path / "src"))
    registry.add("org/other", fake_hf_folder(tmp_path / "src2"))
    (record.path.parent / "registered.json").write_text("{not json")

    assert [r.model_id for r in registry.list()] == ["org/other"]
