"""A GGUF that transformers cannot read fails registration with the converter's error, registering nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelhost.registry import ModelRegistry

pytestmark = pytest.mark.integration


def test_a_corrupt_gguf_fails_cleanly(tmp_path: Path) -> None:
    corrupt = tmp_path / "broken.gguf"
    corrupt.write_bytes(b"GGUF" + b"\xff" * 64)
    registry = ModelRegistry(tmp_path / "registry")

    with pytest.raises(RuntimeError, match=r"could not convert broken\.gguf to a Hugging Face folder: \w+"):
        registry.add("org/broken", corrupt)

    assert registry.list() == []
    assert list((tmp_path / "registry" / "staging").iterdir()) == []
