"""serving.properties parsing and the OPTION_/SERVING_/HF_MODEL_ID environment forms."""

from __future__ import annotations

import pytest

from modelhost.worker.properties import build_serving_properties, parse_properties


def test_java_properties_syntax() -> None:
    text = """
# a comment
! another comment
engine=Python
option.model_id : gpt2
option.dtype    fp16
  option.entryPoint = model.py  
option.long = one \\
    two
empty=
"""
    assert parse_properties(text) == {
        "engine": "Python",
        "option.model_id": "gpt2",
        "option.dtype": "fp16",
        "option.entryPoint": "model.py",
        "option.long": "one two",
        "empty": "",
    }


def test_options_are_stripped_and_split_from_model_properties() -> None:
    props = build_serving_properties("engine=Python\noption.model_id=gpt2\nbatch_size=4\n", {})
    assert props.options == {"model_id": "gpt2"}
    assert props.model_properties == {"engine": "Python", "batch_size": "4"}
    assert props.engine == "Python"
    assert props.model_id == "gpt2"
    assert props.batch_size == 4


def test_defaults() -> None:
    props = build_serving_properties(None, {})
    assert props.batch_size == 1
    assert props.max_batch_delay_ms == 100
    assert props.model_loading_timeout_s == 240
    assert props.predict_timeout_s == 120
    assert props.handler == "handle"
    assert props.entry_point is None
    assert props.tensor_parallel_degree is None
    assert props.trust_remote_code is False


def test_environment_fills_only_keys_the_file_does_not_set() -> None:
    env = {
        "OPTION_MODEL_ID": "from-env",
        "OPTION_DTYPE": "bf16",
        "OPTION_ENTRYPOINT": "handler.py",
        "SERVING_BATCH_SIZE": "8",
        "SERVING_MAX_BATCH_DELAY": "50",
        "TENSOR_PARALLEL_DEGREE": "max",
        "OPTION_TRUST_REMOTE_CODE": "TRUE",
    }
    props = build_serving_properties("option.model_id=from-file\nbatch_size=2\n", env)
    assert props.model_id == "from-file"
    assert props.dtype == "bf16"
    assert props.options["entryPoint"] == "handler.py"
    assert props.entry_point == "handler.py"
    assert props.batch_size == 2
    assert props.max_batch_delay_ms == 50
    assert props.tensor_parallel_degree == "max"
    assert props.trust_remote_code is True


def test_hf_model_id_and_timeouts_from_environment() -> None:
    env = {
        "HF_MODEL_ID": "org/model",
        "MODEL_LOADING_TIMEOUT": "7",
        "PREDICT_TIMEOUT": "3",
        "TENSOR_PARALLEL_DEGREE": "2",
    }
    props = build_serving_properties(None, env)
    assert props.model_id == "org/model"
    assert props.model_loading_timeout_s == 7
    assert props.predict_timeout_s == 3
    assert props.tensor_parallel_degree == 2


def test_option_model_id_beats_hf_model_id() -> None:
    props = build_serving_properties(None, {"HF_MODEL_ID": "hf", "OPTION_MODEL_ID": "opt"})
    assert props.model_id == "opt"


def test_file_timeout_beats_environment() -> None:
    props = build_serving_properties("option.model_loading_timeout=2\n", {"MODEL_LOADING_TIMEOUT": "9"})
    assert props.model_loading_timeout_s == 2


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("batch_size=abc", "batch_size"),
        ("batch_size=0", "batch_size"),
        ("max_batch_delay=soon", "max_batch_delay"),
        ("option.tensor_parallel_degree=two", "option.tensor_parallel_degree"),
        ("option.trust_remote_code=maybe", "option.trust_remote_code"),
        ("option.model_loading_timeout=-1", "option.model_loading_timeout"),
        ("option.predict_timeout=x", "option.predict_timeout"),
    ],
)
def test_bad_values_name_their_key(text: str, key: str) -> None:
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        build_serving_properties(text, {})


def test_option_env_is_parsed() -> None:
    props = build_serving_properties("option.env=A=1, B = two\n", {})
    assert props.process_env == {"A": "1", "B": "two"}
