"""from_pretrained("org/name") in a worker process resolves registered ids offline, via the overlay cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from registry_test_models import run_worker_script

from modelhost.registry import ModelRegistry

pytestmark = pytest.mark.integration

LOAD_AND_GENERATE = """
    import json, os, torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model_id = os.environ["MODEL_ID"]
    tokenizer = AutoTokenizer.from_pretrained(model_id)
    model = AutoModelForCausalLM.from_pretrained(model_id)
    inputs = tokenizer("hello world", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    print(json.dumps({
        "class": type(model).__name__,
        "config_path": model.config._name_or_path,
        "new_tokens": int(out.shape[1] - inputs["input_ids"].shape[1]),
        "hidden_size": model.config.hidden_size,
        "text": tokenizer.decode(out[0]),
    }))
"""


def test_registered_falcon_loads_by_id_offline(tmp_path: Path, tiny_falcon: Path, base_env: dict[str, str]) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    registry.add("tiiuae/falcon-40b", tiny_falcon)
    env = registry.worker_environment(base_env)

    result = run_worker_script(LOAD_AND_GENERATE, {**env, "MODEL_ID": "tiiuae/falcon-40b"})

    assert result["class"] == "FalconForCausalLM"
    assert result["hidden_size"] == 32
    assert result["new_tokens"] == 4
    assert str(result["text"]).startswith("hello world")


def test_registered_id_wins_over_the_users_cache(
    tmp_path: Path, tiny_falcon: Path, tiny_llama: Path, base_env: dict[str, str]
) -> None:
    # The user's own hub cache already holds "tiiuae/falcon-40b", as the tiny llama.
    user_cache = Path(base_env["HOME"]) / ".cache" / "huggingface" / "hub"
    _put_in_hub_cache(user_cache, "tiiuae/falcon-40b", tiny_llama)
    registry = ModelRegistry(tmp_path / "registry")
    registry.add("tiiuae/falcon-40b", tiny_falcon)

    result = run_worker_script(
        LOAD_AND_GENERATE, {**registry.worker_environment(base_env), "MODEL_ID": "tiiuae/falcon-40b"}
    )

    assert result["class"] == "FalconForCausalLM"


def test_unregistered_id_falls_back_to_the_users_cache(
    tmp_path: Path, tiny_falcon: Path, tiny_llama: Path, base_env: dict[str, str]
) -> None:
    user_cache = tmp_path / "elsewhere" / "hub"  # chosen by HF_HUB_CACHE in the user's environment
    _put_in_hub_cache(user_cache, "meta-llama/Llama-2-7b-hf", tiny_llama)
    base_env = {**base_env, "HF_HUB_CACHE": str(user_cache)}
    registry = ModelRegistry(tmp_path / "registry")
    registry.add("tiiuae/falcon-40b", tiny_falcon)

    result = run_worker_script(
        LOAD_AND_GENERATE, {**registry.worker_environment(base_env), "MODEL_ID": "meta-llama/Llama-2-7b-hf"}
    )

    assert result["class"] == "LlamaForCausalLM"


def test_unknown_id_fails_with_the_usual_hugging_face_error(
    tmp_path: Path, tiny_falcon: Path, base_env: dict[str, str]
) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    registry.add("tiiuae/falcon-40b", tiny_falcon)
    script = """
        import json
        from transformers import AutoConfig
        try:
            AutoConfig.from_pretrained("nobody/not-registered")
        except OSError as error:
            print(json.dumps({"error": type(error).__name__, "message": str(error)}))
    """

    result = run_worker_script(script, registry.worker_environment(base_env))

    assert result["error"] == "OSError"
    assert "couldn't find them in the cached files" in str(result["message"])


def test_re_registering_an_id_switches_workers_to_the_new_weights(
    tmp_path: Path, tiny_falcon: Path, tiny_llama: Path, base_env: dict[str, str]
) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    registry.add("tiiuae/falcon-40b", tiny_falcon)
    registry.worker_environment(base_env)
    registry.add("tiiuae/falcon-40b", tiny_llama)

    result = run_worker_script(
        LOAD_AND_GENERATE, {**registry.worker_environment(base_env), "MODEL_ID": "tiiuae/falcon-40b"}
    )

    assert result["class"] == "LlamaForCausalLM"


def _put_in_hub_cache(cache: Path, model_id: str, folder: Path) -> None:
    """Lay `folder` out as huggingface_hub's own download would: blobs + snapshot links + refs/main."""
    repo = cache / ("models--" + model_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for index, file in enumerate(sorted(folder.iterdir())):
        blob = repo / "blobs" / f"blob{index}"
        shutil.copy(file, blob)
        (snapshot / file.name).symlink_to(Path("..") / ".." / "blobs" / blob.name)
