"""benchmarks/loadgen.py against a fake OpenAI SSE server: metrics, token checks and the CLI output."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from benchmarks import loadgen

FIRST_TOKEN_S = 0.2  # the fake server's delay before the first content chunk
TOKEN_GAP_S = 0.05  # and between later ones


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    choices = [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]
    body = {"id": "c1", "object": "chat.completion.chunk", "model": "fake", "choices": choices, "usage": usage}
    return f"data: {json.dumps(body)}\n\n".encode()


def fake_app(bodies: list[dict[str, Any]]) -> Starlette:
    """Streams `max_tokens` one-token chunks (one fewer for model "short"; no usage for model "nousage")."""

    async def completions(request: Request) -> StreamingResponse:
        body = await request.json()
        bodies.append(body)
        n = body["max_tokens"] - (1 if body["model"] == "short" else 0)

        async def events() -> AsyncIterator[bytes]:
            yield _chunk({"role": "assistant", "content": ""})  # at once: must not count as the first token
            await asyncio.sleep(FIRST_TOKEN_S)
            for i in range(n):
                if i:
                    await asyncio.sleep(TOKEN_GAP_S)
                yield _chunk({"content": f"t{i} "})
            yield _chunk({}, finish="length")
            if body["model"] != "nousage":
                yield _chunk({}, usage={"prompt_tokens": 9, "completion_tokens": n, "total_tokens": 9 + n})
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    bodies: list[dict[str, Any]] = []
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(fake_app(bodies), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "fake server did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", bodies
    server.should_exit = True
    thread.join(timeout=10)


def run(url: str, model: str, reps: int = 2) -> dict[str, Any]:
    client = loadgen.OpenAIChatClient(url=url, model=model, concurrency=2)
    workload = loadgen.Workload(prompts=("q one", "q two"), max_tokens=5, concurrency=2)
    return asyncio.run(loadgen.run_benchmark(client, workload, reps=reps, warmup=1))


def test_metrics_from_a_fake_stream(fake_server: tuple[str, list[dict[str, Any]]]) -> None:
    url, bodies = fake_server
    result = run(url, "fake")
    expected_latency = FIRST_TOKEN_S + 4 * TOKEN_GAP_S
    for r in result["runs"]:
        assert (r["requests"], r["ok"], r["errors"], r["output_tokens"], r["unverified"]) == (2, 2, 0, 10, 0)
        assert r["output_tok_s"] == pytest.approx(10 / r["wall_s"])
        assert FIRST_TOKEN_S <= r["ttft_p50_s"] <= r["ttft_p99_s"] < FIRST_TOKEN_S + 0.25
        assert expected_latency <= r["latency_p50_s"] <= r["latency_p99_s"] < expected_latency + 0.3
        assert r["wall_s"] < 2 * expected_latency  # the two clients ran at once
        assert [d[3] for d in r["requests_detail"]] == [5, 5]
    median = result["median"]
    assert median["runs"] == 2 and median["output_tokens"] == 20 and median["errors"] == 0
    assert median["output_tok_s"] == pytest.approx(sum(r["output_tok_s"] for r in result["runs"]) / 2)
    timed = bodies[-1]
    assert timed["stream"] is True and timed["ignore_eos"] is True
    assert timed["max_tokens"] == timed["min_tokens"] == 5
    assert timed["messages"] == [{"role": "user", "content": timed["messages"][0]["content"]}]


def test_short_answers_are_errors(fake_server: tuple[str, list[dict[str, Any]]]) -> None:
    url, _ = fake_server
    run_ = run(url, "short", reps=1)["runs"][0]
    assert run_["errors"] == 2 and run_["ok"] == 0 and run_["output_tokens"] == 8
    assert run_["error_samples"] == ["got 4 output tokens (usage), expected 5"]
    assert run_["ttft_p50_s"] is None  # no successful request to time


def test_counts_chunks_without_usage(fake_server: tuple[str, list[dict[str, Any]]]) -> None:
    url, _ = fake_server
    run_ = run(url, "nousage", reps=1)["runs"][0]
    assert (run_["errors"], run_["output_tokens"]) == (0, 10)


def test_cli_prints_a_json_line_per_run_and_the_median(
    fake_server: tuple[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = fake_server
    code = loadgen.main(["--url", url, "--concurrency", "2", "--max-tokens", "5", "--reps", "2"])
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [line["rep"] for line in lines] == [0, 1, "median"]
    assert all(line["output_tokens"] == 10 for line in lines[:2]) and lines[2]["output_tokens"] == 20
    assert "out tok/s" in err and "median" in err


def test_cli_reports_a_failing_warm_up(
    fake_server: tuple[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = fake_server
    assert loadgen.main(["--url", url + "/nothing-here", "--reps", "1"]) == 2
    assert "warm-up request failed: HTTP 404" in capsys.readouterr().err


def test_percentile_interpolates_like_numpy() -> None:
    assert loadgen.percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert loadgen.percentile([1.0, 2.0, 3.0, 4.0], 99) == pytest.approx(3.97)
    assert loadgen.percentile([7.0], 99) == 7.0
    assert loadgen.percentile([], 50) is None


def test_json_lines_split_anywhere_are_counted() -> None:
    counter = loadgen.JsonLinesCounter()
    stream = (
        b'{"token": {"id": 1, "text": "a"}}\n{"token": {"id": 2, "text": "b"}}\n'
        + b'{"token": {"id": 3, "text": "c"}, "generated_text": "abc", "details": {"generated_tokens": 3}}'
    )
    fed = sum(counter.feed(stream[i : i + 7]) for i in range(0, len(stream), 7)) + counter.finish()
    assert (fed, counter.tokens, counter.final_count, counter.error) == (3, 3, 3, None)
    sse = loadgen.JsonLinesCounter()
    assert sse.feed(b'data:{"token": {"id": 1, "text": "a"}}\n\n') == 1
    sse.feed(b"upstream timed out\n")
    assert sse.error is not None and "not JSON" in sse.error
