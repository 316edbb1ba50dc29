"""The vLLM adapter's pure parts: sampling keyword arguments, structured outputs, refusals, log-probabilities
(vLLM itself is not needed)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from modelhost.worker.engine.grammar import json_constraint, regex_constraint
from modelhost.worker.engine.types import (
    Constraint,
    EngineConfig,
    InvalidParameter,
    ModelLimits,
    SamplingParams,
    TokenLogProb,
)
from modelhost.worker.engine.vllm_backend import (
    engine_arguments,
    refusal,
    refuse_unsupported,
    split_text,
    step_log_probs,
    structured_outputs,
    to_vllm_sampling,
)

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


def test_sampling_keywords_carry_every_parameter() -> None:
    params = SamplingParams(
        max_new_tokens=7,
        min_new_tokens=2,
        temperature=0.5,
        top_p=0.9,
        top_k=40,
        repetition_penalty=1.1,
        frequency_penalty=0.5,
        presence_penalty=-0.5,
        min_p=0.05,
        logit_bias=((7, -100.0),),
        do_sample=True,
        seed=3,
        stop=("\n",),
        logprobs=4,
    )
    kwargs = to_vllm_sampling(params, eos_ignored=True)
    assert kwargs["frequency_penalty"] == 0.5 and kwargs["presence_penalty"] == -0.5 and kwargs["min_p"] == 0.05
    assert (kwargs["max_tokens"], kwargs["min_tokens"], kwargs["temperature"], kwargs["top_k"]) == (7, 2, 0.5, 40)
    assert kwargs["logprobs"] == 4 and kwargs["ignore_eos"] and kwargs["stop"] == ["\n"]
    assert kwargs["logit_bias"] == {7: -100.0}
    greedy = to_vllm_sampling(SamplingParams(temperature=0.7), eos_ignored=False)
    assert greedy["temperature"] == 0.0 and greedy["top_k"] == -1 and greedy["logprobs"] == 0
    assert greedy["logit_bias"] is None


def test_structured_outputs_pass_what_the_grammar_was_compiled_from() -> None:
    assert structured_outputs(SamplingParams()) is None
    schema = structured_outputs(SamplingParams(constraint=json_constraint(SCHEMA, "response_format")))
    assert schema == {"json": SCHEMA}
    anything = structured_outputs(SamplingParams(constraint=json_constraint(None, "response_format")))
    assert anything == {"json_object": True}
    regex = structured_outputs(SamplingParams(constraint=regex_constraint("[a-z]+", "parameters.grammar")))
    assert regex == {"regex": "[a-z]+"}
    assert json.loads(json_constraint(SCHEMA, "p").source or "") == SCHEMA


def test_what_vllm_cannot_take_is_refused_naming_it() -> None:
    tools = SamplingParams(constraint=Constraint(grammar="{}", param="tool_choice", kind="tool_calls"))
    with pytest.raises(InvalidParameter) as caught:
        refuse_unsupported(tools)
    assert caught.value.param == "tool_choice"
    with pytest.raises(InvalidParameter) as caught:
        refuse_unsupported(SamplingParams(do_sample=True, typical_p=0.9))
    assert caught.value.param == "typical_p" and "typical" in str(caught.value)
    refuse_unsupported(SamplingParams(frequency_penalty=1.0, logprobs=5))  # passed on: no refusal


def _logprob(value: float, rank: int, text: str) -> SimpleNamespace:
    return SimpleNamespace(logprob=value, rank=rank, decoded_token=text)


def test_step_log_probs_rank_the_alternatives() -> None:
    entry = {5: _logprob(-0.2, 1, " Paris"), 6: _logprob(-2.0, 2, " Lyon"), 7: _logprob(-3.0, 3, " Nice")}
    log_prob, raw, top = step_log_probs(entry, 6, 2)  # a sampled token that is second
    assert (log_prob, raw) == (-2.0, b" Lyon")
    assert top == (TokenLogProb(5, b" Paris", -0.2), TokenLogProb(6, b" Lyon", -2.0))
    # vLLM adds the chosen token to the top-k when it is outside it: it is not an alternative then
    outside = {5: _logprob(-0.2, 1, " Paris"), 9: _logprob(-6.0, 40, " Rome")}
    log_prob, raw, top = step_log_probs(outside, 9, 1)
    assert (log_prob, raw, top) == (-6.0, b" Rome", (TokenLogProb(5, b" Paris", -0.2),))
    assert step_log_probs({5: _logprob(-0.2, 1, " Paris")}, 5, 0) == (-0.2, b" Paris", ())


def test_engine_arguments_take_lmis_vllm_options() -> None:
    limits = ModelLimits(max_model_len=1024, max_input_tokens=1000, max_batch_size=8)
    plain = engine_arguments(EngineConfig("/m", dtype="bf16"), limits)
    assert (plain["model"], plain["dtype"], plain["max_model_len"], plain["max_num_seqs"]) == (
        "/m",
        "bfloat16",
        1024,
        8,
    )
    assert "gpu_memory_utilization" not in plain and "enforce_eager" not in plain
    tuned = engine_arguments(
        EngineConfig("/m", extra={"gpu_memory_utilization": "0.3", "enforce_eager": "True"}), limits
    )
    assert tuned["gpu_memory_utilization"] == 0.3 and tuned["enforce_eager"] is True
    for extra in ({"gpu_memory_utilization": "1.5"}, {"gpu_memory_utilization": "most"}, {"enforce_eager": "yes"}):
        with pytest.raises(ValueError, match="option."):
            engine_arguments(EngineConfig("/m", extra=extra), limits)


class VLLMClientError(Exception):  # stands for vllm.exceptions' class, matched by name: vLLM is not installed here
    pass


class VLLMValidationError(VLLMClientError):
    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


def test_vllms_refusals_become_invalid_parameters() -> None:
    refused = refusal(VLLMValidationError("token_id(s) [999999] in logit_bias out of vocab", parameter="logit_bias"))
    assert isinstance(refused, InvalidParameter) and refused.param == "logit_bias" and "999999" in str(refused)
    older = refusal(ValueError("temperature must be non-negative"))
    assert older is not None and older.param == "request"
    assert refusal(RuntimeError("CUDA out of memory")) is None


WORDS = {1: "Hello", 2: " world", 3: "!", 4: "\u00e9"}


def _decode(ids: list[int]) -> str:
    return "".join(WORDS[i] for i in ids)


def test_a_delta_of_several_tokens_is_cut_at_each_token() -> None:
    assert split_text("Hello world!", [1, 2, 3], _decode, []) == ["Hello", " world", "!"]
    assert split_text(" world!", [2, 3], _decode, [1]) == [" world", "!"]
    assert split_text("Hello", [1], _decode, []) == ["Hello"]
    # text that is not the tokens' decoding (a stop string cut it): all of it on the last token, as vLLM gave it
    assert split_text("Hello wor", [1, 2], _decode, []) == ["", "Hello wor"]
