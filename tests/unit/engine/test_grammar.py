"""Structured outputs' pure parts: schema compilation and refusal, bitmask unpacking, masked sampling, top
log-probabilities."""

from __future__ import annotations

import pytest
import torch

from modelhost.worker.engine.grammar import json_constraint, regex_constraint, unpack_bitmask
from modelhost.worker.engine.sampling import RowSampling, sample_rows
from modelhost.worker.engine.types import InvalidParameter, SamplingParams

GREEDY = SamplingParams()


def test_json_schema_compiles_to_an_llguidance_grammar() -> None:
    constraint = json_constraint({"type": "object", "properties": {"a": {"type": "integer"}}}, "response_format")
    assert constraint.kind == "json_schema" and constraint.param == "response_format"
    assert '"json_schema"' in constraint.grammar
    assert json_constraint(None, "response_format").kind == "json_object"


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "strin"},
        {"$ref": "#/definitions/missing"},
        {"type": "string", "pattern": "(?<=x)y"},
    ],
)
def test_a_schema_llguidance_refuses_names_the_field(schema: dict[str, object]) -> None:
    with pytest.raises(InvalidParameter) as caught:
        json_constraint(schema, "response_format")
    assert caught.value.param == "response_format"
    assert str(caught.value).startswith("response_format:")


def test_regex_constraint() -> None:
    assert regex_constraint("[0-9]+", "parameters.grammar").kind == "regex"
    with pytest.raises(InvalidParameter):
        regex_constraint("(?<=a)b", "parameters.grammar")


def test_unpack_bitmask_orders_bits_by_token_and_pads_the_vocabulary() -> None:
    bitmask = torch.tensor([0b101, -(2**31)], dtype=torch.int32)  # tokens 0, 2 and 63
    mask = unpack_bitmask(bitmask, 70)
    assert mask.shape == (70,)
    assert mask.nonzero().flatten().tolist() == [0, 2, 63]
    assert unpack_bitmask(bitmask, 3).tolist() == [True, False, True]


def test_a_mask_applies_to_its_row_only_and_log_probs_stay_the_models() -> None:
    logits = torch.tensor([[3.0, 1.0, 0.0, -1.0], [3.0, 1.0, 0.0, -1.0]])
    allowed = torch.tensor([False, False, True, True])
    picked = sample_rows(logits, [RowSampling(GREEDY, None, allowed=allowed), RowSampling(GREEDY, None)])
    assert picked.tokens == [2, 0]
    model = torch.log_softmax(logits[0], dim=-1)
    assert picked.log_probs[0] == pytest.approx(model[2].item())  # not renormalised over the allowed tokens
    assert picked.log_probs[1] == pytest.approx(model[0].item())


def test_a_mask_that_allows_nothing_fails_the_row() -> None:
    with pytest.raises(ValueError, match="allows no token"):
        sample_rows(torch.zeros(1, 4), [RowSampling(GREEDY, None, allowed=torch.zeros(4, dtype=torch.bool))])


def test_sampled_rows_never_leave_the_mask() -> None:
    logits = torch.zeros(1, 6)
    allowed = torch.tensor([False, True, False, True, False, False])
    params = SamplingParams(do_sample=True, temperature=1.5)
    generator = torch.Generator().manual_seed(0)
    picks = {sample_rows(logits, [RowSampling(params, generator, allowed=allowed)]).tokens[0] for _ in range(100)}
    assert picks == {1, 3}


def test_top_logprobs_are_the_k_most_likely_best_first() -> None:
    logits = torch.tensor([[0.0, 2.0, 1.0, 3.0]])
    picked = sample_rows(logits, [RowSampling(GREEDY, None, top_logprobs=3)])
    model = torch.log_softmax(logits[0], dim=-1)
    assert [token for token, _ in picked.top[0]] == [3, 1, 2]
    assert [value for _, value in picked.top[0]] == pytest.approx([model[3].item(), model[1].item(), model[2].item()])
    assert sample_rows(logits, [RowSampling(GREEDY, None)]).top == [[]]


def test_suppressed_eos_does_not_change_the_reported_log_prob() -> None:
    logits = torch.tensor([[3.0, 1.0, 0.0]])
    picked = sample_rows(logits, [RowSampling(GREEDY, None, suppressed_token_ids=(0,))])
    assert picked.tokens == [1]
    assert picked.log_probs[0] == pytest.approx(torch.log_softmax(logits[0], dim=-1)[1].item())
