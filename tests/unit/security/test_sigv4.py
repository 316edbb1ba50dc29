"""SigV4 verification: requests signed by botocore verify; wrong secrets, old dates and tampering do not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from modelhost.errors import IncompleteSignature, InvalidSignature, SignatureExpired
from modelhost.security.sigv4 import WireRequest, parse_signature, verify_signature

KEY = "AKIAEXAMPLEEXAMPLE00"
SECRET = "s" * 40
HOST = "127.0.0.1:8080"
SIGNED_AT = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def _wire(signed: AWSRequest, body: bytes | None = None) -> WireRequest:
    prepared = signed.prepare()
    parts = urlsplit(prepared.url)
    headers = [(k.lower(), v if isinstance(v, str) else v.decode()) for k, v in prepared.headers.items()]
    headers.append(("host", HOST))
    raw = prepared.body if body is None else body
    data = raw if isinstance(raw, bytes) else (raw or "").encode()
    return WireRequest(prepared.method, parts.path, parts.query, headers, data)


def signed(
    body: bytes = b'{"a": 1}',
    path: str = "/endpoints/my%20ep/invocations",
    secret: str = SECRET,
    extra: dict[str, str] | None = None,
    query_auth: bool = False,
) -> WireRequest:
    headers = {"Content-Type": "application/json", **(extra or {})}
    request = AWSRequest("POST", f"http://{HOST}{path}", data=body, headers=headers)
    signer = (SigV4QueryAuth if query_auth else SigV4Auth)(Credentials(KEY, secret), "sagemaker", "eu-west-1")
    with mock.patch("botocore.auth.get_current_datetime", return_value=SIGNED_AT.replace(tzinfo=None)):
        signer.add_auth(request)
    return _wire(request)


def verify(request: WireRequest, secret: str = SECRET, now: datetime = SIGNED_AT) -> None:
    parts = parse_signature(request)
    assert parts is not None
    verify_signature(request, parts, secret, now)


def test_a_request_signed_by_botocore_verifies() -> None:
    request = signed()
    parts = parse_signature(request)
    assert parts is not None and (parts.access_key_id, parts.region, parts.service) == (KEY, "eu-west-1", "sagemaker")
    verify(request, now=SIGNED_AT + timedelta(minutes=4))


def test_unsigned_requests_have_no_signature() -> None:
    assert parse_signature(WireRequest("POST", "/", "", [("host", HOST)], b"")) is None


def test_wrong_secret() -> None:
    with pytest.raises(InvalidSignature, match="The request signature we calculated does not match"):
        verify(signed(secret="x" * 40))


def test_tampered_body_or_path() -> None:
    request = signed()
    with pytest.raises(InvalidSignature):
        verify(WireRequest(request.method, request.raw_path, request.raw_query, request.headers, b'{"a": 2}'))
    with pytest.raises(InvalidSignature):
        verify(WireRequest(request.method, "/endpoints/other/invocations", "", request.headers, request.body))


def test_expired_in_aws_words() -> None:
    with pytest.raises(SignatureExpired) as info:
        verify(signed(), now=SIGNED_AT + timedelta(minutes=15))
    assert info.value.message == (
        "Signature expired: 20261201T120000Z is now earlier than 20261201T121000Z (20261201T121500Z - 5 min.)"
    )
    assert info.value.code == "InvalidSignatureException"


def test_from_the_future() -> None:
    with pytest.raises(SignatureExpired, match="Signature not yet current"):
        verify(signed(), now=SIGNED_AT - timedelta(minutes=6))


def test_unsigned_payload_header() -> None:
    verify(signed(extra={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}))
    request = signed(extra={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    # the body is not covered by the signature: another body still verifies
    verify(WireRequest(request.method, request.raw_path, request.raw_query, request.headers, b"other"))


def test_declared_payload_hash_must_match_the_body() -> None:
    with pytest.raises(InvalidSignature, match="x-amz-content-sha256"):
        verify(signed(extra={"X-Amz-Content-SHA256": "0" * 64}))


def test_presigned_query() -> None:
    request = signed(body=b"", query_auth=True)
    parts = parse_signature(request)
    assert parts is not None and parts.presigned and parts.expires_s == 3600
    verify(request, now=SIGNED_AT + timedelta(minutes=30))
    with pytest.raises(SignatureExpired, match="Signature expired: 20261201T130000Z"):
        verify(request, now=SIGNED_AT + timedelta(hours=2))
    with pytest.raises(InvalidSignature):
        verify(request, secret="y" * 40)


def test_malformed_authorization() -> None:
    request = WireRequest("POST", "/", "", [("host", HOST), ("authorization", "AWS4-HMAC-SHA256 Credential=x")], b"")
    with pytest.raises(IncompleteSignature):
        parse_signature(request)
