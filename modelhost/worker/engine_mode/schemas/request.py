"""The schema-neutral generation request every API parses into, its errors and typed field readers."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from modelhost.worker.engine.types import SamplingParams

if TYPE_CHECKING:
    from modelhost.worker.engine_mode.schemas.tools import ToolSpec

log = logging.getLogger(__name__)

Api = Literal["lmi", "tgi", "chat", "completions"]
# Ranges of the sampling parameters every schema checks (the engine cannot sample outside them).
MAX_TEMPERATURE = 100.0
MAX_REPETITION_PENALTY = 100.0
MAX_PENALTY = 2.0  # frequency_penalty and presence_penalty lie in [-2, 2] (OpenAI's, TGI's and vLLM's range)
MIN_SEED = -(2**63)  # torch.Generator.manual_seed's range
MAX_SEED = 2**64 - 1
MAX_TOKEN_ID = 2**31 - 1  # no vocabulary is larger; the engine checks the model's own size
_MISSING = object()
_logged_unknown: set[tuple[str, str]] = set()


class RequestError(ValueError):
    """A request the API refuses; each schema turns it into its own error body and status."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param  # the offending field, for OpenAI's error object
        self.code = code  # OpenAI's error code, e.g. "model_not_found"


@dataclass(frozen=True, slots=True)
class TextRequest:
    """One generation request as the HTTP layer understood it, before tokenization."""

    api: Api  # which schema formats the answer
    params: SamplingParams  # max_new_tokens is a placeholder when fill_to_limit is True
    prompt: str | None = None  # text prompt (LMI, TGI, completions)
    prompt_token_ids: tuple[int, ...] | None = None  # completions' prompt given as token ids
    messages: list[dict[str, Any]] | None = None  # chat messages, rendered with the model's chat template
    stream: bool = False
    fill_to_limit: bool = False  # no max tokens given: generate up to the model's length limit
    details: bool = False  # LMI/TGI `parameters.details`
    return_full_text: bool = False  # prepend the prompt to generated_text (LMI/TGI), `echo` (completions)
    logprobs: bool = False  # OpenAI: return log probabilities
    include_usage: bool = False  # OpenAI stream_options.include_usage
    model: str = ""  # OpenAI `model`, echoed back
    truncate: int | None = None  # TGI `truncate`: keep only the last N prompt tokens
    tools: ToolSpec | None = None  # OpenAI tools offered (tool_choice auto, required or a named function)
    extra: dict[str, Any] = field(default_factory=dict)  # accepted fields with no effect


def note_unknown(api: str, names: list[str]) -> None:
    """Log each unknown field once per API: they are ignored, as LMI and TGI ignore them."""
    for name in names:
        if (api, name) not in _logged_unknown:
            _logged_unknown.add((api, name))
            log.warning("%s request field %r is not supported and is ignored", api, name)


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def read(
    data: Mapping[str, Any],
    name: str,
    kind: type | tuple[type, ...],
    default: Any = None,
    *,
    where: str = "",
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
) -> Any:
    """`data[name]` checked against `kind` (ints accepted for floats, bools never for numbers); None or
    absent gives `default`. Raises RequestError naming `where + name`."""
    value = data.get(name, _MISSING)
    if value is _MISSING or value is None:
        return default
    label = f"{where}{name}"
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok and float in kinds and isinstance(value, int) and not isinstance(value, bool):
        if abs(value) >= 2**1023:  # float() would overflow
            raise RequestError(f"{label} must be a finite number, got an integer of {len(str(value))} digits", label)
        value, ok = float(value), True
    if not ok:
        raise RequestError(f"{label} must be {_type_name(kind)}, got {type(value).__name__} {value!r:.60}", label)
    if isinstance(value, float) and not math.isfinite(value):
        raise RequestError(f"{label} must be a finite number, got {value!r}", label)
    if minimum is not None and (value < minimum or (exclusive_minimum and value == minimum)):
        relation = "greater than" if exclusive_minimum else "at least"
        raise RequestError(f"{label} must be {relation} {_number(minimum)}, got {_number(value)}", label)
    if maximum is not None and value > maximum:
        raise RequestError(f"{label} must be at most {_number(maximum)}, got {_number(value)}", label)
    return value


def _number(value: float) -> str:
    """A bound or a value as a person reads it: integers in full (up to 40 digits), floats in %g."""
    if isinstance(value, int):
        text = str(value)
        return text if len(text) <= 40 else f"an integer of {len(text)} digits"
    return f"{value:g}"


def checked_text(value: str, label: str) -> str:
    """`value` when it is valid Unicode text; RequestError naming `label` for a lone UTF-16 surrogate, which
    no tokenizer can encode."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RequestError(
            f"{label} holds a lone UTF-16 surrogate ({value[exc.start]!r}), which is not valid Unicode text", label
        ) from None
    return value


def read_stop(data: Mapping[str, Any], name: str, *, where: str = "", limit: int | None = None) -> tuple[str, ...]:
    """A stop sequence or a list of them."""
    value = data.get(name)
    label = f"{where}{name}"
    if value is None:
        return ()
    if isinstance(value, str):
        return (checked_text(value, label),) if value else ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise RequestError(f"{label} must be a string or a list of strings", label)
    for item in value:
        checked_text(item, label)
    if limit is not None and len(value) > limit:
        raise RequestError(f"{label} may hold at most {limit} sequences, got {len(value)}", label)
    return tuple(item for item in value if item)


def sampling_choice(
    do_sample: bool | None,
    temperature: float | None,
    top_p: float | None,
    top_k: int | None,
    typical_p: float | None = None,
) -> bool:
    """Sample when asked to (`do_sample`), else when a sampling setting is given (temperature > 0, top_p < 1,
    top_k > 0, typical_p < 1), as LMI ≥ 0.32 and TGI do; temperature 0 is greedy."""
    if do_sample is not None:
        return do_sample
    if temperature is not None and temperature == 0:
        return False
    return bool(
        (temperature is not None)
        or (top_p is not None and top_p < 1.0)
        or (top_k is not None and top_k > 0)
        or (typical_p is not None and typical_p < 1.0)
    )
