"""The djl_python shim, imported from its own folder so that model.py files and the worker share one copy."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

SHIM_DIR = Path(__file__).resolve().parents[1] / "shim"  # modelhost/worker/shim

# NOTE: user code does `from djl_python import Input`; the worker must use those very classes, so the shim is
# imported as the top-level package `djl_python`, never as modelhost.worker.shim.djl_python.
if str(SHIM_DIR) not in sys.path:
    sys.path.insert(0, str(SHIM_DIR))

if TYPE_CHECKING:  # the same files, seen by the type checker through the package path
    from modelhost.worker.shim.djl_python import Input, Output, PairList
else:
    from djl_python import Input, Output, PairList

__all__ = ["SHIM_DIR", "Input", "Output", "PairList"]
