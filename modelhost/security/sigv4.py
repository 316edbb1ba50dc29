"""SigV4 verification: recompute a request's signature with botocore's own signer and compare.

Pure apart from the clock passed in: `parse_signature` reads the header form
(`Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...` with `X-Amz-Date`) or
the presigned query form (`X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`,
`X-Amz-SignedHeaders`, `X-Amz-Signature`); `verify_signature` rebuilds the request exactly as it was sent
(raw path, raw query minus the signature, only the signed headers with their values as sent, the body)
and lets botocore's SigV4Auth / SigV4QueryAuth compute the canonical request, the string to sign and the
signature. The payload hash is the body's SHA-256, or `UNSIGNED-PAYLOAD` when the signed
`X-Amz-Content-SHA256` header says so (and for presigned URLs, as AWS allows). The request time must be
within 5 minutes of the server's clock (presigned: not past `X-Amz-Expires`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from modelhost.errors import IncompleteSignature, InvalidSignature, SignatureExpired

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW_S = 300  # AWS's 5 minutes
MAX_PRESIGN_EXPIRES_S = 7 * 24 * 3600
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_CREDENTIAL = re.compile(r"^([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request$")
_HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class WireRequest:
    """A request as it arrived: nothing decoded or normalised."""

    method: str
    raw_path: str  # percent-encoded, as sent
    raw_query: str  # without the leading '?'
    headers: Sequence[tuple[str, str]]  # (lower-case name, value) in arrival order
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name]
        return ",".join(values) if values else None


@dataclass(frozen=True, slots=True)
class SignatureParts:
    access_key_id: str
    date: str  # yyyymmdd of the credential scope
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    timestamp: str  # X-Amz-Date, yyyymmddTHHMMSSZ
    presigned: bool
    expires_s: int = 0  # presigned only


def _query_pairs(raw_query: str) -> list[tuple[str, str]]:
    pairs = []
    for part in raw_query.split("&"):
        if part:
            key, _, value = part.partition("=")
            pairs.append((unquote(key), unquote(value)))
    return pairs


def _credential(value: str) -> tuple[str, str, str, str]:
    match = _CREDENTIAL.match(value)
    if match is None:
        raise IncompleteSignature(
            f"Credential must have the form ACCESS_KEY/yyyymmdd/region/service/aws4_request, not '{value}'."
        )
    return match.group(1), match.group(2), match.group(3), match.group(4)


def _timestamp(request: WireRequest, query: dict[str, str], presigned: bool) -> str:
    value = query.get("X-Amz-Date") if presigned else request.header("x-amz-date")
    if not value:
        raise IncompleteSignature("The request must carry X-Amz-Date (yyyymmddTHHMMSSZ) when it is signed.")
    try:
        datetime.strptime(value, TIMESTAMP_FORMAT)
    except ValueError:
        raise IncompleteSignature(f"X-Amz-Date must have the form yyyymmddTHHMMSSZ, not '{value}'.") from None
    return value


def parse_signature(request: WireRequest) -> SignatureParts | None:
    """The signature's parts; None when the request is not signed at all."""
    authorization = request.header("authorization")
    query = dict(_query_pairs(request.raw_query))
    if authorization is not None and authorization.startswith(ALGORITHM + " "):
        fields: dict[str, str] = {}
        for item in authorization[len(ALGORITHM) + 1 :].split(","):
            name, sep, value = item.strip().partition("=")
            if sep:
                fields[name] = value
        missing = [f for f in ("Credential", "SignedHeaders", "Signature") if f not in fields]
        if missing:
            raise IncompleteSignature(
                f"Authorization header requires '{missing[0]}' parameter. Authorization={authorization[:200]}"
            )
        key, date, region, service = _credential(fields["Credential"])
        return SignatureParts(
            access_key_id=key,
            date=date,
            region=region,
            service=service,
            signed_headers=tuple(h for h in fields["SignedHeaders"].lower().split(";") if h),
            signature=fields["Signature"],
            timestamp=_timestamp(request, query, presigned=False),
            presigned=False,
        )
    if "X-Amz-Algorithm" in query or "X-Amz-Signature" in query:
        if query.get("X-Amz-Algorithm") != ALGORITHM:
            raise IncompleteSignature(f"X-Amz-Algorithm must be {ALGORITHM}.")
        for name in ("X-Amz-Credential", "X-Amz-SignedHeaders", "X-Amz-Signature"):
            if name not in query:
                raise IncompleteSignature(f"A presigned URL requires the '{name}' query parameter.")
        expires = query.get("X-Amz-Expires", "")
        if not expires.isdigit() or not 0 < int(expires) <= MAX_PRESIGN_EXPIRES_S:
            raise IncompleteSignature(
                f"X-Amz-Expires must be a whole number of seconds from 1 to {MAX_PRESIGN_EXPIRES_S}."
            )
        key, date, region, service = _credential(query["X-Amz-Credential"])
        return SignatureParts(
            access_key_id=key,
            date=date,
            region=region,
            service=service,
            signed_headers=tuple(h for h in query["X-Amz-SignedHeaders"].lower().split(";") if h),
            signature=query["X-Amz-Signature"],
            timestamp=_timestamp(request, query, presigned=True),
            presigned=True,
            expires_s=int(expires),
        )
    return None


def _stamp(moment: datetime) -> str:
    return moment.strftime(TIMESTAMP_FORMAT)


def check_time(parts: SignatureParts, now: datetime) -> None:
    """SignatureExpired in AWS's words when the request is outside the 5-minute window (or its presign)."""
    signed_at = datetime.strptime(parts.timestamp, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    skew = timedelta(seconds=MAX_SKEW_S)
    latest = signed_at + timedelta(seconds=parts.expires_s) if parts.presigned else signed_at
    if latest < now - skew:
        raise SignatureExpired(
            f"Signature expired: {_stamp(latest)} is now earlier than {_stamp(now - skew)} ({_stamp(now)} - 5 min.)"
        )
    if signed_at > now + skew:
        raise SignatureExpired(
            f"Signature not yet current: {parts.timestamp} is still later than {_stamp(now + skew)} "
            f"({_stamp(now)} + 5 min.)",
        )


def _payload_modes(request: WireRequest, parts: SignatureParts) -> list[bool]:
    """Whether to try the body's hash (False) and/or UNSIGNED-PAYLOAD (True) as the canonical payload."""
    declared = request.header("x-amz-content-sha256") if "x-amz-content-sha256" in parts.signed_headers else None
    if declared is not None:
        # botocore puts a signed X-Amz-Content-SHA256 (UNSIGNED-PAYLOAD included) into the canonical request itself
        if _HEX_SHA256.match(declared) and declared != hashlib.sha256(request.body).hexdigest():
            raise InvalidSignature("The provided 'x-amz-content-sha256' header does not match what was computed.")
        return [False]
    return [False, True] if parts.presigned else [False]


def expected_signature(request: WireRequest, parts: SignatureParts, secret: str, *, unsigned_payload: bool) -> str:
    """The signature botocore computes for this request with `secret`."""
    query = "&".join(p for p in request.raw_query.split("&") if p and not p.startswith("X-Amz-Signature="))
    # botocore hashes the body unless told (https + payload_signing_enabled=False) to use UNSIGNED-PAYLOAD
    scheme = "https" if unsigned_payload else "http"
    url = f"{scheme}://{request.header('host') or 'localhost'}{request.raw_path}" + (f"?{query}" if query else "")
    headers = {name: request.header(name) or "" for name in parts.signed_headers}
    wire = AWSRequest(method=request.method.upper(), url=url, headers=headers, data=request.body)
    wire.context["timestamp"] = parts.timestamp
    wire.context["payload_signing_enabled"] = not unsigned_payload
    credentials = Credentials(parts.access_key_id, secret)
    signer_type = SigV4QueryAuth if parts.presigned else SigV4Auth
    signer = signer_type(credentials, parts.service, parts.region)
    canonical = signer.canonical_request(wire)
    return str(signer.signature(signer.string_to_sign(wire, canonical), wire))


def verify_signature(request: WireRequest, parts: SignatureParts, secret: str, now: datetime) -> None:
    """Raise InvalidSignature / SignatureExpired unless `request` was signed with `secret` just now."""
    if "host" not in parts.signed_headers:
        raise InvalidSignature("The request signature must include the host header in SignedHeaders.")
    check_time(parts, now)
    if parts.date != parts.timestamp[:8]:
        raise InvalidSignature(
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{parts.date}' != '{parts.timestamp[:8]}', from '{parts.timestamp}'."
        )
    for unsigned in _payload_modes(request, parts):
        if hmac.compare_digest(expected_signature(request, parts, secret, unsigned_payload=unsigned), parts.signature):
            return
    raise InvalidSignature(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
        "Access Key and signing method. Consult the service documentation for details."
    )
