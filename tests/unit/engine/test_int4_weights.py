"""Exact 4-bit weights: recovered from a Q4_1-style dequantized matrix, refused for anything else."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from modelhost.worker.engine.runners.int4_weights import (
    GROUP,
    FourBitSwitch,
    SplitLinear,
    exact_int4,
    int4_kernels_available,
)

pytestmark = pytest.mark.skipif(not int4_kernels_available(), reason="this torch has no CPU int4 matmul kernels")


def q4_1_matrix(rows: int, cols: int, seed: int = 0, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """What a Q4_1 GGUF dequantizes to: per block of 32, q * d + m with q in 0..15 (min and max present)."""
    g = torch.Generator().manual_seed(seed)
    source = torch.randn(rows, cols // GROUP, GROUP, generator=g)
    low = source.amin(-1, keepdim=True)
    step = (source.amax(-1, keepdim=True) - low) / 15
    codes = torch.round((source - low) / step).clamp(0, 15)
    return (codes * step + low).reshape(rows, cols).to(dtype)


def test_a_q4_1_matrix_is_recovered_and_multiplies_like_the_original() -> None:
    weight = q4_1_matrix(64, 128)
    four_bit = exact_int4(weight)
    assert four_bit is not None
    assert (four_bit.out_features, four_bit.in_features) == (64, 128)
    x = torch.randn(5, 128).bfloat16()
    want = F.linear(x.float(), weight.float())
    torch.testing.assert_close(four_bit.matmul(x).float(), want, atol=0.05 * float(want.abs().max()), rtol=0.02)


def test_float32_dequantized_weights_are_recovered_too() -> None:
    assert exact_int4(q4_1_matrix(16, 64, dtype=torch.float32)) is not None


def test_a_matrix_that_is_not_4_bit_is_refused() -> None:
    assert exact_int4(torch.randn(64, 128).bfloat16()) is None


def test_one_weight_off_the_grid_refuses_the_whole_matrix() -> None:
    weight = q4_1_matrix(64, 128).float()
    block = weight[7, 32:64]
    step = float(block.max() - block.min()) / 15
    weight[7, 40] += 0.5 * step  # half-way between two levels
    assert exact_int4(weight.bfloat16()) is None


def test_shapes_the_kernel_cannot_take_are_refused() -> None:
    assert exact_int4(q4_1_matrix(64, 96)[:, :80]) is None  # 80 input columns: not whole blocks
    assert exact_int4(q4_1_matrix(12, 64)) is None  # 12 rows: not a multiple of 8
    assert exact_int4(q4_1_matrix(8, 64)[0]) is None  # not a matrix


def test_split_linear_takes_the_4_bit_path_only_while_its_switch_is_on() -> None:
    weight = q4_1_matrix(32, 64)
    four_bit = exact_int4(weight)
    assert four_bit is not None
    bias = torch.randn(32).bfloat16()
    calls: list[int] = []

    def large(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[0])
        return F.linear(x, weight, bias)

    switch = FourBitSwitch()
    linear = SplitLinear(four_bit, large, bias, switch)
    x = torch.randn(4, 64).bfloat16()
    linear(x)
    assert calls == [4]  # off: bf16
    switch.on = True
    got = linear(x)
    assert calls == [4]  # on: the 4-bit weight
    want = F.linear(x.float(), weight.float(), bias.float())
    torch.testing.assert_close(got.float(), want, atol=0.05 * float(want.abs().max()), rtol=0.02)
