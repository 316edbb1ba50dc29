"""HandlerService: imports the entry module, makes the init call, and calls `handle` per request."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from modelhost.worker.handler.djl import Input, Output
from modelhost.worker.handler.entry_point import find_handler, import_entry_point, resolve_entry_point
from modelhost.worker.properties import ServingProperties

log = logging.getLogger(__name__)


class LoadRefused(Exception):
    """The init call answered with a code >= 300; str() is the one-line reason."""


def _error_detail(output: Output) -> str:
    """`: <error>` from an Output's body (its JSON "error" member when there is one), on one line."""
    if output.content.is_empty():
        return ""
    text = bytes(output.content.value_at(0)).decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and "error" in parsed:
        text = str(parsed["error"])
    text = " ".join(text.split())[:300]
    return f": {text}" if text else ""


def engine_properties(properties: ServingProperties, model_dir: Path, device_id: str) -> dict[str, str]:
    """The properties DJL's Python engine adds to the init call and to every request."""
    return {"handler": properties.handler, "device_id": device_id, "model_dir": str(model_dir)}


def init_properties(properties: ServingProperties, model_dir: Path, device_id: str) -> dict[str, str]:
    """The init call's properties: every option (prefix stripped), the model properties, then the engine's."""
    merged = dict(properties.options)
    merged.update(properties.model_properties)
    merged.update(engine_properties(properties, model_dir, device_id))
    return merged


class HandlerService:
    """The user's handler. Every method here is blocking and must run on the HandlerThread."""

    def __init__(
        self,
        properties: ServingProperties,
        model_dir: Path,
        device_id: str,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.properties = properties
        self.model_dir = model_dir
        self.device_id = device_id
        self._env = env
        self._handle: Callable[[Any], Any] | None = None

    @property
    def engine_properties(self) -> dict[str, str]:
        return engine_properties(self.properties, self.model_dir, self.device_id)

    def load(self) -> None:
        """Import the entry point and make the init call; exceptions mean the model failed to load."""
        env = os.environ if self._env is None else self._env
        entry = resolve_entry_point(self.model_dir, self.properties.entry_point, env)
        log.info("importing entry point %s (%s)", entry.path or entry.module_name, entry.source)
        module = import_entry_point(entry)
        handle = find_handler(module, self.properties.handler)
        init = Input()
        init.properties.update(init_properties(self.properties, self.model_dir, self.device_id))
        init.function_name = self.properties.handler
        log.info("calling %s.%s for initialisation", entry.module_name, self.properties.handler)
        result = handle(init)
        if isinstance(result, Output) and int(result.code) >= 300:
            raise LoadRefused(f"the init call returned {result.code} {result.message}{_error_detail(result)}")
        self._handle = handle

    def invoke(self, inputs: Input) -> Output | None:
        """Call `handle(inputs)` with the engine properties added; the handler's exceptions propagate."""
        if self._handle is None:
            raise RuntimeError("the model is not loaded")
        for key, value in self.engine_properties.items():
            inputs.properties[key] = value
        inputs.function_name = self.properties.handler
        result = self._handle(inputs)
        if result is not None and not isinstance(result, Output):
            raise TypeError(f"handle returned {type(result).__name__}, expected djl_python.Output or None")
        return result
