"""serving.properties plus its environment forms (OPTION_*, SERVING_*, HF_MODEL_ID) as typed values (pure)."""

from __future__ import annotations

import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

OPTION_PREFIX = "option."
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _unescape(text: str) -> str:
    """Java properties escapes: \\t \\n \\r \\f \\uXXXX, and a backslash before any other character."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\" or i + 1 >= len(text):
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "u" and i + 6 <= len(text):
            try:
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            except ValueError:
                pass
        out.append({"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(nxt, nxt))
        i += 2
    return "".join(out)


def _logical_lines(text: str) -> list[str]:
    """Lines joined where one ends in an odd number of backslashes; comments and blanks dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.lstrip() if pending else raw.strip()
        if not pending and (not line or line[0] in "#!"):
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            pending += line[:-1]
            continue
        lines.append(pending + line)
        pending = ""
    if pending:
        lines.append(pending)
    return lines


def _split_pair(line: str) -> tuple[str, str]:
    """Split at the first unescaped `=`, `:` or whitespace; one separator and the whitespace around it go."""
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\":
            i += 2
            continue
        if ch in "=:" or ch.isspace():
            break
        i += 1
    key, rest = line[:i], line[i:].lstrip()
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip()
    return _unescape(key), _unescape(rest.rstrip())


def file_properties(model_dir: Path) -> dict[str, str]:
    """A model folder's serving.properties as written ({} when absent or not a regular file: the worker reports
    that); what the control plane checks before a deployment, on the server or on a Ray node."""
    path = model_dir / "serving.properties"
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # never opened unless regular (a FIFO would block)
            return {}
        return parse_properties(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return {}


def parse_properties(text: str) -> dict[str, str]:
    """Parse Java `.properties` text (`key=value`, `key: value`, `key value`, `#`/`!` comments)."""
    result: dict[str, str] = {}
    for line in _logical_lines(text):
        key, value = _split_pair(line)
        if key:
            result[key] = value
    return result


def _option_key_from_env(name: str) -> str:
    key = name[len("OPTION_") :].lower()
    return "entryPoint" if key == "entrypoint" else key


def merge_environment(file_properties: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
    """Fill keys the file does not set from OPTION_<X>, SERVING_<X>, HF_MODEL_ID, TENSOR_PARALLEL_DEGREE."""
    merged = dict(file_properties)
    for name, value in sorted(env.items()):
        if name.startswith("OPTION_") and len(name) > len("OPTION_"):
            merged.setdefault(OPTION_PREFIX + _option_key_from_env(name), value)
        elif name.startswith("SERVING_") and len(name) > len("SERVING_"):
            merged.setdefault(name[len("SERVING_") :].lower(), value)
    if env.get("HF_MODEL_ID"):
        merged.setdefault(OPTION_PREFIX + "model_id", env["HF_MODEL_ID"])
    if env.get("TENSOR_PARALLEL_DEGREE"):
        merged.setdefault(OPTION_PREFIX + "tensor_parallel_degree", env["TENSOR_PARALLEL_DEGREE"])
    if env.get("MODEL_LOADING_TIMEOUT"):
        merged.setdefault(OPTION_PREFIX + "model_loading_timeout", env["MODEL_LOADING_TIMEOUT"])
    if env.get("PREDICT_TIMEOUT"):
        merged.setdefault(OPTION_PREFIX + "predict_timeout", env["PREDICT_TIMEOUT"])
    return merged


def _positive_int(key: str, raw: str | None, default: int, *, minimum: int = 1) -> int:
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError(f"serving.properties: {key} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"serving.properties: {key} must be at least {minimum}, got {raw!r}")
    return value


def _positive_seconds(key: str, raw: str | None, default: float) -> float:
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError(f"serving.properties: {key} must be a number of seconds, got {raw!r}") from None
    if not value > 0:
        raise ValueError(f"serving.properties: {key} must be greater than 0, got {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class ServingProperties:
    """A model folder's serving configuration after the environment forms are applied."""

    options: dict[str, str] = field(default_factory=dict)  # `option.*` keys with the prefix stripped
    model_properties: dict[str, str] = field(default_factory=dict)  # every other key (engine, batch_size, ...)

    @classmethod
    def from_mapping(cls, merged: Mapping[str, str]) -> ServingProperties:
        options = {k[len(OPTION_PREFIX) :]: v for k, v in merged.items() if k.startswith(OPTION_PREFIX)}
        others = {k: v for k, v in merged.items() if not k.startswith(OPTION_PREFIX)}
        return cls(options=options, model_properties=others)

    def validate(self) -> ServingProperties:
        """Read every typed value once so that a bad one fails now, naming its key."""
        for name in (
            "tensor_parallel_degree",
            "trust_remote_code",
            "batch_size",
            "max_batch_delay_ms",
            "model_loading_timeout_s",
            "predict_timeout_s",
        ):
            getattr(self, name)
        return self

    @property
    def engine(self) -> str | None:
        return self.model_properties.get("engine") or None

    @property
    def entry_point(self) -> str | None:
        return self.options.get("entryPoint") or self.options.get("entrypoint") or None

    @property
    def model_id(self) -> str | None:
        return self.options.get("model_id") or self.options.get("s3url") or None

    @property
    def dtype(self) -> str | None:
        return self.options.get("dtype") or None

    @property
    def handler(self) -> str:
        return self.options.get("handler") or "handle"

    @property
    def tensor_parallel_degree(self) -> int | Literal["max"] | None:
        raw = self.options.get("tensor_parallel_degree")
        if raw is None or raw.strip() == "":
            return None
        if raw.strip().lower() == "max":
            return "max"
        return _positive_int("option.tensor_parallel_degree", raw, 1)

    @property
    def trust_remote_code(self) -> bool:
        raw = self.options.get("trust_remote_code")
        if raw is None or raw.strip() == "":
            return False
        if raw.strip().lower() in _TRUE:
            return True
        if raw.strip().lower() in _FALSE:
            return False
        raise ValueError(f"serving.properties: option.trust_remote_code must be true or false, got {raw!r}")

    @property
    def batch_size(self) -> int:
        return _positive_int("batch_size", self.model_properties.get("batch_size"), 1)

    @property
    def max_batch_delay_ms(self) -> int:
        return _positive_int("max_batch_delay", self.model_properties.get("max_batch_delay"), 100, minimum=0)

    @property
    def model_loading_timeout_s(self) -> float:
        return _positive_seconds("option.model_loading_timeout", self.options.get("model_loading_timeout"), 240.0)

    @property
    def predict_timeout_s(self) -> float:
        return _positive_seconds("option.predict_timeout", self.options.get("predict_timeout"), 120.0)

    @property
    def process_env(self) -> dict[str, str]:
        """`option.env=K=V,K2=V2`: variables to set in the worker's environment before loading."""
        raw = self.options.get("env", "")
        pairs = (item.split("=", 1) for item in raw.split(",") if "=" in item)
        return {k.strip(): v.strip() for k, v in pairs if k.strip()}


def build_serving_properties(file_text: str | None, env: Mapping[str, str]) -> ServingProperties:
    """serving.properties text (None when the file is absent) + environment → validated ServingProperties."""
    file_properties = parse_properties(file_text) if file_text is not None else {}
    return ServingProperties.from_mapping(merge_environment(file_properties, env)).validate()
