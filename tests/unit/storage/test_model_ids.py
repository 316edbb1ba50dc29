"""Local paths named as model ids (option.model_id, HF_MODEL_ID, ...) follow the model-data limits."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from modelhost.controller.preparation import ArtifactPreparer, check_model_ids
from modelhost.errors import DeploymentError
from modelhost.resources.model import Container
from modelhost.security.keys import RECHECK_INTERVAL_S, KeyStore
from modelhost.storage.artifacts import ArtifactCache
from modelhost.storage.limits import DataLimits, effective_roots
from modelhost.storage.model_ids import deployment_refusal, environment_refusal, model_id_path, model_id_refusal

MODEL_DIR = Path("/cache/models/abc")


@pytest.mark.parametrize(
    ("model_id", "path"),
    [
        ("HuggingFaceTB/SmolLM2-135M-Instruct", None),  # hub or registered id
        ("gpt2", None),
        ("s3://bucket/model/", None),
        ("https://example.com/model", None),
        ("", None),
        ("/etc", Path("/etc")),
        ("/root/secret-model/", Path("/root/secret-model")),
        ("/data/models/../../etc", Path("/etc")),
        ("file:///etc/passwd", Path("/etc/passwd")),
        ("FILE:///a%20b", Path("/a b")),
        ("/opt/ml/model", MODEL_DIR),
        ("/opt/ml/model/", MODEL_DIR),
        ("./weights", MODEL_DIR / "weights"),
        ("weights/", MODEL_DIR / "weights"),
        ("a/b/c", MODEL_DIR / "a/b/c"),
        ("../../../etc", Path("/etc")),
        ("model.gguf/", MODEL_DIR / "model.gguf"),
        ("  /etc  ", Path("/etc")),
    ],
)
def test_which_local_path_a_model_id_names(model_id: str, path: Path | None) -> None:
    assert model_id_path(model_id, MODEL_DIR) == path


ROOTS = (Path("/srv/models"),)


@pytest.mark.parametrize(
    ("model_id", "roots", "allowed"),
    [
        ("/etc", None, True),  # no keys and no roots: anywhere, as before
        ("/etc", (), False),  # keys and no roots: nowhere
        ("/etc", ROOTS, False),
        ("/srv/models/llama", ROOTS, True),
        ("/srv/models/../../etc", ROOTS, False),
        ("file:///srv/models/llama", ROOTS, True),
        ("tiiuae/falcon-40b", (), True),  # a model id is not a path
        ("/opt/ml/model", (), True),  # the model data itself
        ("weights/", (), True),  # inside the model data
        ("../outside", (), False),
        ("s3://bucket/x/", (), True),  # not a local path (the engine refuses s3 ids itself)
    ],
)
def test_at_create_model_the_text_alone_decides(model_id: str, roots: tuple[Path, ...] | None, allowed: bool) -> None:
    reason = model_id_refusal("HF_MODEL_ID", model_id, None, roots, resolve=False)
    assert (reason is None) is allowed, reason
    if reason is not None:
        assert reason.startswith(f"HF_MODEL_ID={model_id}")
        assert "modelhost models add MODEL_ID PATH" in reason


def test_refusals_say_what_to_fix() -> None:
    none_allowed = environment_refusal({"HF_MODEL_ID": "/root/secret-model"}, ())
    assert none_allowed == (
        "HF_MODEL_ID=/root/secret-model: /root/secret-model is a local path, and local model data is not allowed "
        "on a server with access keys unless MODELHOST_LOCAL_DATA_ROOTS names the folders it may be read from; "
        "put the weights in the model data (ModelDataUrl), or register them with `modelhost models add MODEL_ID "
        "PATH` and name that id"
    )
    outside = environment_refusal({"OPTION_MODEL_ID": "/etc"}, ROOTS)
    assert outside is not None and outside.startswith("OPTION_MODEL_ID=/etc: /etc is outside the folders model data")
    assert "(MODELHOST_LOCAL_DATA_ROOTS=/srv/models)" in outside
    assert environment_refusal({"OPTION_S3URL": "/etc"}, ()) is not None
    assert environment_refusal({"OTHER": "/etc", "HF_MODEL_ID": "org/name"}, ()) is None


def test_at_deployment_symlinks_are_followed(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "weights").mkdir()
    (model_dir / "escape").symlink_to("/etc")
    roots = (tmp_path / "roots",)
    (tmp_path / "roots").mkdir()
    (tmp_path / "roots" / "link").symlink_to("/etc")
    assert deployment_refusal({"option.model_id": "./weights"}, {}, model_dir, ()) is None
    escape = deployment_refusal({"option.model_id": "./escape"}, {}, model_dir, ())
    assert escape is not None and escape.startswith("serving.properties option.model_id=./escape: ")
    link = deployment_refusal({"option.model_id": str(tmp_path / "roots" / "link")}, {}, model_dir, roots)
    assert link is not None and "leads outside the folders model data may be read from" in link
    assert deployment_refusal({"option.s3url": "/etc"}, {}, model_dir, ()) is not None
    # the Environment forms are judged at deployment too (a model created before the first key)
    env = deployment_refusal({"option.model_id": "org/name"}, {"HF_MODEL_ID": "/etc"}, model_dir, ())
    assert env is not None and env.startswith("HF_MODEL_ID=/etc: ")


def test_unset_roots_mean_none_once_the_home_has_a_key(tmp_path: Path) -> None:
    limits = DataLimits(keys_home=tmp_path)
    assert effective_roots(limits) is None
    KeyStore(tmp_path).create("admin")
    time.sleep(RECHECK_INTERVAL_S + 0.05)  # a running server sees the new key within the re-check interval
    assert effective_roots(limits) == ()
    assert effective_roots(DataLimits(local_roots=ROOTS, keys_home=tmp_path)) == ROOTS
    assert effective_roots(DataLimits()) is None


def test_a_deployment_naming_a_local_model_id_fails_the_load_phase(tmp_path: Path) -> None:
    model = tmp_path / "roots" / "model"
    model.mkdir(parents=True)
    (model / "serving.properties").write_text("option.model_id=/root/secret-model\n")
    limits = DataLimits(local_roots=(tmp_path / "roots",))
    with pytest.raises(DeploymentError) as failure:
        check_model_ids(model, {}, limits)
    assert str(failure.value).startswith("load failed: serving.properties option.model_id=/root/secret-model: ")
    check_model_ids(model, {}, DataLimits())  # no keys, no roots: as before

    cache = ArtifactCache(tmp_path / "artifacts", 1 << 20, limits=limits)
    preparer = ArtifactPreparer(cache, tmp_path / "packages", tmp_path / "empty")
    container = Container(image="img", model_data_url=str(model))
    with pytest.raises(DeploymentError, match=r"^load failed: serving.properties option.model_id=/root/secret"):
        asyncio.run(preparer.prepare(container, download_timeout_s=10, install_timeout_s=10, progress=lambda _: None))
    no_data = Container(image="img", environment={"HF_MODEL_ID": "/etc"})
    with pytest.raises(DeploymentError, match=r"^load failed: HF_MODEL_ID=/etc: /etc is outside"):
        asyncio.run(preparer.prepare(no_data, download_timeout_s=10, install_timeout_s=10, progress=lambda _: None))
