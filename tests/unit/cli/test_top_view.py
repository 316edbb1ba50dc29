"""`modelhost top`'s rows from two synthetic scrapes of the server's /metrics, and how they are rendered."""

from __future__ import annotations

import pytest

from modelhost.cli.scrape import parse_scrape
from modelhost.cli.top_view import TopSnapshot, VariantRow, format_bytes, format_seconds, render_table, snapshot

BOUNDS = ("0.01", "0.1", "1.0", "+Inf")


def metrics(
    calls: float, errors_4xx: float, errors_5xx: float, latency: tuple[float, ...], tokens: tuple[float, float]
) -> str:
    """An exposition as the server writes it: endpoint `chat` (two engine instances) and `echo` (handler mode)."""
    chat = 'endpoint="chat",variant="AllTraffic"'
    out = [
        "# TYPE modelhost_invocations counter",
        f"modelhost_invocations_total{{{chat}}} {calls}",
        "# TYPE modelhost_invocation_errors counter",
        f'modelhost_invocation_errors_total{{class="4xx",{chat}}} {errors_4xx}',
        f'modelhost_invocation_errors_total{{class="5xx",{chat}}} {errors_5xx}',
        "# TYPE modelhost_model_latency_seconds histogram",
        *(f'modelhost_model_latency_seconds_bucket{{{chat},le="{le}"}} {n}'
          for le, n in zip(BOUNDS, latency, strict=True)),
        f"modelhost_model_latency_seconds_count{{{chat}}} {latency[-1]}",
        f"modelhost_model_latency_seconds_sum{{{chat}}} 1.0",
        "# TYPE modelhost_variant_desired_instances gauge",
        f"modelhost_variant_desired_instances{{{chat}}} 2",
        'modelhost_variant_desired_instances{endpoint="echo",variant="AllTraffic"} 1',
        "# TYPE modelhost_variant_current_instances gauge",
        f"modelhost_variant_current_instances{{{chat}}} 1",
        'modelhost_variant_current_instances{endpoint="echo",variant="AllTraffic"} 1',
        "# TYPE modelhost_concurrent_requests gauge",
        f"modelhost_concurrent_requests{{{chat}}} 3",
        "# TYPE modelhost_instance_cpu_utilization_percent gauge",
        f'modelhost_instance_cpu_utilization_percent{{{chat},instance="chat-0"}} 150',
        f'modelhost_instance_cpu_utilization_percent{{{chat},instance="chat-1"}} 50',
        "# TYPE modelhost_instance_memory_bytes gauge",
        f'modelhost_instance_memory_bytes{{{chat},instance="chat-0"}} {1024**3}',
        f'modelhost_instance_memory_bytes{{{chat},instance="chat-1"}} {1024**3}',
        'modelhost_instance_memory_bytes{endpoint="echo",variant="AllTraffic",instance="echo-0"} 52428800',
        "# TYPE modelhost:generation_tokens counter",
        f'modelhost:generation_tokens_total{{{chat},instance="chat-0",model_name="m",engine="0"}} {tokens[0]}',
        f'modelhost:generation_tokens_total{{{chat},instance="chat-1",model_name="m",engine="0"}} {tokens[1]}',
    ]
    return "\n".join(out) + "\n"


def test_rates_quantiles_and_sums_over_the_interval() -> None:
    before = parse_scrape(metrics(100, 5, 1, (10, 50, 90, 100), (1000, 500)), at_s=10.0)
    after = parse_scrape(metrics(140, 9, 1, (10, 70, 130, 140), (1400, 700)), at_s=12.0)
    top = snapshot(before, after)
    assert top.interval_s == 2.0
    assert [(r.endpoint, r.variant) for r in top.rows] == [("chat", "AllTraffic"), ("echo", "AllTraffic")]
    chat, echo = top.rows
    assert chat.requests_per_s == 20.0 and chat.invocations_in_interval == 40 and chat.invocations_total == 140
    assert chat.errors_per_s == 2.0 and chat.errors_total == 10
    # 40 new observations: 0 <= 10ms, 20 in (10ms, 100ms], 20 in (100ms, 1s]
    assert chat.model_latency_p50_s == pytest.approx(0.1)
    assert chat.model_latency_p99_s == pytest.approx(0.1 + 0.9 * (39.6 - 20) / 20)
    assert chat.tokens_per_s == 300.0  # (400 + 200) tokens over 2 s, summed over both instances
    assert (chat.current_instances, chat.desired_instances, chat.concurrent_requests) == (1, 2, 3)
    assert chat.cpu_percent == 200 and chat.memory_bytes == 2 * 1024**3 and chat.gpu_percent is None
    assert echo.requests_per_s == 0.0 and echo.model_latency_p50_s is None and echo.tokens_per_s is None
    assert echo.memory_bytes == 52428800


def test_a_server_restart_between_scrapes_counts_only_what_came_after() -> None:
    before = parse_scrape(metrics(5000, 50, 10, (100, 4000, 4900, 5000), (9e6, 9e6)), at_s=0.0)
    after = parse_scrape(metrics(8, 2, 0, (0, 8, 8, 8), (80, 0)), at_s=4.0)
    chat = snapshot(before, after).rows[0]
    assert chat.requests_per_s == 2.0 and chat.errors_per_s == 0.5 and chat.tokens_per_s == 20.0
    assert chat.model_latency_p50_s == pytest.approx(0.01 + 0.09 * 4 / 8)


def test_an_endpoint_first_invoked_between_scrapes_counts_from_zero() -> None:
    empty = parse_scrape("", at_s=0.0)
    after = parse_scrape(metrics(3, 0, 0, (3, 3, 3, 3), (0, 0)), at_s=1.0)
    assert snapshot(empty, after).rows[0].requests_per_s == 3.0


def test_scrapes_out_of_order_are_refused() -> None:
    scrape = parse_scrape("", at_s=1.0)
    with pytest.raises(ValueError):
        snapshot(scrape, scrape)


def row(**changes: object) -> VariantRow:
    fields: dict[str, object] = dict(
        endpoint="chat", variant="AllTraffic", current_instances=1, desired_instances=2, requests_per_s=12.34,
        invocations_in_interval=12, invocations_total=400, errors_per_s=0.0, errors_total=0,
        model_latency_p50_s=0.0123, model_latency_p99_s=1.5, tokens_per_s=312.4, concurrent_requests=3,
        cpu_percent=150.4, memory_bytes=1.5 * 1024**3, gpu_percent=None,
    )  # fmt: skip
    fields.update(changes)
    return VariantRow(**fields)  # type: ignore[arg-type]


def test_table_aligns_names_left_and_numbers_right() -> None:
    lines = render_table(TopSnapshot(1.0, (row(), row(endpoint="a-much-longer-name", tokens_per_s=None))))
    assert lines[0].split() == ["ENDPOINT", "VARIANT", "INST", "REQ/S", "P50", "P99", "TOK/S", "ERR/S", "CONC",
                                "CPU%", "MEM"]  # fmt: skip
    assert lines[1].split() == ["chat", "AllTraffic", "1/2", "12.3", "12.3ms", "1.50s", "312", "0.0", "3", "150",
                                "1.5Gi"]  # fmt: skip
    assert lines[2].split()[6] == "-"
    end = lines[0].index("REQ/S") + len("REQ/S")
    assert lines[1][:end].endswith(" 12.3") and lines[2][:end].endswith(" 12.3")  # right-aligned under it
    assert lines[2].startswith("a-much-longer-name  AllTraffic")
    assert lines[1].startswith("chat                AllTraffic")  # names left-aligned in their column


def test_gpu_column_only_when_a_gpu_is_reported() -> None:
    assert "GPU%" not in render_table(TopSnapshot(1.0, (row(),)))[0]
    lines = render_table(TopSnapshot(1.0, (row(gpu_percent=87.0), row(endpoint="cpu-only"))))
    assert lines[0].split()[-1] == "GPU%" and lines[1].split()[-1] == "87" and lines[2].split()[-1] == "-"


def test_no_endpoints_says_so() -> None:
    assert render_table(TopSnapshot(1.0, ())) == ["no endpoints (deploy one with `modelhost deploy`)"]


@pytest.mark.parametrize(
    ("value", "text"), [(None, "-"), (0.00042, "420µs"), (0.0125, "12.5ms"), (1.25, "1.25s"), (float("inf"), ">max")]
)
def test_format_seconds(value: float | None, text: str) -> None:
    assert format_seconds(value) == text


def test_format_bytes() -> None:
    assert [format_bytes(v) for v in (512, 2048, 300 * 1024**2, 3 * 1024**3)] == ["512B", "2.0Ki", "300.0Mi", "3.0Gi"]


def test_json_has_every_field() -> None:
    document = TopSnapshot(2.0004, (row(),)).to_json()
    assert document["interval_s"] == 2.0
    assert document["variants"][0]["model_latency_p99_s"] == 1.5 and document["variants"][0]["gpu_percent"] is None
