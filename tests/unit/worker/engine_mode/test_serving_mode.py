"""Handler mode vs engine mode, the request schema from the image, and EngineConfig from properties/env."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelhost.worker.engine_mode.serving_mode import build_engine_config, choose_mode, image_schema
from modelhost.worker.properties import build_serving_properties

LMI = "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.29.0-lmi11.0.0-cu124"
TGI = (
    "763104351884.dkr.ecr.us-west-2.amazonaws.com/huggingface-pytorch-tgi-inference:"
    "2.1.1-tgi2.0.0-gpu-py310-cu121-ubuntu22.04"
)
MODEL_DIR = Path("/models/m")


def props(text: str | None = None, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return build_serving_properties(text, env or {})


@pytest.mark.parametrize(
    ("text", "env", "files", "mode"),
    [
        ("option.model_id=org/m\n", {}, ["serving.properties"], "engine"),
        ("option.model_id=org/m\n", {}, ["serving.properties", "model.py"], "handler"),
        ("option.model_id=org/m\noption.entryPoint=djl_python.huggingface\n", {}, [], "handler"),
        ("option.model_id=org/m\n", {"DJL_ENTRY_POINT": "serve.py"}, [], "handler"),
        (None, {"HF_MODEL_ID": "org/m"}, [], "engine"),  # a TGI/LMI image configured by environment only
        (None, {"OPTION_MODEL_ID": "org/m"}, [], "engine"),
        ("engine=Python\n", {}, ["config.json", "model.safetensors"], "engine"),
        (None, {}, ["model-q8_0.gguf"], "engine"),
        ("engine=Python\n", {}, ["serving.properties"], "handler"),  # nothing to serve: handler mode's error
        (None, {}, ["model.py", "config.json"], "handler"),
    ],
)
def test_mode_rules(text: str | None, env: dict[str, str], files: list[str], mode: str) -> None:
    assert choose_mode(props(text, env), env, files).mode == mode


@pytest.mark.parametrize(
    ("image", "schema"),
    [
        (LMI, "lmi"),
        (TGI, "tgi"),
        ("763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.22.1-deepspeed0.8.3-cu118", "lmi"),
        ("my.registry/team/tgi-fork:latest", "tgi"),
        ("modelhost/llm:latest", "lmi"),
        ("", "lmi"),
        ("registry:5000/lmi:tgi-looking-tag", "lmi"),  # the tag does not count
    ],
)
def test_schema_from_image(image: str, schema: str) -> None:
    assert image_schema(image) == schema


def test_tgi_compat_option_selects_tgi() -> None:
    assert image_schema(LMI, {"tgi_compat": "true"}) == "tgi"


def test_lmi_properties_become_the_engine_config() -> None:
    text = (
        "option.model_id=HuggingFaceTB/SmolLM2-135M-Instruct\noption.rolling_batch=lmi-dist\n"
        "option.max_rolling_batch_size=8\noption.dtype=bf16\noption.tensor_parallel_degree=2\n"
        "option.max_model_len=4096\noption.trust_remote_code=true\noption.enable_prefix_caching=true\n"
    )
    config = build_engine_config(props(text), {}, MODEL_DIR, ["serving.properties"])
    assert config.model_id_or_path == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert (config.backend, config.max_batch_size, config.dtype) == ("auto", 8, "bf16")
    assert (config.tensor_parallel_degree, config.max_model_len, config.trust_remote_code) == (2, 4096, True)
    assert config.max_input_tokens is None and config.gguf_file is None
    assert config.extra == {"enable_prefix_caching": "true"}


def test_tgi_environment_becomes_the_engine_config() -> None:
    env = {
        "HF_MODEL_ID": "/opt/ml/model",
        "SM_NUM_GPUS": "4",
        "MAX_INPUT_LENGTH": "1024",
        "MAX_TOTAL_TOKENS": "2048",
        "MAX_BATCH_PREFILL_TOKENS": "4096",
        "DTYPE": "bfloat16",
        "HF_MODEL_TRUST_REMOTE_CODE": "true",
    }
    config = build_engine_config(props(None, env), env, MODEL_DIR, ["config.json"], gpu_count=4)
    assert config.model_id_or_path == str(MODEL_DIR)  # /opt/ml/model is the model data
    assert (config.tensor_parallel_degree, config.max_input_tokens, config.max_model_len) == (4, 1024, 2048)
    assert (config.dtype, config.trust_remote_code) == ("bf16", True)
    assert config.extra["max_batch_prefill_tokens"] == "4096"


def test_tgi_prefix_caching_variable_and_the_option_wins() -> None:
    env = {"HF_MODEL_ID": "a/b", "PREFIX_CACHING": "0"}
    config = build_engine_config(props(None, env), env, MODEL_DIR, [])
    assert config.extra["enable_prefix_caching"] == "0"
    config = build_engine_config(props("option.model_id=a/b\noption.enable_prefix_caching=true\n"), env, MODEL_DIR, [])
    assert config.extra["enable_prefix_caching"] == "true"


def test_max_input_tokens_new_name_and_options_win() -> None:
    env = {"MAX_INPUT_TOKENS": "100", "MAX_TOTAL_TOKENS": "200"}
    config = build_engine_config(props("option.model_id=a/b\noption.max_model_len=300\n"), env, MODEL_DIR, [])
    assert (config.max_input_tokens, config.max_model_len) == (100, 300)


def test_weights_in_the_folder() -> None:
    assert build_engine_config(props(), {}, MODEL_DIR, ["config.json"]).model_id_or_path == str(MODEL_DIR)
    config = build_engine_config(props(), {}, MODEL_DIR, ["m-q8_0.gguf"])
    assert config.model_id_or_path == config.gguf_file == str(MODEL_DIR / "m-q8_0.gguf")


@pytest.mark.parametrize(
    ("model_id", "loaded", "gguf"),
    [
        ("org/name", "org/name", None),  # a hub or registered id is passed on as it is
        ("./weights", str(MODEL_DIR / "weights"), None),  # relative paths: inside the model folder, whatever the cwd
        ("sub/dir/m.gguf", str(MODEL_DIR / "sub/dir/m.gguf"), str(MODEL_DIR / "sub/dir/m.gguf")),
        ("/srv/models/llama/", "/srv/models/llama", None),  # the path the controller checked (folded)
    ],
)
def test_the_model_id_path_is_the_one_the_controller_checked(model_id: str, loaded: str, gguf: str | None) -> None:
    config = build_engine_config(props(f"option.model_id={model_id}\n"), {}, MODEL_DIR, [])
    assert (config.model_id_or_path, config.gguf_file) == (loaded, gguf)


def test_rolling_batch_mapping_and_tp_max() -> None:
    assert (
        build_engine_config(props("option.model_id=a/b\noption.rolling_batch=vllm\n"), {}, MODEL_DIR, []).backend
        == "vllm"
    )
    config = build_engine_config(
        props("option.model_id=a/b\noption.tensor_parallel_degree=max\n"), {}, MODEL_DIR, [], gpu_count=8
    )
    assert config.tensor_parallel_degree == 8


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("option.model_id=a/b\noption.rolling_batch=magic\n", {}, "option.rolling_batch='magic'"),
        ("option.model_id=a/b\noption.dtype=int3\n", {}, "option.dtype='int3'"),
        ("option.model_id=a/b\noption.max_rolling_batch_size=0\n", {}, "option.max_rolling_batch_size"),
        ("option.model_id=a/b\n", {"MAX_TOTAL_TOKENS": "lots"}, "MAX_TOTAL_TOKENS must be an integer"),
        ("option.model_id=a/b\n", {"MAX_INPUT_LENGTH": "512", "MAX_TOTAL_TOKENS": "512"}, "must be less than"),
        ("option.model_id=s3://bucket/m/\n", {}, "s3:// model id is not supported"),
    ],
)
def test_bad_values_name_their_key(text: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_engine_config(props(text, env), env, MODEL_DIR, [])


def test_kv_cache_budget_option() -> None:
    from modelhost.worker.engine_mode.serving_mode import _kv_budget_bytes

    assert _kv_budget_bytes(None) is None
    assert _kv_budget_bytes("512") == 512 * 1024 * 1024
    import pytest

    with pytest.raises(ValueError, match="option.kv_cache_budget_mb must be an integer"):
        _kv_budget_bytes("lots")
