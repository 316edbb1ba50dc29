"""Load generator for LLM endpoints: N concurrent clients, a fixed prompt set, fixed output lengths.

Protocols (`--protocol`):

* `openai-chat`: `POST {url}/v1/chat/completions` with `stream: true` (SSE), so TTFT is the first content
  chunk. Exact lengths are forced with `ignore_eos` + `min_tokens` (vLLM / modelhost extras) and, for servers
  without them (llama.cpp), `--suppress-token-ids` turns into a `logit_bias` of -100. Tokens are counted
  from `usage.completion_tokens` (asked for with `stream_options.include_usage`), else one per content chunk.
* `sagemaker-stream`: boto3 `invoke_endpoint_with_response_stream` (one thread per client), LMI body
  `{"inputs", "parameters": {max_new_tokens, min_new_tokens, details}, "stream": true}`; JSON lines (or SSE
  `data:` lines) with one `token` object each; `details.generated_tokens` wins when present.
* `sagemaker`: boto3 `invoke_endpoint`, the same LMI body without `stream`; TTFT = latency. Tokens come from
  `details.generated_tokens` (LMI/TGI `details: true`); without it the count is recorded as unverified.
  LMI sends `inputs` to the model as they are, so `--chat-template-from TOKENIZER_DIR` renders each question
  through the chat template first (what openai-chat servers do); without it the bare question is sent.

A run sends `--requests` requests (default: one per client) through `--concurrency` clients in a closed loop
and reports output tokens per second (all output tokens / wall time), TTFT and latency p50/p99 over the
successful requests, and errors (failed requests, and requests whose token count is not `--max-tokens`).
Every run prints one JSON line on stdout; a final line holds the per-metric median over the runs, and a table
goes to stderr.

    python -m benchmarks.loadgen --protocol openai-chat --url http://127.0.0.1:8080 --model my-endpoint
    python -m benchmarks.loadgen --protocol sagemaker --url http://127.0.0.1:8080 --model my-endpoint --reps 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

PROMPTS_PATH = Path(__file__).resolve().parent / "prompts.json"
PROTOCOLS = ("openai-chat", "sagemaker-stream", "sagemaker")
VERIFIED_COUNTS = ("usage", "details", "tokens", "chunks")  # counted from what the server sent


class LoadgenError(RuntimeError):
    """The benchmark cannot go on (e.g. the warm-up request failed); the message says why."""


def load_prompts(path: Path = PROMPTS_PATH) -> tuple[str, ...]:
    return tuple(json.loads(path.read_text())["prompts"])


@dataclass(frozen=True, slots=True)
class Workload:
    prompts: tuple[str, ...]
    max_tokens: int = 128  # output tokens every request must produce
    concurrency: int = 16  # clients sending at once (1 = serial)
    requests: int | None = None  # requests per run; None: one per client

    @property
    def requests_per_run(self) -> int:
        return self.requests if self.requests is not None else self.concurrency


@dataclass(slots=True)
class RequestResult:
    start_s: float  # when the request was sent, seconds since the run started
    end_s: float  # when its last byte arrived
    ttft_s: float | None  # first output token after sending; None when none came
    output_tokens: int
    counted_by: str  # usage | details | tokens | chunks | unverified | none
    error: str | None = None
    prompt_tokens: int | None = None  # from the server's usage, when it reports it

    @property
    def latency_s(self) -> float:
        return self.end_s - self.start_s


class Client(Protocol):
    """One protocol's request: sends a prompt, times it against `origin` (a perf_counter value)."""

    async def send(self, prompt: str, max_tokens: int, origin: float) -> RequestResult: ...

    async def close(self) -> None: ...


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def check_count(result: RequestResult, expected: int) -> RequestResult:
    """Marks a request whose token count is not the forced length as an error (its tokens still count)."""
    if result.error is None and result.counted_by != "unverified" and result.output_tokens != expected:
        result.error = f"got {result.output_tokens} output tokens ({result.counted_by}), expected {expected}"
    return result


def summarize(results: Sequence[RequestResult], wall_s: float, rep: int | str) -> dict[str, Any]:
    """One run's metrics: throughput over all output tokens; TTFT and latency over successful requests."""
    ok = [r for r in results if r.error is None]
    errors = [r.error for r in results if r.error is not None]
    tokens = sum(r.output_tokens for r in results)
    prompts = [r.prompt_tokens for r in results if r.prompt_tokens is not None]
    ttfts = [r.ttft_s for r in ok if r.ttft_s is not None]
    latencies = [r.latency_s for r in ok]
    return {
        "rep": rep,
        "requests": len(results),
        "ok": len(ok),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:3],
        "output_tokens": tokens,
        "prompt_tokens": sum(prompts) if prompts and len(prompts) == len(results) else None,
        "unverified": sum(r.counted_by not in VERIFIED_COUNTS for r in results if r.error is None),
        "wall_s": wall_s,
        "output_tok_s": tokens / wall_s if wall_s > 0 else 0.0,
        "ttft_p50_s": percentile(ttfts, 50),
        "ttft_p99_s": percentile(ttfts, 99),
        "latency_p50_s": percentile(latencies, 50),
        "latency_p99_s": percentile(latencies, 99),
        "latency_mean_s": statistics.fmean(latencies) if latencies else None,
    }


MEDIAN_KEYS = (
    "output_tok_s",
    "wall_s",
    "ttft_p50_s",
    "ttft_p99_s",
    "latency_p50_s",
    "latency_p99_s",
    "latency_mean_s",
)


def median_of_runs(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-metric median over runs; errors and unverified counts are summed, and every run's tok/s listed."""
    out: dict[str, Any] = {"rep": "median", "runs": len(runs)}
    for key in MEDIAN_KEYS:
        values = [r[key] for r in runs if r[key] is not None]
        out[key] = statistics.median(values) if values else None
    for key in ("requests", "ok", "errors", "output_tokens", "unverified"):
        out[key] = sum(r[key] for r in runs)
    out["prompt_tokens"] = runs[0]["prompt_tokens"] if runs else None  # per run; the same prompts every run
    out["output_tok_s_runs"] = [round(r["output_tok_s"], 2) for r in runs]
    out["error_samples"] = sorted({e for r in runs for e in r["error_samples"]})[:3]
    return out


# ---- openai-chat ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _StreamState:
    ttft_s: float | None = None
    chunks: int = 0
    usage_tokens: int | None = None
    prompt_tokens: int | None = None
    error: str | None = None


def _openai_chunk(state: _StreamState, data: str, elapsed_s: float) -> None:
    chunk = json.loads(data)
    if chunk.get("error"):
        state.error = f"stream error: {json.dumps(chunk['error'])[:200]}"
        return
    if chunk.get("usage"):
        state.usage_tokens = int(chunk["usage"]["completion_tokens"])
        state.prompt_tokens = chunk["usage"].get("prompt_tokens")
    for choice in chunk.get("choices") or []:
        if (choice.get("delta") or {}).get("content"):
            state.chunks += 1
            if state.ttft_s is None:
                state.ttft_s = elapsed_s


@dataclass
class OpenAIChatClient:
    """Streams `/v1/chat/completions`; `extra` is merged into every body and `drop` removes fields."""

    url: str
    model: str
    concurrency: int
    timeout_s: float = 600.0
    suppress_token_ids: tuple[int, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    drop: frozenset[str] = frozenset()
    api_key: str | None = None
    _http: httpx.AsyncClient | None = None

    def body(self, prompt: str, max_tokens: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "stream": True,
            "stream_options": {"include_usage": True},
            "ignore_eos": True,
            "min_tokens": max_tokens,
        }
        if self.suppress_token_ids:
            body["logit_bias"] = {str(t): -100 for t in self.suppress_token_ids}
        body.update(self.extra)
        return {k: v for k, v in body.items() if k not in self.drop}

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            limits = httpx.Limits(max_connections=self.concurrency + 1, max_keepalive_connections=self.concurrency + 1)
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._http = httpx.AsyncClient(timeout=self.timeout_s, limits=limits, headers=headers, trust_env=False)
        return self._http

    async def send(self, prompt: str, max_tokens: int, origin: float) -> RequestResult:
        state = _StreamState()
        start = time.perf_counter()
        try:
            async with self._client().stream(
                "POST", self.url.rstrip("/") + "/v1/chat/completions", json=self.body(prompt, max_tokens)
            ) as response:
                if response.status_code >= 400:
                    text = (await response.aread()).decode(errors="replace")
                    state.error = f"HTTP {response.status_code}: {text[:200]}"
                else:
                    async for line in response.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            break
                        _openai_chunk(state, data, time.perf_counter() - start)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            state.error = f"{type(exc).__name__}: {exc}"
        end = time.perf_counter()
        tokens, counted_by = (
            (state.usage_tokens, "usage") if state.usage_tokens is not None else (state.chunks, "chunks")
        )
        return RequestResult(
            start - origin, end - origin, state.ttft_s, tokens, counted_by, state.error, state.prompt_tokens
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()


# ---- sagemaker / sagemaker-stream ---------------------------------------------------------------------------


def lmi_body(prompt: str, max_tokens: int, stream: bool, parameters: dict[str, Any]) -> dict[str, Any]:
    params = {"max_new_tokens": max_tokens, "min_new_tokens": max_tokens, "do_sample": False, "details": True}
    body: dict[str, Any] = {"inputs": prompt, "parameters": {**params, **parameters}}
    if stream:
        body["stream"] = True
    return body


def generated_tokens(answer: Any) -> int | None:
    """`details.generated_tokens` of an LMI/TGI answer (a dict, or a list of them), if it is there."""
    if isinstance(answer, list) and answer:
        answer = answer[0]
    if isinstance(answer, dict):
        details = answer.get("details")
        if isinstance(details, dict) and isinstance(details.get("generated_tokens"), int):
            return int(details["generated_tokens"])
    return None


@dataclass(slots=True)
class JsonLinesCounter:
    """Counts `token` objects in a JSON-lines (or SSE `data:`) byte stream cut at arbitrary places."""

    buffer: bytes = b""
    tokens: int = 0
    final_count: int | None = None  # details.generated_tokens from the last object, if sent
    error: str | None = None

    def feed(self, data: bytes) -> int:
        """Adds bytes; returns how many new tokens complete lines held."""
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        new = sum(self._line(line) for line in lines)
        self.tokens += new
        return new

    def finish(self) -> int:
        """Parses what is left after the last newline; returns the new tokens it held."""
        rest, self.buffer = self.buffer, b""
        new = self._line(rest)
        self.tokens += new
        return new

    def _line(self, raw: bytes) -> int:
        line = raw.strip()
        if line.startswith(b"data:"):
            line = line[5:].strip()
        if not line or line == b"[DONE]":
            return 0
        try:
            item = json.loads(line)
        except ValueError:
            self.error = f"not JSON in the stream: {line[:200].decode(errors='replace')}"
            return 0
        if isinstance(item, dict) and item.get("error"):
            self.error = f"stream error: {str(item['error'])[:200]}"
        count = generated_tokens(item)
        if count is not None:
            self.final_count = count
        return 1 if isinstance(item, dict) and isinstance(item.get("token"), dict) else 0


def chat_template_renderer(tokenizer_dir: str) -> Callable[[str], str]:
    """The model's chat template as a function of one user question (needs transformers and the tokenizer)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)

    def render(question: str) -> str:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )
        return str(text)

    return render


def _boto_error(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        error = response["Error"]
        return f"{error.get('Code')}: {str(error.get('Message'))[:200]}"
    return f"{type(exc).__name__}: {str(exc)[:200]}"


@dataclass
class SageMakerClient:
    """boto3 sagemaker-runtime calls on a thread pool (one thread per client); `stream` picks the operation."""

    url: str
    endpoint: str
    concurrency: int
    stream: bool
    timeout_s: float = 600.0
    region: str = "us-east-1"
    parameters: dict[str, Any] = field(default_factory=dict)
    render: Callable[[str], str] | None = None  # turns a question into `inputs` (e.g. the chat template)
    _runtime: Any = None
    _pool: ThreadPoolExecutor | None = None

    def __post_init__(self) -> None:
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(
            aws_access_key_id="loadgen", aws_secret_access_key="loadgen", region_name=self.region
        )
        config = Config(
            retries={"max_attempts": 1},
            read_timeout=self.timeout_s,
            connect_timeout=30,
            max_pool_connections=self.concurrency + 2,
        )
        self._runtime = session.client("sagemaker-runtime", endpoint_url=self.url, config=config)
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="loadgen")

    async def send(self, prompt: str, max_tokens: int, origin: float) -> RequestResult:
        call = self._invoke_stream if self.stream else self._invoke
        prompt = self.render(prompt) if self.render is not None else prompt
        return await asyncio.get_running_loop().run_in_executor(self._pool, call, prompt, max_tokens, origin)

    def _invoke(self, prompt: str, max_tokens: int, origin: float) -> RequestResult:
        body = json.dumps(lmi_body(prompt, max_tokens, False, self.parameters))
        start = time.perf_counter()
        try:
            response = self._runtime.invoke_endpoint(
                EndpointName=self.endpoint, ContentType="application/json", Accept="application/json", Body=body
            )
            payload = response["Body"].read()
        except Exception as exc:  # botocore raises many unrelated classes; all are one failed request here
            end = time.perf_counter()
            return RequestResult(start - origin, end - origin, None, 0, "none", _boto_error(exc))
        end = time.perf_counter()
        try:
            count = generated_tokens(json.loads(payload))
        except ValueError:
            return RequestResult(start - origin, end - origin, None, 0, "none", "the answer is not JSON")
        if count is None:  # no details: the length cannot be checked; assume it was honoured
            return RequestResult(start - origin, end - origin, end - start, max_tokens, "unverified")
        return RequestResult(start - origin, end - origin, end - start, count, "details")

    def _invoke_stream(self, prompt: str, max_tokens: int, origin: float) -> RequestResult:
        body = json.dumps(lmi_body(prompt, max_tokens, True, self.parameters))
        counter = JsonLinesCounter()
        ttft: float | None = None
        start = time.perf_counter()
        try:
            response = self._runtime.invoke_endpoint_with_response_stream(
                EndpointName=self.endpoint, ContentType="application/json", Body=body
            )
            for event in response["Body"]:
                if "PayloadPart" in event:
                    if counter.feed(event["PayloadPart"]["Bytes"]) and ttft is None:
                        ttft = time.perf_counter() - start
                elif "ModelStreamError" in event:
                    counter.error = f"ModelStreamError: {event['ModelStreamError'].get('Message')}"
            if counter.finish() and ttft is None:
                ttft = time.perf_counter() - start
        except Exception as exc:  # see _invoke
            counter.error = _boto_error(exc)
        end = time.perf_counter()
        if counter.final_count is not None:
            tokens, counted_by = counter.final_count, "details"
        else:
            tokens, counted_by = counter.tokens, "tokens"
        return RequestResult(start - origin, end - origin, ttft, tokens, counted_by, counter.error)

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


# ---- runs ---------------------------------------------------------------------------------------------------


async def run_once(client: Client, workload: Workload, rep: int | str) -> dict[str, Any]:
    """Sends one run's requests through `concurrency` clients in a closed loop; returns its summary."""
    next_index = iter(range(workload.requests_per_run))
    results: list[RequestResult] = []
    origin = time.perf_counter()

    async def user() -> None:
        for i in next_index:  # shared iterator: each client takes the next request when it is free
            prompt = workload.prompts[i % len(workload.prompts)]
            result = await client.send(prompt, workload.max_tokens, origin)
            results.append(check_count(result, workload.max_tokens))

    await asyncio.gather(*(user() for _ in range(min(workload.concurrency, workload.requests_per_run))))
    summary = summarize(results, time.perf_counter() - origin, rep)
    summary["requests_detail"] = [
        [round(r.start_s, 3), None if r.ttft_s is None else round(r.ttft_s, 3), round(r.end_s, 3), r.output_tokens]
        for r in sorted(results, key=lambda r: r.start_s)
    ]
    return summary


async def warm_up(client: Client, workload: Workload, count: int) -> None:
    """Short requests before the timed runs; a failure here stops the benchmark with the server's words."""
    for i in range(count):
        result = await client.send(
            workload.prompts[i % len(workload.prompts)], min(8, workload.max_tokens), time.perf_counter()
        )
        if result.error is not None:
            raise LoadgenError(f"the warm-up request failed: {result.error}")


async def run_benchmark(
    client: Client,
    workload: Workload,
    reps: int,
    warmup: int = 1,
    on_run: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Warm-up, then `reps` runs; returns {"runs": [...], "median": {...}}. Closes the client."""
    try:
        await warm_up(client, workload, warmup)
        runs = []
        for rep in range(reps):
            runs.append(await run_once(client, workload, rep))
            if on_run is not None:
                on_run(runs[-1])
        return {"runs": runs, "median": median_of_runs(runs)}
    finally:
        await client.close()


def make_client(args: argparse.Namespace) -> Client:
    if args.protocol == "openai-chat":
        return OpenAIChatClient(
            url=args.url,
            model=args.model,
            concurrency=args.concurrency,
            timeout_s=args.timeout,
            suppress_token_ids=tuple(int(x) for x in args.suppress_token_ids.split(",") if x),
            extra=json.loads(args.extra_json) if args.extra_json else {},
            drop=frozenset(x for x in args.drop.split(",") if x),
            api_key=args.api_key,
        )
    return SageMakerClient(
        url=args.url,
        endpoint=args.model,
        concurrency=args.concurrency,
        stream=args.protocol == "sagemaker-stream",
        timeout_s=args.timeout,
        region=args.region,
        parameters=json.loads(args.parameters_json) if args.parameters_json else {},
        render=chat_template_renderer(args.chat_template_from) if args.chat_template_from else None,
    )


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def table(rows: Sequence[dict[str, Any]]) -> str:
    """A readable table of run summaries (per run and the median row)."""
    head = (
        "run",
        "requests",
        "errors",
        "out tokens",
        "wall s",
        "out tok/s",
        "TTFT p50",
        "TTFT p99",
        "lat p50",
        "lat p99",
    )
    body = [
        (
            str(r["rep"]),
            str(r["requests"]),
            str(r["errors"]),
            str(r["output_tokens"]),
            _fmt(r["wall_s"]),
            _fmt(r["output_tok_s"]),
            _fmt(r["ttft_p50_s"], ".3f"),
            _fmt(r["ttft_p99_s"], ".3f"),
            _fmt(r["latency_p50_s"]),
            _fmt(r["latency_p99_s"]),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in (head, *body)) for i in range(len(head))]
    lines = [" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)), "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in body]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--protocol", choices=PROTOCOLS, default="openai-chat")
    ap.add_argument("--url", required=True, help="server base URL (modelhost server, or any OpenAI server)")
    ap.add_argument("--model", default="local", help="OpenAI `model` field; the endpoint name for sagemaker*")
    ap.add_argument("--concurrency", type=int, default=16, help="clients sending at once (1: serial)")
    ap.add_argument("--requests", type=int, default=None, help="requests per run (default: one per client)")
    ap.add_argument("--max-tokens", type=int, default=128, help="output tokens forced per request")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1, help="short untimed requests before the runs")
    ap.add_argument("--prompts", type=Path, default=PROMPTS_PATH, help="JSON file with a `prompts` list")
    ap.add_argument("--timeout", type=float, default=600.0, help="per-request timeout, seconds")
    ap.add_argument("--suppress-token-ids", default="", help="openai-chat: ids to logit_bias away (EOS)")
    ap.add_argument("--extra-json", default="", help="openai-chat: JSON object merged into every body")
    ap.add_argument("--drop", default="", help="openai-chat: comma list of body fields to leave out")
    ap.add_argument("--api-key", default=None, help="openai-chat: sent as a Bearer token")
    ap.add_argument("--parameters-json", default="", help="sagemaker*: JSON merged into `parameters`")
    ap.add_argument(
        "--chat-template-from",
        default=None,
        metavar="TOKENIZER_DIR",
        help="sagemaker*: send each question through this tokenizer's chat template as `inputs`",
    )
    ap.add_argument("--region", default="us-east-1", help="sagemaker*: region for request signing")
    ap.add_argument("--json-out", type=Path, default=None, help="also write all runs and the median here")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workload = Workload(load_prompts(args.prompts), args.max_tokens, args.concurrency, args.requests)

    def on_run(run: dict[str, Any]) -> None:
        print(json.dumps({k: v for k, v in run.items() if k != "requests_detail"}), flush=True)

    try:
        result = asyncio.run(run_benchmark(make_client(args), workload, args.reps, args.warmup, on_run))
    except LoadgenError as exc:
        print(f"loadgen: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result["median"]), flush=True)
    print(table([*result["runs"], result["median"]]), file=sys.stderr)
    if args.json_out is not None:
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        args.json_out.write_text(json.dumps({"config": config, **result}, indent=1))
    return 1 if result["median"]["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
