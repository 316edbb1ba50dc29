"""Fuzzing through one real server: generated requests for every control-plane operation modelhost serves
(built from botocore's input shapes), for sagemaker-runtime and for the OpenAI routes.

Each case mixes valid values, boundary lengths and ranges, wrong types, huge and unicode strings (lone
surrogates included), nested junk, missing members, malformed JSON and odd headers. The assertions: no
answer is a 5xx (a 503 ServiceUnavailable from the runtime or OpenAI routes is the API's own retryable answer;
a 500 InternalFailure is always a failure), and afterwards the server still serves and holds nothing but the
test's own endpoint once the fuzzer's creations are deleted.

The run is deterministic (`derandomize=True`, no example database) and bounded: MODELHOST_FUZZ_EXAMPLES
(default 3000) cases in all, split between the three groups. A longer run:
`MODELHOST_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest tests/integration/fuzz -x -q` (see docs/security.md).
"""

from __future__ import annotations

import base64
import functools
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.session
import httpx
import pytest
from botocore.model import ListShape, MapShape, Shape, StructureShape
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelhost.api.app import OPERATIONS
from tests.integration.server import ServerProcess, deploy, write_echo_model

TOTAL_EXAMPLES = int(os.environ.get("MODELHOST_FUZZ_EXAMPLES", "3000"))
CONTROL_PLANE_SHARE, RUNTIME_SHARE, OPENAI_SHARE = 0.6, 0.2, 0.2
ECHO = "fuzzecho"  # the one deployed endpoint; fuzzed Delete*/Update* never name it (see `touches_echo`)
ASYNC = "fuzzasync"  # the same model behind an AsyncInferenceConfig (InvokeEndpointAsync's deep path)
OWN = (ECHO, ASYNC)
NAME_POOL = ["fz-a", "fz-b", "fz-c"]  # valid names the fuzzer reuses, so Create -> Describe -> Delete chains occur
NAME_MEMBERS = frozenset({"ModelName", "EndpointName", "EndpointConfigName"})
AMZ_JSON = "application/x-amz-json-1.1"
SM_MODEL = botocore.session.get_session().get_service_model("sagemaker")


def fuzz_settings(share: float, groups: int = 1) -> settings:
    """Deterministic, bounded, no example database: `share` of MODELHOST_FUZZ_EXAMPLES split over `groups`."""
    return settings(
        max_examples=max(10, int(TOTAL_EXAMPLES * share / groups)),
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )


class Raw(str):
    """JSON text written into the body verbatim: numbers and constants json.dumps would not produce."""


RAW_TOKENS = [
    "1e400",
    "-1e400",
    "NaN",
    "Infinity",
    "-Infinity",
    "1" + "0" * 400,
    "-0",
    "0.0000000000000000000000000001",
    "9223372036854775808",
    "[" * 1200 + "]" * 1200,
    '{"a":' * 600 + "1" + "}" * 600,
]


def _token(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).decode()


ODD_STRINGS = [
    "",
    "\ud800",
    "a\udfffb",
    "\x00",
    "line\nbreak\r\n",
    "%2e%2e/%2e%2e/etc/passwd",
    "../../../../etc/passwd",
    "~nosuchuser/x",
    "~/x",
    "file:///etc",
    "file:///dev/zero",
    "http://127.0.0.1:1/x.tar.gz",
    "s3://",
    "arn:aws:sagemaker:us-east-1:123456789012:endpoint/\ud800",
    "arn:aws:sagemaker:us-east-1:123456789012:model/" + "x" * 300,
    "\u202e\u0000\uffff\U0001f600",
    "x" * 70_000,
    _token(b'{"offset": 1e400}'),
    _token(b'{"offset": Infinity}'),
    _token(b'{"offset": -1}'),
    _token(b'{"offset": 10000000000000000000000}'),
    _token(b"[]"),
    _token(b"\xff\xfe"),
    "not base64!",
]

scalar_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(ODD_STRINGS),
    st.sampled_from(RAW_TOKENS).map(Raw),
)
json_junk = st.recursive(
    scalar_junk,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12,
)


def _string(shape: Shape, name: str) -> st.SearchStrategy[Any]:
    if shape.enum:
        return st.sampled_from(list(shape.enum))
    if name in NAME_MEMBERS:
        return st.sampled_from(NAME_POOL)
    low = int(shape.metadata.get("min", 0))
    high = int(shape.metadata.get("max", 256))
    bounds = [low, high, high + 1] + ([low - 1] if low > 0 else [])
    return st.one_of(
        st.text(min_size=low, max_size=max(low, min(high, 40))),
        st.sampled_from(bounds).map(lambda n: "a" * n),
        st.sampled_from(ODD_STRINGS),
    )


def _number(shape: Shape) -> st.SearchStrategy[Any]:
    low = shape.metadata.get("min")
    high = shape.metadata.get("max")
    edges = [v for v in (low, high) if v is not None]
    edges += [low - 1] if low is not None else []
    edges += [high + 1] if high is not None else []
    if shape.type_name in ("float", "double"):
        return st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(edges or [0.0]))
    return st.one_of(
        st.integers(min_value=low, max_value=high),
        st.sampled_from(edges or [0]),
        st.sampled_from([2**31, 2**63, -(2**63) - 1]),
    )


def valid_ish(shape: Shape, name: str, depth: int) -> st.SearchStrategy[Any]:
    """Values shaped like `shape`: mostly valid, with boundary lengths and ranges mixed in."""
    if isinstance(shape, StructureShape):
        return structure(shape, depth)
    if isinstance(shape, ListShape):
        low = int(shape.metadata.get("min", 0))
        return st.lists(value_for(shape.member, name, depth + 1), min_size=min(low, 3), max_size=max(min(low, 3), 3))
    if isinstance(shape, MapShape):
        keys = st.one_of(_string(shape.key, ""), st.text(max_size=10))  # JSON keys are strings
        return st.dictionaries(keys, value_for(shape.value, "", depth + 1), max_size=3)
    kind = shape.type_name
    if kind == "string":
        return _string(shape, name)
    if kind in ("integer", "long", "float", "double"):
        return _number(shape)
    if kind == "boolean":
        return st.booleans()
    if kind == "timestamp":
        return st.one_of(
            st.integers(min_value=-(2**40), max_value=2**40),
            st.floats(allow_nan=False, allow_infinity=False),
            st.sampled_from(["2026-01-01T00:00:00Z", "yesterday", ""]),
        )
    return st.text(max_size=20)  # blob and anything newer


def value_for(shape: Shape, name: str, depth: int) -> st.SearchStrategy[Any]:
    """Mostly the shape's own kind of value; sometimes a wrong type or nested junk."""
    if depth > 5:
        return scalar_junk
    return st.one_of(valid_ish(shape, name, depth), valid_ish(shape, name, depth), json_junk)


def structure(shape: StructureShape, depth: int) -> st.SearchStrategy[dict[str, Any]]:
    required = set(shape.required_members)
    members = dict(shape.members)
    if depth > 2:  # keep deep structures small (and generation fast): required members only
        members = {k: v for k, v in members.items() if k in required}
    mandatory = {k: value_for(v, k, depth + 1) for k, v in members.items() if k in required}
    optional = {k: value_for(v, k, depth + 1) for k, v in members.items() if k not in required}
    complete = st.fixed_dictionaries(mandatory, optional=optional)
    # a missing required member, or an unknown one
    partial = st.fixed_dictionaries({}, optional={**mandatory, **optional})
    extra = st.dictionaries(st.text(max_size=12), json_junk, max_size=2)
    return st.one_of(complete, complete, partial, st.tuples(complete, extra).map(lambda t: {**t[1], **t[0]}))


CLEAN_TEXT = "abcdefghij0123456789"
POOL_ARNS = [
    f"arn:aws:sagemaker:us-east-1:{account}:{kind}/{name}"
    for account in ("123456789012", "000000000000")  # the default account id, and another
    for kind in ("model", "endpoint", "endpoint-config")
    for name in NAME_POOL
]


def clean_value(shape: Shape, name: str, depth: int) -> st.SearchStrategy[Any]:
    """Values that pass validation where a member has no pattern beyond letters and digits: these reach the
    handlers (and the store), where the junk above is mostly refused by validation."""
    if isinstance(shape, StructureShape):
        members = {k: v for k, v in shape.members.items() if depth <= 1 or k in shape.required_members}
        required = {k: clean_value(v, k, depth + 1) for k, v in members.items() if k in shape.required_members}
        optional = {k: clean_value(v, k, depth + 1) for k, v in members.items() if k not in shape.required_members}
        return st.fixed_dictionaries(required, optional=optional)
    if isinstance(shape, ListShape):
        low = int(shape.metadata.get("min", 0))
        return st.lists(clean_value(shape.member, name, depth + 1), min_size=low, max_size=max(low, 2))
    if isinstance(shape, MapShape):
        keys = st.text(alphabet=CLEAN_TEXT, min_size=1, max_size=10)
        return st.dictionaries(keys, clean_value(shape.value, "", depth + 1), max_size=2)
    kind, low, high = shape.type_name, shape.metadata.get("min"), shape.metadata.get("max")
    if kind == "string":
        if shape.enum:
            return st.sampled_from(list(shape.enum))
        if name in NAME_MEMBERS:
            return st.sampled_from(NAME_POOL)
        if name == "ResourceArn":
            return st.sampled_from(POOL_ARNS)
        shortest = max(int(low or 0), 1)
        return st.text(alphabet=CLEAN_TEXT, min_size=shortest, max_size=max(shortest, min(int(high or 20), 20)))
    if kind in ("integer", "long"):
        return st.integers(min_value=low if low is not None else 0, max_value=high if high is not None else 1000)
    if kind in ("float", "double"):
        return st.floats(min_value=low if low is not None else 0.0, max_value=high if high is not None else 100.0)
    if kind == "boolean":
        return st.booleans()
    if kind == "timestamp":
        return st.integers(min_value=0, max_value=2_000_000_000)
    return st.text(alphabet=CLEAN_TEXT, max_size=10)


def dump(value: Any, ascii_only: bool) -> str:
    """JSON text for `value` with `Raw` tokens written verbatim (and lone surrogates kept as they are)."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k), ensure_ascii=ascii_only)}:{dump(v, ascii_only)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dump(v, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


MALFORMED_BODIES = [
    b"{",
    b"[]",
    b"null",
    b'"a string"',
    b"123",
    b'{"ModelName": }',
    b'{"ModelName": "a",}',
    b"\xff\xfe{\x00}",
    b'{"a": "\\ud800"}',
    b'{"a": "\\u12"}',
    b"{}" * 3,
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 3000 + b"1" + b"}" * 3000,
    b" \t\r\n",
]


@st.composite
def body_bytes(draw: st.DrawFn, value: st.SearchStrategy[Any]) -> bytes:
    """The body: the generated value as JSON (ASCII-escaped or raw UTF-8, perhaps cut short), or malformed bytes."""
    kind = draw(st.sampled_from(["json", "json", "json", "utf8", "cut", "malformed", "empty"]))
    if kind == "malformed":
        return draw(st.sampled_from(MALFORMED_BODIES))
    if kind == "empty":
        return b""
    text = dump(draw(value), ascii_only=kind == "json").encode("utf-8", "surrogatepass")
    if kind == "cut" and text:
        return text[: draw(st.integers(min_value=0, max_value=len(text) - 1))]
    return text


header_values = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(str.encode),
    st.binary(max_size=20).map(lambda b: bytes(c if c >= 0x20 and c != 0x7F else 0x41 for c in b)),
    st.sampled_from(["é".encode(), "\u00ff".encode("latin-1"), "日本".encode(), b"x" * 9000, b""]),
).map(lambda b: b.strip(b" \t"))  # h11, the client, refuses values with surrounding whitespace
CONTENT_TYPES = [AMZ_JSON, "application/json", "text/plain", "", "application/x-amz-json-1.0", "multipart/form-data"]
ODD_HEADER_NAMES = [
    "Content-Encoding",
    "Authorization",
    "X-Amz-Date",
    "X-Amz-Security-Token",
    "X-Amz-Content-Sha256",
    "Transfer-Encoding-Junk",
    "Origin",
    "Accept",
]


def odd_headers() -> st.SearchStrategy[dict[str, bytes]]:
    return st.dictionaries(st.sampled_from(ODD_HEADER_NAMES), header_values, max_size=2).map(
        lambda d: {k: v for k, v in d.items() if k != "Origin" or not v}  # a cross-origin call is refused (403)
    )


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    headers: dict[str, bytes]
    body: bytes
    allow_503: bool = False  # the runtime and OpenAI routes answer 503 ServiceUnavailable by design

    def shown(self) -> str:
        head = {k: v[:80] for k, v in self.headers.items()}
        return f"{self.method} {self.path} headers={head!r} body={self.body[:300]!r} ({len(self.body)} bytes)"


@functools.cache
def input_values(operation: str) -> st.SearchStrategy[Any]:
    """The operation's input shape as a strategy, built once (building it per example is slow)."""
    shape = SM_MODEL.operation_model(operation).input_shape
    return st.one_of(structure(shape, 0), clean_value(shape, "", 0)) if shape is not None else json_junk


@st.composite
def control_plane_case(draw: st.DrawFn, operation: str) -> Case:
    body = draw(body_bytes(input_values(operation)))
    target = draw(
        st.sampled_from(
            [f"SageMaker.{operation}"] * 8 + [f"SageMaker.{operation}Junk", "SageMaker.", f"sagemaker.{operation}"]
        )
    )
    headers = {"X-Amz-Target": target.encode(), "Content-Type": draw(st.sampled_from(CONTENT_TYPES)).encode()}
    headers.update(draw(odd_headers()))
    path = draw(st.sampled_from(["/"] * 8 + ["//", "/?x=1", "/%2e%2e/"]))
    return Case("POST", path, headers, body)


RUNTIME_HEADERS = [
    "X-Amzn-SageMaker-Custom-Attributes",
    "X-Amzn-SageMaker-Target-Variant",
    "X-Amzn-SageMaker-Target-Model",
    "X-Amzn-SageMaker-Target-Container-Hostname",
    "X-Amzn-SageMaker-Inference-Id",
    "X-Amzn-SageMaker-Enable-Explanations",
    "X-Amzn-SageMaker-Session-Id",
    "Content-Type",
    "Accept",
]
ASYNC_HEADERS = {
    "X-Amzn-SageMaker-InputLocation": st.one_of(
        st.sampled_from([b"s3://no-such-bucket/in.json", b"/nonexistent/in.json", b"file:///etc/passwd",
                         b"http://127.0.0.1:1/x", b"s3://", b"../../x", b"file://relative"]),
        header_values,
    ),  # fmt: skip
    "X-Amzn-SageMaker-RequestTTLSeconds": st.one_of(
        st.sampled_from([b"60", b"21600", b"59", b"21601", b"-1", b"1e400", b"NaN", b"9" * 40]), header_values
    ),
    "X-Amzn-SageMaker-InvocationTimeoutSeconds": st.one_of(
        st.sampled_from([b"1", b"3600", b"0", b"3601", b"1.5", b"inf"]), header_values
    ),
    "X-Amzn-SageMaker-S3OutputPathExtension": st.one_of(
        st.sampled_from([b"../../etc", b"a/b", b"%2e%2e"]), header_values
    ),
    "X-Amzn-SageMaker-Filename": st.one_of(st.sampled_from([b"../x", b"a/b", b".", b"x" * 2000]), header_values),
    "X-Amzn-SageMaker-Inference-Id": st.one_of(st.sampled_from([b"../id", b"a" * 2000, b"id-1"]), header_values),
}
endpoint_names = st.one_of(
    st.just(ECHO),
    st.just(ECHO),
    st.just(ASYNC),
    st.sampled_from(NAME_POOL + ["%2e%2e", "a" * 64, "x%00y", "%F0%9F%98%80", "%ED%A0%80", "-a"]),
    st.text(alphabet="abc-_.%~", max_size=70).filter(bool),
)


@st.composite
def runtime_case(draw: st.DrawFn) -> Case:
    name = draw(endpoint_names)
    op = draw(st.sampled_from(["invocations", "invocations-response-stream", "async-invocations", "invocationsx"]))
    body = draw(st.one_of(st.binary(max_size=300), body_bytes(json_junk), st.just(b"x" * 200_000)))
    headers = draw(st.dictionaries(st.sampled_from(RUNTIME_HEADERS), header_values, max_size=4))
    if op == "async-invocations":
        headers.update(draw(st.dictionaries(st.sampled_from(list(ASYNC_HEADERS)), st.just(b""), max_size=5)))
        for header in [h for h in headers if h in ASYNC_HEADERS]:
            headers[header] = draw(ASYNC_HEADERS[header])
    headers.update(draw(odd_headers()))
    return Case("POST", f"/endpoints/{name}/{op}", headers, body, allow_503=True)


MESSAGE = st.fixed_dictionaries(
    {"role": st.one_of(st.sampled_from(["user", "system", "assistant", "tool"]), json_junk)},
    optional={"content": st.one_of(st.text(max_size=40), st.sampled_from(ODD_STRINGS), json_junk)},
)
OPENAI_OPTIONAL = {
    "max_tokens": st.one_of(st.integers(min_value=-5, max_value=2**70), json_junk),
    "temperature": st.one_of(st.floats(), st.sampled_from([1e-300, 0.0, 2.0, 3.0]), json_junk),
    "top_p": st.one_of(st.floats(allow_nan=False), json_junk),
    "repetition_penalty": st.one_of(st.floats(allow_nan=False), json_junk),
    "seed": st.one_of(st.integers(min_value=-(2**70), max_value=2**70), json_junk),
    "stream": st.one_of(st.booleans(), json_junk),
    "n": st.one_of(st.integers(min_value=-1, max_value=10), json_junk),
    "stop": st.one_of(st.lists(st.text(max_size=5), max_size=5), st.sampled_from(ODD_STRINGS), json_junk),
    "logprobs": json_junk,
}
openai_models = st.one_of(st.just(ECHO), st.just(ECHO), st.sampled_from(NAME_POOL + ODD_STRINGS[:6]), json_junk)


@st.composite
def openai_case(draw: st.DrawFn) -> Case:
    route = draw(st.sampled_from(["chat", "chat", "completions", "completions", "models", "model"]))
    if route == "models":
        return Case("GET", "/v1/models", draw(odd_headers()), b"", allow_503=True)
    if route == "model":
        name = draw(st.sampled_from([ECHO, "fz-a", "%2e%2e", "a/b/c", "%ED%A0%80", "x" * 300]))
        return Case("GET", f"/v1/models/{name}", draw(odd_headers()), b"", allow_503=True)
    prompt = st.one_of(st.text(max_size=40), st.sampled_from(ODD_STRINGS), json_junk)
    first = (
        {"model": openai_models, "messages": st.one_of(st.lists(MESSAGE, max_size=3), json_junk)}
        if route == "chat"
        else {"model": openai_models, "prompt": prompt}
    )
    value = st.one_of(
        st.fixed_dictionaries(first, optional=OPENAI_OPTIONAL),
        st.fixed_dictionaries({}, optional={**first, **OPENAI_OPTIONAL}),
        json_junk,
    )
    body = draw(body_bytes(value))
    headers = {"Content-Type": draw(st.sampled_from(["application/json", "text/plain", ""])).encode()}
    headers.update(draw(odd_headers()))
    path = "/v1/chat/completions" if route == "chat" else "/v1/completions"
    return Case("POST", path, headers, body, allow_503=True)


def touches_echo(case: Case) -> bool:
    """Would this control-plane case delete or change the test's own endpoint (or its model and config)?"""
    target = case.headers.get("X-Amz-Target", b"")
    mutating = any(w in target for w in (b"Delete", b"Update", b"Tags"))
    return mutating and any(own.encode() in case.body for own in OWN)


@dataclass
class Fuzzer:
    server: ServerProcess
    client: httpx.Client
    failures: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    sent: int = 0

    def send(self, case: Case) -> None:
        self.sent += 1
        try:
            headers = [(name.encode(), value) for name, value in case.headers.items()]
            answer = self.client.request(case.method, case.path, headers=headers, content=case.body)
        except httpx.HTTPError as exc:
            self.failures.append(f"no answer ({exc!r}) to {case.shown()}")
            return
        self.statuses[answer.status_code] += 1
        if answer.status_code < 500:
            return
        error_type = answer.headers.get("x-amzn-errortype", "")
        if case.allow_503 and answer.status_code == 503 and self._is_service_unavailable(answer, error_type):
            return
        self.failures.append(f"{answer.status_code} {error_type} {answer.text[:300]!r} for {case.shown()}")

    @staticmethod
    def _is_service_unavailable(answer: httpx.Response, error_type: str) -> bool:
        if error_type == "ServiceUnavailable":
            return True
        try:
            return bool(answer.json()["error"]["code"] == "service_unavailable")
        except (ValueError, KeyError, TypeError):
            return False

    def check(self) -> None:
        assert not self.failures, f"{len(self.failures)} of {self.sent} fuzzed requests failed:\n" + "\n".join(
            self.failures[:30]
        )


def _names(sm: Any, operation: str, key: str, name_key: str) -> list[str]:
    names: list[str] = []
    for page in sm.get_paginator(operation).paginate():
        names += [row[name_key] for row in page[key]]
    return names


def clean_up_leftovers(sm: Any, timeout_s: float = 120) -> None:
    """Delete every endpoint, config and model but the test's own; they must all go."""
    deadline = time.monotonic() + timeout_s
    while True:
        endpoints = [n for n in _names(sm, "list_endpoints", "Endpoints", "EndpointName") if n not in OWN]
        configs = [n for n in _names(sm, "list_endpoint_configs", "EndpointConfigs", "EndpointConfigName")
                   if n not in OWN]  # fmt: skip
        models = [n for n in _names(sm, "list_models", "Models", "ModelName") if n not in OWN]
        if not (endpoints or configs or models):
            return
        assert time.monotonic() < deadline, f"leftovers not deleted: {endpoints} {configs} {models}"
        for name in endpoints:
            _quietly(sm.delete_endpoint, EndpointName=name)
        for name in configs:
            _quietly(sm.delete_endpoint_config, EndpointConfigName=name)
        for name in models:
            _quietly(sm.delete_model, ModelName=name)
        time.sleep(0.2)


def _quietly(call: Any, **kwargs: str) -> None:
    try:
        call(**kwargs)
    except Exception as exc:  # already gone, or an endpoint still being created: retried by the caller
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        assert code in ("ValidationException", "ResourceNotFound", "ResourceInUse"), repr(exc)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("fuzz-home")).start()
    sm, _ = proc.clients()
    deploy(sm, ECHO, str(write_echo_model(Path(tmp_path_factory.mktemp("fuzz-echo")))))
    sm.get_waiter("endpoint_in_service").wait(EndpointName=ECHO, WaiterConfig={"Delay": 1, "MaxAttempts": 180})
    sm.create_model(ModelName=ASYNC, PrimaryContainer=sm.describe_model(ModelName=ECHO)["PrimaryContainer"])
    variant = {"VariantName": "AllTraffic", "ModelName": ASYNC, "InstanceType": "ml.m5.large",
               "InitialInstanceCount": 1}  # fmt: skip
    output = tmp_path_factory.mktemp("fuzz-async-out")
    sm.create_endpoint_config(EndpointConfigName=ASYNC, ProductionVariants=[variant], AsyncInferenceConfig={
        "OutputConfig": {"S3OutputPath": str(output / "ok"), "S3FailurePath": str(output / "failed")}})  # fmt: skip
    sm.create_endpoint(EndpointName=ASYNC, EndpointConfigName=ASYNC)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=ASYNC, WaiterConfig={"Delay": 1, "MaxAttempts": 180})
    yield proc
    proc.stop()


def seed_resources(sm: Any) -> None:
    """A model, config and endpoint named from the pool, so fuzzed Describe/Update/Delete/CreateEndpoint calls
    meet existing resources. The data path does not exist: the endpoint's deployment fails fast, starting no
    worker."""
    name = NAME_POOL[0]
    sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": "djl-inference:0.22.1", "ModelDataUrl": "/nonexistent/modelhost-fuzz/model"},
    )
    variant = {"VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)


@pytest.fixture
def fuzzer(fuzz_server: ServerProcess) -> Iterator[Fuzzer]:
    seed_resources(fuzz_server.clients()[0])
    with httpx.Client(base_url=fuzz_server.url, trust_env=False, timeout=60) as client:
        fuzz = Fuzzer(fuzz_server, client)
        yield fuzz
    sm, runtime = fuzz_server.clients()
    clean_up_leftovers(sm)
    # the server still serves: the control plane lists exactly the test's own resources, the endpoint answers
    assert sorted(_names(sm, "list_endpoints", "Endpoints", "EndpointName")) == sorted(OWN)
    assert sorted(_names(sm, "list_models", "Models", "ModelName")) == sorted(OWN)
    assert sorted(_names(sm, "list_endpoint_configs", "EndpointConfigs", "EndpointConfigName")) == sorted(OWN)
    assert json.loads(runtime.invoke_endpoint(EndpointName=ECHO, Body=b"after")["Body"].read())["echo"] == "after"
    fuzz.check()


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_control_plane_operation(fuzzer: Fuzzer, operation: str) -> None:
    @fuzz_settings(CONTROL_PLANE_SHARE, len(OPERATIONS))
    @given(case=control_plane_case(operation))
    def run(case: Case) -> None:
        if not touches_echo(case):
            fuzzer.send(case)

    run()


def test_runtime(fuzzer: Fuzzer) -> None:
    @fuzz_settings(RUNTIME_SHARE)
    @given(case=runtime_case())
    def run(case: Case) -> None:
        fuzzer.send(case)

    run()
    assert fuzzer.statuses[200] > 0, f"no fuzzed invocation reached the echo worker: {fuzzer.statuses}"


def test_openai(fuzzer: Fuzzer) -> None:
    @fuzz_settings(OPENAI_SHARE)
    @given(case=openai_case())
    def run(case: Case) -> None:
        fuzzer.send(case)

    run()
    assert fuzzer.statuses[200] > 0, f"no fuzzed OpenAI request was answered: {fuzzer.statuses}"


def test_the_fuzzer_flags_5xx_but_the_apis_own_503() -> None:
    """The assertion itself: a 500 InternalFailure fails, a runtime 503 ServiceUnavailable does not."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/":
            return httpx.Response(500, json={"__type": "InternalFailure", "message": "boom"})
        if request.url.path == "/v1/completions":
            return httpx.Response(503, json={"error": {"code": "service_unavailable"}})
        return httpx.Response(503, headers={"X-Amzn-ErrorType": "ServiceUnavailable"})

    with httpx.Client(transport=httpx.MockTransport(answer), base_url="http://127.0.0.1") as client:
        fuzz = Fuzzer(ServerProcess(Path("unused")), client)
        fuzz.send(Case("POST", "/endpoints/x/invocations", {}, b"", allow_503=True))
        fuzz.send(Case("POST", "/v1/completions", {}, b"", allow_503=True))
        assert fuzz.failures == []
        fuzz.send(Case("POST", "/endpoints/x/invocations", {}, b""))  # a 503 where the API defines none
        fuzz.send(Case("POST", "/", {"X-Amz-Target": b"SageMaker.ListModels"}, b"{}", allow_503=True))
    assert len(fuzz.failures) == 2 and "InternalFailure" in fuzz.failures[1]
