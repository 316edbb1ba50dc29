"""Hostile requests through a real server, with real boto3 and httpx: each gets a 4xx that says what is wrong
(never a 5xx), none makes the server's memory grow past a stated bound, and the server serves afterwards."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.integration.server import ServerProcess, deploy, write_echo_model

ROOT = Path(__file__).resolve().parents[3]
FAKE_ENGINE = {"MODELHOST_ENGINE_FACTORY": "tests.fake_backend:create_backend", "PYTHONPATH": str(ROOT)}
TGI_IMAGE = (
    "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-tgi-inference:"
    "2.1.1-tgi2.0.0-gpu-py310-cu121-ubuntu22.04"
)
MiB = 1024 * 1024
HUGE_BODY_BYTES = 256 * MiB
RSS_GROWTH_BOUND_BYTES = 64 * MiB  # a 256 MiB body read whole took the server from ~100 MiB to 835 MiB
AMZ_JSON = "application/x-amz-json-1.1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("hostile-home"), env=FAKE_ENGINE).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def endpoints(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    sm, _ = server.clients()
    echo = write_echo_model(tmp_path_factory.mktemp("echo"))
    engine = tmp_path_factory.mktemp("engine")
    (engine / "serving.properties").write_text("option.model_id=fake/model\noption.max_rolling_batch_size=4\n")
    names = {"echo": "hostile-echo", "lmi": "hostile-lmi", "tgi": "hostile-tgi"}
    deploy(sm, names["echo"], str(echo))
    deploy(sm, names["lmi"], str(engine))
    deploy(sm, names["tgi"], str(engine), image=TGI_IMAGE)
    for name in names.values():
        sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 180})
    return names


def rss_bytes(server: ServerProcess) -> int:
    assert server.process is not None
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None
    return int(match.group(1)) * 1024


def control_plane(server: ServerProcess, operation: str, raw: bytes, path: str = "/") -> httpx.Response:
    headers = {"X-Amz-Target": f"SageMaker.{operation}", "Content-Type": AMZ_JSON}
    return httpx.post(f"{server.url}{path}", content=raw, headers=headers, timeout=30)


def assert_client_error(response: httpx.Response, status: int, code: str, words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["__type"] == code and words in body["message"], body


def serves(server: ServerProcess, endpoints: dict[str, str]) -> None:
    """The server still answers the control plane, the runtime and its health check."""
    sm, runtime = server.clients()
    assert sm.describe_endpoint(EndpointName=endpoints["echo"])["EndpointStatus"] == "InService"
    answer = json.loads(runtime.invoke_endpoint(EndpointName=endpoints["echo"], Body=b"still here")["Body"].read())
    assert answer["echo"] == "still here"
    assert httpx.get(f"{server.url}/_modelhost/health", timeout=10).status_code == 200


# the control plane's JSON ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("operation", "raw", "code", "words"),
    [
        ("ListModels", b'{"NameContains": ' + b"[" * 1000 + b"]" * 1000 + b"}", "ValidationException", "nests deeper"),
        ("ListModels", b'{"MaxResults": ' + b"7" * 400 + b"}", "ValidationException", "more than 30 digits"),
        ("ListTags", b'{"ResourceArn": "arn:aws:sagemaker:\\ud800"}', "ValidationException", "lone UTF-16 surrogate"),
        ("ListModels", b'{"MaxResults": NaN}', "ValidationException", "NaN"),
        (
            "CreateEndpointConfig",
            b'{"EndpointConfigName": "c", "ProductionVariants": [{"VariantName": "v", "ModelName": "m", '
            b'"InitialVariantWeight": 1e400}]}',
            "ValidationException",
            "'ProductionVariants[0].InitialVariantWeight' is not finite",
        ),
        ("ListModels", b"{not json", "SerializationException", "not valid JSON"),
    ],
)
def test_hostile_json_is_a_validation_error(
    server: ServerProcess, operation: str, raw: bytes, code: str, words: str
) -> None:
    assert_client_error(control_plane(server, operation, raw), 400, code, words)


@pytest.mark.parametrize(
    "token",
    [
        "eyJvIjogSW5maW5pdHksICJmIjogIngifQ==",  # {"o": Infinity, "f": "x"}
        "eyJvIjogMWU0MDAsICJmIjogIngifQ==",  # {"o": 1e400, "f": "x"}
        "eyJvIjogOTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OSwgImYiOiAieCJ9",  # a huge offset
        "!!!",
    ],
)
def test_a_next_token_not_issued_here_is_a_validation_error(server: ServerProcess, token: str) -> None:
    sm, _ = server.clients()
    with pytest.raises(ClientError) as caught:
        sm.list_models(NextToken=token)
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException" and "Invalid pagination token" in error["Message"]


def test_an_unknown_users_home_is_a_validation_error(server: ServerProcess) -> None:
    sm, _ = server.clients()
    with pytest.raises(ClientError) as caught:
        sm.create_model(
            ModelName="tilde-model",
            PrimaryContainer={"Image": "djl", "ModelDataUrl": "~nosuchuser-modelhost/model.tar.gz"},
        )
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException" and "names no user of this host" in error["Message"]


def test_explicit_nulls_are_absent_members(server: ServerProcess, tmp_path: Path) -> None:
    folder = write_echo_model(tmp_path / "null-model")
    raw = json.dumps(
        {
            "ModelName": "null-members",
            "PrimaryContainer": {"ModelDataUrl": str(folder), "Environment": None, "Image": None},
            "Tags": None,
            "VpcConfig": None,
            "ExecutionRoleArn": None,
        }
    ).encode()
    response = control_plane(server, "CreateModel", raw)
    assert response.status_code == 200, response.text
    sm, _ = server.clients()
    assert sm.describe_model(ModelName="null-members")["ModelName"] == "null-members"
    sm.delete_model(ModelName="null-members")


def test_the_control_plane_is_only_post_root(server: ServerProcess) -> None:
    for path in ("/v1/chat/completions/x", "/anything", "/endpoints/x/invocations", "//"):
        response = control_plane(server, "ListModels", b"{}", path=path)
        assert_client_error(response, 404, "UnknownOperationException", "served only at POST /")
    assert control_plane(server, "ListModels", b"{}").status_code == 200


def test_runtime_paths_are_matched_exactly(server: ServerProcess, endpoints: dict[str, str]) -> None:
    for path in (f"/v1/endpoints/{endpoints['echo']}/invocations", f"//endpoints/{endpoints['echo']}/invocations"):
        response = httpx.post(f"{server.url}{path}", content=b"hi")
        assert response.status_code == 400 and "does not serve" in response.json()["message"], path


# bodies past the limits ------------------------------------------------------------------------
def _huge_body() -> Iterator[bytes]:
    chunk = b"x" * MiB
    for _ in range(HUGE_BODY_BYTES // MiB):
        yield chunk


def _send_huge(server: ServerProcess, path: str, headers: dict[str, str]) -> int | None:
    """POST 256 MiB, streamed (chunked); the status, or None when the server closed the connection first."""
    try:
        return httpx.post(f"{server.url}{path}", content=_huge_body(), headers=headers, timeout=60).status_code
    except httpx.TransportError:
        return None


def test_a_256_mib_body_is_refused_without_the_server_growing(server: ServerProcess, endpoints: dict[str, str]) -> None:
    before = rss_bytes(server)
    targets = [
        ("/", {"X-Amz-Target": "SageMaker.ListModels", "Content-Type": AMZ_JSON}),
        (f"/endpoints/{endpoints['echo']}/invocations", {"Content-Type": "application/octet-stream"}),
        (f"/endpoints/{endpoints['echo']}/invocations-response-stream", {"Content-Type": "text/plain"}),
        ("/v1/chat/completions", {"Content-Type": "application/json"}),
    ]
    for path, headers in targets:
        assert _send_huge(server, path, headers) in (413, None), path
    grown = rss_bytes(server) - before
    print(f"RSS {before / MiB:.0f} MiB -> {(before + grown) / MiB:.0f} MiB after four 256 MiB bodies")
    assert grown < RSS_GROWTH_BOUND_BYTES, f"the server grew by {grown / MiB:.0f} MiB"
    serves(server, endpoints)


def test_an_oversized_invocation_is_payload_too_large(server: ServerProcess, endpoints: dict[str, str]) -> None:
    response = httpx.post(
        f"{server.url}/endpoints/{endpoints['echo']}/invocations",
        content=b"x" * (7 * MiB),
        headers={"Content-Type": "application/octet-stream"},
        timeout=60,
    )
    assert response.status_code == 413
    assert response.headers["x-amzn-errortype"] == "ValidationError"
    assert "over the 6291456-byte limit of InvokeEndpoint" in response.json()["message"]


# headers, logs, health ---------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["invocations", "invocations-response-stream"])
@pytest.mark.parametrize(
    "header", ["X-Amzn-SageMaker-Custom-Attributes", "Content-Type", "X-Amzn-SageMaker-Accept", "Accept"]
)
def test_non_ascii_header_values_are_client_errors(
    server: ServerProcess, endpoints: dict[str, str], op: str, header: str
) -> None:
    headers = [(header.encode(), "caf\u00e9 \u2603".encode())]
    response = httpx.post(f"{server.url}/endpoints/{endpoints['echo']}/{op}", content=b"hi", headers=headers)
    assert response.status_code == 400, response.text
    assert "printable US-ASCII" in response.json()["message"]


def test_the_openai_accept_header_must_be_ascii(server: ServerProcess, endpoints: dict[str, str]) -> None:
    body = {"model": endpoints["lmi"], "messages": [{"role": "user", "content": "Hi"}]}
    headers = [(b"Accept", "\u00e9".encode()), (b"Content-Type", b"application/json")]
    response = httpx.post(f"{server.url}/v1/chat/completions", content=json.dumps(body), headers=headers)
    assert response.status_code == 400 and "printable US-ASCII" in response.json()["error"]["message"]


@pytest.mark.parametrize("name", ["%2e%2e", "..", "%2E%2e", ".", "a%2f..", "x" * 70])
def test_the_logs_route_serves_only_endpoint_folders(server: ServerProcess, name: str) -> None:
    (server.home / "logs" / "outside.log").write_text("secret\n")
    with httpx.Client(base_url=server.url) as client:
        request = client.build_request("GET", "/")
        request.url = request.url.copy_with(raw_path=f"/_modelhost/endpoints/{name}/logs".encode())
        response = client.send(request)
    # 405: a literal `..` was folded away on the way, and the path left the logs route altogether
    assert response.status_code in (404, 405) and "secret" not in response.text


def test_health_reveals_no_paths(server: ServerProcess) -> None:
    body = httpx.get(f"{server.url}/_modelhost/health").json()
    assert set(body) == {"status", "role", "problems", "operations", "unreadable_records"}
    assert str(server.home) not in json.dumps(body)


def test_log_lines_cannot_be_forged(server: ServerProcess) -> None:
    sm, _ = server.clients()
    with pytest.raises(ClientError):
        sm.describe_endpoint(EndpointName="nope\nFORGED-LOG-LINE")
    with pytest.raises(ClientError):
        sm.create_model(ModelName="forge", PrimaryContainer={"ModelDataUrl": "ftp://x\nFORGED-LOG-LINE"})
    lines = server.log_text().splitlines()
    assert not [line for line in lines if line.startswith("FORGED-LOG-LINE")]
    assert any("\\nFORGED-LOG-LINE" in line for line in lines)


# the engine's sampling parameters ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("parameters", "param"),
    [
        ({"temperature": math.nan}, "parameters.temperature"),
        ({"temperature": 1000}, "parameters.temperature"),
        ({"top_p": 0}, "parameters.top_p"),
        ({"repetition_penalty": math.nan}, "parameters.repetition_penalty"),
        ({"seed": 2**70}, "parameters.seed"),
        ({"max_new_tokens": 0}, "parameters.max_new_tokens"),
    ],
)
@pytest.mark.parametrize(("api", "status"), [("lmi", 424), ("tgi", 422)])
def test_engine_sampling_parameters_out_of_range_are_named(
    server: ServerProcess, endpoints: dict[str, str], api: str, status: int, parameters: dict[str, Any], param: str
) -> None:
    _, runtime = server.clients()
    body = json.dumps({"inputs": "Hi", "parameters": parameters})  # NaN goes out as NaN, as Python writes it
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(EndpointName=endpoints[api], Body=body, ContentType="application/json")
    response = caught.value.response
    assert response["Error"]["Code"] == "ModelError" and response["OriginalStatusCode"] == status
    assert param in response["Error"]["Message"]


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [("seed", 2**70, "worker"), ("temperature", 5, "worker"), ("temperature", math.nan, "router")],
)
def test_openai_sampling_parameters_out_of_range_are_400(
    server: ServerProcess, endpoints: dict[str, str], field: str, value: Any, where: str
) -> None:
    body = {"model": endpoints["lmi"], "messages": [{"role": "user", "content": "Hi"}], field: value}
    response = httpx.post(
        f"{server.url}/v1/chat/completions", content=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert field in error["message"] or error["param"] == field or "NaN" in error["message"], (where, error)


def test_openai_hostile_json_is_400(server: ServerProcess, endpoints: dict[str, str]) -> None:
    for raw in (b'{"model": "\\ud800"}', b"[" * 5000, b'{"model": "m", "n": ' + b"9" * 500 + b"}"):
        response = httpx.post(
            f"{server.url}/v1/chat/completions", content=raw, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, (raw[:40], response.text)
    serves(server, endpoints)


def test_engine_text_with_a_lone_surrogate_is_refused(server: ServerProcess, endpoints: dict[str, str]) -> None:
    _, runtime = server.clients()
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(EndpointName=endpoints["lmi"], Body=b'{"inputs": "\\ud800"}')
    assert caught.value.response["OriginalStatusCode"] == 424 and "lone UTF-16 surrogate" in str(caught.value)
    body = {"model": endpoints["lmi"], "prompt": [1, 2**40], "max_tokens": 2}
    response = httpx.post(
        f"{server.url}/v1/completions", content=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400 and "prompt token ids" in response.json()["error"]["message"]
    serves(server, endpoints)
