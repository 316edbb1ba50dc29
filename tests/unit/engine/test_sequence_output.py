"""A request's TokenEvents: EOS, min_new_tokens, ignore_eos, stop sequences, max_new_tokens, abort."""

from __future__ import annotations

from collections.abc import Sequence

from modelhost.worker.engine.sequence import SequenceOutput
from modelhost.worker.engine.types import GenerationRequest, SamplingParams

EOS = 0
WORDS = {0: "", 1: "a", 2: "b", 3: " STOP", 4: "c"}


def decode(ids: Sequence[int]) -> str:
    return "".join(WORDS[i] for i in ids)


def output(**params: object) -> SequenceOutput:
    request = GenerationRequest("r1", (1, 2), SamplingParams(**params))  # type: ignore[arg-type]
    return SequenceOutput(request, {EOS}, decode)


def test_eos_finishes_with_eos_token_reason() -> None:
    out = output(max_new_tokens=10)
    assert not out.add_token(1, -0.1).finished
    event = out.add_token(EOS, -0.2)
    assert (event.finished, event.finish_reason, event.token_id, event.generated_tokens) == (True, "eos_token", 0, 2)
    assert event.prompt_tokens == 2


def test_ignore_eos_keeps_going_until_length() -> None:
    out = output(max_new_tokens=2, ignore_eos=True)
    assert not out.add_token(EOS, None).finished
    event = out.add_token(1, None)
    assert event.finish_reason == "length"


def test_min_new_tokens_suppresses_eos_until_reached() -> None:
    out = output(max_new_tokens=10, min_new_tokens=2)
    assert out.suppress_eos()
    out.add_token(1, None)
    assert out.suppress_eos()
    out.add_token(2, None)
    assert not out.suppress_eos()
    assert out.add_token(EOS, None).finish_reason == "eos_token"


def test_stop_sequence_cuts_text_and_finishes() -> None:
    out = output(max_new_tokens=10, stop=(" STOP",))
    texts = [out.add_token(1, None).text]
    event = out.add_token(3, None)
    texts.append(event.text)
    assert event.finish_reason == "stop_sequence"
    assert "".join(texts) == "a"


def test_length_flushes_held_back_text() -> None:
    out = output(max_new_tokens=2, stop=("ab!",))
    assert out.add_token(1, None).text == ""  # "a" could start "ab!"
    event = out.add_token(2, None)
    assert (event.finish_reason, event.text) == ("length", "ab")


def test_end_builds_final_event_without_token() -> None:
    out = output()
    out.add_token(1, None)
    event = out.end("abort")
    assert (event.token_id, event.finished, event.finish_reason, event.generated_tokens) == (None, True, "abort", 1)
