"""Tiny random Falcon and llama models with a real tokenizer, and a worker-like subprocess runner."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

VOCAB = ["<unk>", "<s>", "</s>"] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + [" ", ".", "?"]


def save_tokenizer(folder: Path) -> None:
    """A character-level fast tokenizer, built offline with `tokenizers`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(VOCAB)}
    backend = Tokenizer(models.WordPiece(vocab=vocab, unk_token="<unk>", max_input_chars_per_word=1000))
    backend.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="</s>"
    )
    tokenizer.save_pretrained(folder)


def run_worker_script(script: str, env: dict[str, str], timeout_s: float = 300) -> dict[str, object]:
    """Run `script` in a fresh interpreter with `env`, as a worker; return its last stdout line, parsed."""
    env = {**env, "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=str(env["WORK_DIR"]),
    )
    if result.returncode != 0:
        raise AssertionError(f"worker script failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def save_tiny_falcon(folder: Path) -> Path:
    from transformers import FalconConfig, FalconForCausalLM

    config = FalconConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    FalconForCausalLM(config).save_pretrained(folder)
    save_tokenizer(folder)
    return folder


def save_tiny_llama(folder: Path) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    save_tokenizer(folder)
    return folder
