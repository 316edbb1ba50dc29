"""Model id validation and the folder names derived from ids."""

from __future__ import annotations

import re

import pytest

from modelhost.registry.model_id import (
    entry_folder_name,
    hub_folder_name,
    is_model_id,
    referenced_model_ids,
    validate_model_id,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "model_id",
    [
        "tiiuae/falcon-40b",
        "gpt2",
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        "org_1/name.v2",
        "a",
        "a/b",
        "x" * 96,
    ],
)
def test_valid_ids(model_id: str) -> None:
    assert validate_model_id(model_id) == model_id
    assert is_model_id(model_id)


@pytest.mark.parametrize(
    ("model_id", "reason"),
    [
        ("", "non-empty"),
        ("a/b/c", "more than one '/'"),
        ("org--x/name", "'--'"),
        ("org/na..me", "'..'"),
        ("org/name.git", ".git"),
        ("-org/name", "not valid"),
        ("org/name-", "not valid"),
        (".hidden", "not valid"),
        ("org/", "not valid"),
        ("/abs/path", "more than one"),
        ("/model", "not valid"),
        ("s3://bucket", "more than one"),
        ("s3:bucket", "not valid"),
        ("org/na me", "not valid"),
        ("x" * 97, "longer than 96"),
    ],
)
def test_invalid_ids_say_why(model_id: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        validate_model_id(model_id)
    assert not is_model_id(model_id)


def test_folder_names_follow_the_hub_cache() -> None:
    assert entry_folder_name("tiiuae/falcon-40b") == "tiiuae--falcon-40b"
    assert hub_folder_name("tiiuae/falcon-40b") == "models--tiiuae--falcon-40b"
    assert hub_folder_name("gpt2") == "models--gpt2"


def test_referenced_model_ids_finds_literal_from_pretrained_ids() -> None:
    source = """
from transformers import AutoModelForCausalLM, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained("tiiuae/falcon-40b")
model = AutoModelForCausalLM.from_pretrained(
    'tiiuae/falcon-40b', torch_dtype="auto")
other = AutoModel.from_pretrained(pretrained_model_name_or_path="gpt2")
local = AutoModel.from_pretrained("/opt/ml/model")
dynamic = AutoModel.from_pretrained(properties["model_id"])
"""
    assert referenced_model_ids(source) == ["tiiuae/falcon-40b", "gpt2"]
