"""The model loads in a thread of its own that ends with the load (not an executor thread that stays, whose OpenMP
team would slow every engine step down: see backend.in_own_thread)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from modelhost.worker.engine.backend import in_own_thread
from modelhost.worker.engine.types import EngineConfig


def test_the_loader_runs_in_a_thread_that_is_gone_afterwards() -> None:
    seen: list[threading.Thread] = []

    def loader(config: EngineConfig) -> Any:
        seen.append(threading.current_thread())
        return f"loaded {config.model_id_or_path}"

    result: Any = asyncio.run(in_own_thread(loader, EngineConfig("m")))
    assert result == "loaded m"
    (thread,) = seen
    assert thread is not threading.main_thread() and thread.name == "modelhost-engine-load"
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_a_loader_error_reaches_the_caller() -> None:
    def loader(config: EngineConfig) -> Any:
        raise ValueError("no such model")

    with pytest.raises(ValueError, match="no such model"):
        asyncio.run(in_own_thread(loader, EngineConfig("m")))
