"""Handler mode or engine mode, the request schema (LMI or TGI), and the EngineConfig (pure).

A model folder is served by its own `model.py` (handler mode) when it has a custom entry point, and by
the built-in engine (engine mode) when it names a model and has none: `option.model_id` (or its
environment forms `OPTION_MODEL_ID`, `HF_MODEL_ID`), or weights in the folder (`config.json`, `*.gguf`).
The image decides the request schema: a repository containing `tgi` speaks TGI's, anything else LMI's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from modelhost.storage.model_ids import model_id_path
from modelhost.worker.engine.backends import BACKEND_ALIASES, canonical_backend
from modelhost.worker.engine.types import EngineConfig
from modelhost.worker.properties import ServingProperties

log = logging.getLogger(__name__)

Mode = Literal["handler", "engine"]
Schema = Literal["lmi", "tgi"]

_TRUE = {"true", "1", "yes", "on"}

# option.rolling_batch names map to EngineConfig.backend through engine/backends.py (one table with the factory).
_DTYPES = {
    "auto": "auto",
    "fp32": "fp32",
    "float32": "fp32",
    "float": "fp32",
    "fp16": "fp16",
    "float16": "fp16",
    "half": "fp16",
    "bf16": "bf16",
    "bfloat16": "bf16",
}
# Options EngineConfig has fields for; every other option travels in EngineConfig.extra.
_CONSUMED_OPTIONS = {
    "model_id",
    "kv_cache_budget_mb",
    "s3url",
    "rolling_batch",
    "dtype",
    "max_rolling_batch_size",
    "max_model_len",
    "max_input_len",
    "max_input_length",
    "tensor_parallel_degree",
    "trust_remote_code",
    "entryPoint",
    "entrypoint",
}


@dataclass(frozen=True, slots=True)
class ModeDecision:
    mode: Mode
    reason: str  # for the log: why this mode


def image_repository(image: str) -> str:
    """`<registry>/<repository>:<tag>` → the repository, lower-cased (the registry and tag dropped)."""
    name = image.rsplit("/", 1)[-1] if "/" in image else image
    return name.split("@", 1)[0].rsplit(":", 1)[0].lower()


def image_schema(image: str, options: Mapping[str, str] | None = None) -> Schema:
    """TGI for an image whose repository contains `tgi` (or `option.tgi_compat=true`), else LMI."""
    if "tgi" in image_repository(image):
        return "tgi"
    if options and options.get("tgi_compat", "").strip().lower() in _TRUE:
        return "tgi"
    return "lmi"


def has_custom_entry_point(properties: ServingProperties, env: Mapping[str, str], model_files: Iterable[str]) -> str:
    """Where the custom entry point comes from ("" when there is none)."""
    if properties.entry_point:
        return "option.entryPoint"
    if env.get("DJL_ENTRY_POINT"):
        return "DJL_ENTRY_POINT"
    if "model.py" in set(model_files):
        return "model.py"
    return ""


def choose_mode(properties: ServingProperties, env: Mapping[str, str], model_files: Iterable[str]) -> ModeDecision:
    """Handler mode when the folder has a custom entry point; engine mode when it names a model and has none;
    otherwise handler mode, whose load fails with the entry point error that explains both.

    `model_files` are the names at the top of the model folder."""
    files = set(model_files)
    entry = has_custom_entry_point(properties, env, files)
    if entry:
        return ModeDecision("handler", f"custom entry point ({entry})")
    if properties.model_id:
        return ModeDecision("engine", f"option.model_id={properties.model_id} and no model.py")
    if "config.json" in files:
        return ModeDecision("engine", "weights in the model data (config.json) and no model.py")
    if any(name.endswith(".gguf") for name in files):
        return ModeDecision("engine", "a GGUF file in the model data and no model.py")
    return ModeDecision("handler", "no model.py and no model named")


def _int(name: str, raw: str | None, default: int | None, minimum: int = 1) -> int | None:
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def _first(pairs: Iterable[tuple[str, str | None]]) -> tuple[str, str | None]:
    """The first (name, value) whose value is set; the last name with None when none is."""
    name = ""
    for name, value in pairs:
        if value is not None and value.strip() != "":
            return name, value
    return name, None


def _model_location(model_id: str | None, model_dir: Path, model_files: Iterable[str]) -> tuple[str, str | None]:
    """(model_id_or_path, gguf_file) from option.model_id, else the weights in the model data."""
    files = sorted(model_files)
    if model_id:
        model_id = model_id.strip()
        if model_id.startswith("s3://"):
            raise ValueError(
                f"option.model_id={model_id}: an s3:// model id is not supported by the built-in engine; "
                "put the weights in the model data (ModelDataUrl) or register them (modelhost models add)"
            )
        # the path the controller checked against the model-data limits: /opt/ml/model is the model data, a
        # relative path is inside the model folder whatever the working directory (storage/model_ids.py)
        local = model_id_path(model_id, model_dir)
        if local is not None:
            model_id = str(local)
        if model_id.endswith(".gguf"):
            return model_id, model_id
        return model_id, None
    if "config.json" in files:
        return str(model_dir), None
    ggufs = [name for name in files if name.endswith(".gguf")]
    if ggufs:
        path = str(model_dir / ggufs[0])
        return path, path
    raise ValueError("no model named: set option.model_id (or HF_MODEL_ID) or put the weights in the model data")


def _backend(raw: str | None) -> str:
    if raw is None or raw.strip() == "":
        return "auto"
    backend = canonical_backend(raw)
    if backend is None:
        raise ValueError(
            f"option.rolling_batch={raw!r} is not supported; use one of {', '.join(sorted(BACKEND_ALIASES))}"
        )
    return backend


def _dtype(name: str, raw: str | None) -> str:
    if raw is None or raw.strip() == "":
        return "auto"
    key = raw.strip().lower()
    if key not in _DTYPES:
        raise ValueError(f"{name}={raw!r} is not supported; use one of auto, fp32, fp16, bf16")
    return _DTYPES[key]


def build_engine_config(
    properties: ServingProperties,
    env: Mapping[str, str],
    model_dir: Path,
    model_files: Iterable[str],
    gpu_count: int = 0,
    *,
    cpu_threads: int | None = None,
    tensor_parallel_degree: int | None = None,
) -> EngineConfig:
    """serving.properties options (environment forms already merged) and TGI's environment → EngineConfig.

    `cpu_threads` and `tensor_parallel_degree` come from the worker's spec, decided by the controller's
    placement; without them (a worker started by hand) the degree is read from the options here.
    Options win over TGI variables. Raises ValueError naming the bad key."""
    options = properties.options
    files = list(model_files)
    model_id_or_path, gguf_file = _model_location(properties.model_id, model_dir, files)
    tp_name, tp_raw = _first(
        [
            ("option.tensor_parallel_degree", options.get("tensor_parallel_degree")),
            ("SM_NUM_GPUS", env.get("SM_NUM_GPUS")),
        ]
    )
    if tensor_parallel_degree is None:
        if tp_raw is not None and tp_raw.strip().lower() == "max":
            tensor_parallel_degree = max(gpu_count, 1)
        else:
            tensor_parallel_degree = _int(tp_name, tp_raw, 1) or 1
    len_name, len_raw = _first(
        [("option.max_model_len", options.get("max_model_len")), ("MAX_TOTAL_TOKENS", env.get("MAX_TOTAL_TOKENS"))]
    )
    max_model_len = _int(len_name, len_raw, 2048) or 2048
    in_name, in_raw = _first(
        [
            ("option.max_input_len", options.get("max_input_len")),
            ("option.max_input_length", options.get("max_input_length")),
            ("MAX_INPUT_TOKENS", env.get("MAX_INPUT_TOKENS")),
            ("MAX_INPUT_LENGTH", env.get("MAX_INPUT_LENGTH")),
        ]
    )
    max_input_tokens = _int(in_name, in_raw, None)
    if max_input_tokens is not None and max_input_tokens >= max_model_len:
        raise ValueError(
            f"{in_name}={max_input_tokens} must be less than {len_name or 'max_model_len'}={max_model_len}"
        )
    batch_name, batch_raw = _first(
        [
            ("option.max_rolling_batch_size", options.get("max_rolling_batch_size")),
            ("MAX_BATCH_SIZE", env.get("MAX_BATCH_SIZE")),
        ]
    )
    dtype_name, dtype_raw = _first([("option.dtype", options.get("dtype")), ("DTYPE", env.get("DTYPE"))])
    trust_remote_code = properties.trust_remote_code or (
        env.get("HF_MODEL_TRUST_REMOTE_CODE", "").strip().lower() in _TRUE
    )
    extra = {k: v for k, v in options.items() if k not in _CONSUMED_OPTIONS}
    if env.get("MAX_BATCH_PREFILL_TOKENS"):
        extra.setdefault("max_batch_prefill_tokens", env["MAX_BATCH_PREFILL_TOKENS"])
    if env.get("PREFIX_CACHING"):  # TGI 3: PREFIX_CACHING=0 turns prefix caching off
        extra.setdefault("enable_prefix_caching", env["PREFIX_CACHING"])
    if env.get("HF_MODEL_QUANTIZE"):
        extra.setdefault("quantize", env["HF_MODEL_QUANTIZE"])
    if cpu_threads:  # the instance's share of the host's CPUs (placement)
        extra.setdefault("threads", str(cpu_threads))
    return EngineConfig(
        model_id_or_path=model_id_or_path,
        backend=_backend(options.get("rolling_batch")),
        dtype=_dtype(dtype_name or "option.dtype", dtype_raw),
        max_batch_size=_int(batch_name, batch_raw, 16) or 16,
        max_model_len=max_model_len,
        max_input_tokens=max_input_tokens,
        tensor_parallel_degree=tensor_parallel_degree,
        trust_remote_code=trust_remote_code,
        gguf_file=gguf_file,
        kv_cache_budget_bytes=_kv_budget_bytes(options.get("kv_cache_budget_mb")),
        extra=extra,
    )


def _kv_budget_bytes(raw: str | None) -> int | None:
    """option.kv_cache_budget_mb: the KV cache's memory budget; unset, it is sized from the request limits."""
    value = _int("option.kv_cache_budget_mb", raw, 0)
    return value * 1024 * 1024 if value else None
