"""The GGUF's own 4-bit weights, recovered exactly from their dequantized copy, for steps of few tokens.

A Q4_1 GGUF stores each block of 32 input weights as `q * d + m` (q in 0..15, the block's minimum at q = 0 and
its maximum at q = 15). transformers dequantizes them to floats at load; on those, the block's min and max give
back `m` and `d`, and `(w - m) / d` gives back every q. `exact_int4` does that and checks that every weight of
the matrix is reproduced (to rounding), so the 4-bit matrix holds the same numbers as the dequantized one; any
other matrix (a bf16 checkpoint, Q8_0, a block that is not on a 16-level grid) is refused and stays in bf16.

torch's `_weight_int4pack_mm_for_cpu` multiplies by it reading a quarter of the bytes of bf16: a step of one or a
few tokens reads every weight once, so it is bound by memory and runs faster; a step of many tokens is bound by
arithmetic, where oneDNN's bf16 kernel is faster. `SplitLinear` keeps both; the runner's `FourBitSwitch` picks
per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

GROUP = 32  # Q4_1 / Q4_0 block size
_LEVELS = 15
# A weight is "on the grid" when it is within this share of its block's step of a 4-bit level. bf16 rounding of the
# loaded weights and of the block's scale/minimum moves them by at most ~0.03 step; a weight that was not 4-bit
# is up to 0.5 step off.
_GRID_TOLERANCE = 0.1

Linear = Callable[[torch.Tensor], torch.Tensor]


def int4_kernels_available() -> bool:
    return hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu") and hasattr(
        torch.ops.aten, "_convert_weight_to_int4pack_for_cpu"
    )


@dataclass(frozen=True, slots=True)
class Int4Weight:
    """A [N, K] weight as packed 4-bit codes and per-block (scale, zero) with w = (q - 8) * scale + zero."""

    packed: torch.Tensor
    scales_and_zeros: torch.Tensor  # [K / GROUP, N, 2], the activations' dtype
    out_features: int
    in_features: int

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = torch.ops.aten._weight_int4pack_mm_for_cpu(x, self.packed, GROUP, self.scales_and_zeros)
        return out


def exact_int4(weight: torch.Tensor) -> Int4Weight | None:
    """The weight's 4-bit form when it is exactly a block-wise 4-bit matrix (see the module docstring), else None."""
    if weight.dim() != 2 or weight.dtype not in (torch.bfloat16, torch.float16, torch.float32):
        return None
    out_features, in_features = weight.shape
    if in_features % GROUP or out_features % 8 or not int4_kernels_available():
        return None
    w = weight.detach().float().reshape(out_features, in_features // GROUP, GROUP)
    low = w.amin(dim=-1, keepdim=True)
    step = (w.amax(dim=-1, keepdim=True) - low) / _LEVELS
    safe_step = torch.where(step > 0, step, torch.ones_like(step))
    codes = torch.round((w - low) / safe_step).clamp_(0, _LEVELS)
    # the same numbers as the kernel will use: scale and zero in the activations' dtype
    scale = step.to(weight.dtype).float()
    zero = (low + 8 * step).to(weight.dtype).float()
    rebuilt = (codes - 8) * scale + zero
    if bool(((rebuilt - w).abs() > _GRID_TOLERANCE * safe_step + 1e-30).any()):
        return None
    scales_and_zeros = torch.cat((scale, zero), dim=-1).transpose(0, 1).contiguous().to(weight.dtype)
    try:
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes.reshape(out_features, in_features).int(), 1)
    except RuntimeError:
        return None
    result = Int4Weight(packed, scales_and_zeros, out_features, in_features)
    return result if _agrees(result, rebuilt.reshape(out_features, in_features), weight.dtype) else None


def _agrees(weight: Int4Weight, reference: torch.Tensor, dtype: torch.dtype) -> bool:
    """The kernel reproduces x @ reference.T on a probe (guards against a kernel or layout this torch lacks)."""
    probe = torch.randn(3, weight.in_features, generator=torch.Generator().manual_seed(0)).to(dtype)
    try:
        got = weight.matmul(probe).float()
    except RuntimeError:
        return False
    want = F.linear(probe.float(), reference)
    return bool(torch.allclose(got, want, rtol=0.02, atol=0.02 * float(want.abs().max()) + 1e-6))


@dataclass(slots=True)
class FourBitSwitch:
    """Whether the step running now reads the 4-bit weights; set by the runner before each step."""

    on: bool = False


@dataclass(frozen=True, slots=True)
class SplitLinear:
    """x @ W.T (+ bias): through the 4-bit weight while the switch is on, else through `large`."""

    small: Int4Weight
    large: Linear
    bias: torch.Tensor | None
    switch: FourBitSwitch

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.switch.on:
            return self.large(x)
        out = self.small.matmul(x)
        return out if self.bias is None else out + self.bias
