"""The hub-cache layout of registered ids and the workers' overlay cache over the user's cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelhost.registry import ModelRegistry
from modelhost.registry.hub_cache import overlay_environment, sync_overlay, user_hub_cache, write_snapshot

pytestmark = pytest.mark.unit


def fake_hf_folder(folder: Path, marker: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"marker": marker}))
    (folder / "model.safetensors").write_bytes(b"\0" * 10)
    return folder


def user_cache_with(cache: Path, *model_ids: str) -> Path:
    for model_id in model_ids:
        repo = cache / ("models--" + model_id.replace("/", "--"))
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text("f" * 40)
        (repo / "snapshots" / ("f" * 40)).mkdir(parents=True)
        (repo / "snapshots" / ("f" * 40) / "config.json").write_text(json.dumps({"marker": "user"}))
    (cache / ".locks").mkdir(parents=True, exist_ok=True)
    return cache


def marker_through_overlay(overlay: Path, model_id: str) -> str:
    """What huggingface_hub would read for `model_id` at revision main: refs/main, then the snapshot."""
    repo = overlay / ("models--" + model_id.replace("/", "--"))
    commit = (repo / "refs" / "main").read_text()
    return str(json.loads((repo / "snapshots" / commit / "config.json").read_text())["marker"])


def test_snapshot_has_a_bare_ref_and_relative_links(tmp_path: Path) -> None:
    weights = fake_hf_folder(tmp_path / "entry" / "weights", "mine")
    revision = "a" * 40

    write_snapshot(tmp_path / "entry" / "hub", revision, {"config.json": weights / "config.json"})

    assert (tmp_path / "entry" / "hub" / "refs" / "main").read_bytes() == revision.encode()  # no newline
    link = tmp_path / "entry" / "hub" / "snapshots" / revision / "config.json"
    assert link.is_symlink() and not Path(link.readlink()).is_absolute()
    moved = tmp_path / "moved"
    (tmp_path / "entry").rename(moved)
    assert json.loads((moved / "hub" / "snapshots" / revision / "config.json").read_text())["marker"] == "mine"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"HF_HUB_CACHE": "/c/hub", "HF_HOME": "/h"}, "/c/hub"),
        ({"HUGGINGFACE_HUB_CACHE": "/old/hub", "HF_HOME": "/h"}, "/old/hub"),
        ({"HF_HOME": "/h", "XDG_CACHE_HOME": "/x"}, "/h/hub"),
        ({"XDG_CACHE_HOME": "/x", "HOME": "/home/u"}, "/x/huggingface/hub"),
        ({"HOME": "/home/u"}, "/home/u/.cache/huggingface/hub"),
        ({"HF_HOME": "~/hf", "HOME": "/home/u"}, "/home/u/hf/hub"),
    ],
)
def test_user_hub_cache_follows_huggingface_hub_precedence(env: dict[str, str], expected: str) -> None:
    assert user_hub_cache(env) == Path(expected)


def test_overlay_links_the_user_cache_and_registered_ids_win(tmp_path: Path) -> None:
    user_cache = user_cache_with(tmp_path / "user-hub", "tiiuae/falcon-40b", "meta-llama/Llama-2-7b-hf")
    registry = ModelRegistry(tmp_path / "registry")
    registry.add("tiiuae/falcon-40b", fake_hf_folder(tmp_path / "falcon", "registered"))
    registry.add("acme/private", fake_hf_folder(tmp_path / "private", "private"))

    env = registry.worker_environment({"HF_HUB_CACHE": str(user_cache)})

    overlay = Path(env["HF_HUB_CACHE"])
    assert overlay == registry.overlay_dir
    assert sorted(p.name for p in overlay.iterdir()) == [
        "models--acme--private",
        "models--meta-llama--Llama-2-7b-hf",
        "models--tiiuae--falcon-40b",
    ]
    assert marker_through_overlay(overlay, "tiiuae/falcon-40b") == "registered"
    assert marker_through_overlay(overlay, "acme/private") == "private"
    assert marker_through_overlay(overlay, "meta-llama/Llama-2-7b-hf") == "user"
    assert (overlay / "models--meta-llama--Llama-2-7b-hf").resolve() == user_cache / "models--meta-llama--Llama-2-7b-hf"


def test_overlay_follows_removal_and_re_registration(tmp_path: Path) -> None:
    user_cache = user_cache_with(tmp_path / "user-hub", "tiiuae/falcon-40b")
    registry = ModelRegistry(tmp_path / "registry")
    registry.add("tiiuae/falcon-40b", fake_hf_folder(tmp_path / "v1", "v1"))
    registry.add("acme/gone", fake_hf_folder(tmp_path / "gone", "gone"))
    base = {"HF_HUB_CACHE": str(user_cache)}
    registry.worker_environment(base)

    registry.add("tiiuae/falcon-40b", fake_hf_folder(tmp_path / "v2", "v2"))
    assert marker_through_overlay(registry.overlay_dir, "tiiuae/falcon-40b") == "v2"  # no resync needed
    registry.remove("tiiuae/falcon-40b")
    registry.remove("acme/gone")
    registry.worker_environment(base)

    assert marker_through_overlay(registry.overlay_dir, "tiiuae/falcon-40b") == "user"
    assert not (registry.overlay_dir / "models--acme--gone").exists()


def test_a_download_in_the_overlay_is_kept_but_moved_aside_for_a_registered_id(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    overlay = registry.overlay_dir
    # real folders, as downloads made online leave them
    user_cache_with(overlay, "someone/downloaded", "tiiuae/falcon-40b")
    registry.add("tiiuae/falcon-40b", fake_hf_folder(tmp_path / "falcon", "registered"))

    registry.worker_environment({"HF_HUB_CACHE": str(tmp_path / "empty")})

    assert marker_through_overlay(overlay, "someone/downloaded") == "user"
    assert marker_through_overlay(overlay, "tiiuae/falcon-40b") == "registered"
    assert len(list((overlay / ".replaced-by-registry").iterdir())) == 1


def test_overlay_never_links_to_itself(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    registry.add("org/model", fake_hf_folder(tmp_path / "m", "m"))
    worker_env = registry.worker_environment({"HOME": str(tmp_path)})

    again = registry.worker_environment(worker_env)  # a worker starting a worker

    assert again["HF_HUB_CACHE"] == worker_env["HF_HUB_CACHE"]
    assert marker_through_overlay(registry.overlay_dir, "org/model") == "m"


def test_sync_overlay_replaces_a_stale_link(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "models--x").symlink_to(tmp_path / "nowhere")
    (overlay / "models--y").symlink_to(tmp_path / "nowhere")
    user = user_cache_with(tmp_path / "user", "x")

    sync_overlay(overlay, {}, user)

    assert (overlay / "models--x").resolve() == user / "models--x"
    assert not (overlay / "models--y").is_symlink()
    assert not (overlay / ".locks").exists()


def test_worker_environment_keeps_the_rest_of_base_env(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    base = {"PATH": "/bin", "HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": "t", "TRANSFORMERS_CACHE": "/old"}

    env = registry.worker_environment(base)

    overlay = str(registry.overlay_dir)
    assert env == {
        **base,
        "HF_HUB_CACHE": overlay,
        "HUGGINGFACE_HUB_CACHE": overlay,
        "TRANSFORMERS_CACHE": overlay,
    }
    assert "HF_HUB_OFFLINE" not in env  # online stays online


def test_worker_goes_offline_only_when_it_names_a_registered_id(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    registry.add("org/model", fake_hf_folder(tmp_path / "m", "m"))

    assert "HF_HUB_OFFLINE" not in registry.worker_environment(
        {"HOME": str(tmp_path)}, model_ids=["gpt2", "/opt/ml/model"]
    )
    assert registry.worker_environment({"HOME": str(tmp_path)}, model_ids=["org/model"])["HF_HUB_OFFLINE"] == "1"
    assert overlay_environment({"HF_HUB_OFFLINE": "1"}, tmp_path, offline=False)["HF_HUB_OFFLINE"] == "1"
