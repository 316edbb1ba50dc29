"""GGUF file -> Hugging Face folder (dequantised safetensors + tokenizer), done once at registration.

transformers reads GGUF (`from_pretrained(dir, gguf_file=name)`) by dequantising every tensor, which takes
seconds to minutes and the model's full float32 size in memory. So the conversion runs in a child process
of the current interpreter (the caller's memory stays flat and is returned when the child exits), writes
into a folder the caller gives (the registry stages it and renames it when complete) and reports its
phases as JSON lines on stdout, which `materialize_gguf` relays to a progress callback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

ProgressCallback = Callable[[str], None]

GGUF_MAGIC = b"GGUF"
# Keys that transformers 5 writes into tokenizer_config.json from the loading call, not from the tokenizer.
_LOADING_KEYS = ("is_local", "local_files_only", "gguf_file")
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def is_gguf_file(path: Path) -> bool:
    """True when `path` is a file that starts with the GGUF magic bytes."""
    try:
        with path.open("rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def materialize_gguf(gguf_path: Path, out_dir: Path, *, progress: ProgressCallback | None = None) -> None:
    """Write the Hugging Face folder of `gguf_path` into `out_dir` (created; must not exist yet).

    Runs the conversion in a child process and calls `progress` with one line per phase. Raises
    RuntimeError with the child's last error line when the conversion fails.
    """
    command = [
        sys.executable,
        "-c",
        f"import sys; sys.path.insert(0, {_PACKAGE_ROOT!r}); "
        "from modelhost.registry.materialize import main; main(sys.argv[1:])",
        str(gguf_path),
        str(out_dir),
    ]
    # stderr goes to a file, not a pipe: a chatty library must not block the child while we read stdout.
    with tempfile.TemporaryFile("w+") as errors:
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=errors, text=True, stdin=subprocess.DEVNULL
        ) as child:
            assert child.stdout is not None
            for line in child.stdout:
                phase = _phase(line)
                if phase and progress is not None:
                    progress(phase)
            code = child.wait()
        errors.seek(0)
        error_tail = deque(errors, maxlen=20)
    if code != 0:
        last = next((line.strip() for line in reversed(error_tail) if line.strip()), f"exit status {code}")
        raise RuntimeError(f"could not convert {gguf_path.name} to a Hugging Face folder: {last}")


def _phase(line: str) -> str | None:
    try:
        message = json.loads(line)
    except ValueError:
        return None  # something printed by a library; not ours
    return message.get("phase") if isinstance(message, dict) else None


def convert(gguf_path: Path, out_dir: Path, report: ProgressCallback) -> None:
    """In the child: load tokenizer and model from the GGUF with transformers and save them as safetensors."""
    started = time.monotonic()
    report("loading transformers")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    folder, name = str(gguf_path.parent), gguf_path.name
    report("reading tokenizer from GGUF")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    report("dequantising weights (the slow part)")
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    # The tensors are plain dequantised float tensors now; drop the GGUF quantizer marker, which would
    # otherwise make save_pretrained refuse, and record the architecture a GGUF config lacks.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.architectures = [type(model).__name__]
    report("writing safetensors")
    out_dir.mkdir(parents=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    _clean_tokenizer_config(out_dir / "tokenizer_config.json")
    report(f"converted in {time.monotonic() - started:.1f} s")


def _clean_tokenizer_config(path: Path) -> None:
    if not path.is_file():
        return
    config = json.loads(path.read_text())
    for key in _LOADING_KEYS:
        config.pop(key, None)
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def main(argv: list[str]) -> None:
    """Child entry point: `GGUF_PATH OUT_DIR`; phases go to stdout as JSON lines."""
    gguf_path, out_dir = Path(argv[0]), Path(argv[1])

    def report(phase: str) -> None:
        print(json.dumps({"phase": phase}), flush=True)

    convert(gguf_path, out_dir, report)
