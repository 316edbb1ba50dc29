"""modelhost's shim of DJL Serving's `djl_python` package: the Input/Output types a model.py handler uses."""

from __future__ import annotations

from .inputs import Input
from .outputs import Output
from .pair_list import PairList

__all__ = ["Input", "Output", "PairList"]
