"""The sagemaker-runtime edge: `POST /endpoints/{name}/invocations` forwarded to a worker.

Errors use rest-json's form: the code in `X-Amzn-ErrorType`, the message (and ModelError's members) in the
JSON body, as boto3 parses them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from urllib.parse import unquote

import httpx
from starlette.requests import Request
from starlette.responses import Response

from modelhost import ids
from modelhost.auth import authenticate
from modelhost.errors import (
    ApiError,
    ModelError,
    PayloadTooLarge,
    RuntimeValidationError,
    ServiceUnavailable,
)
from modelhost.router.table import EndpointRoute, InstanceRoute, NoVariant, RoutingTable, VariantRoute
from modelhost.settings import ServerSettings

log = logging.getLogger(__name__)

RUNTIME_PATH = re.compile(
    r"^(?P<prefix>.*)/endpoints/(?P<name>[^/]+)/(?P<op>invocations|invocations-response-stream|async-invocations)$"
)
FORWARDED_HEADERS = (
    "content-type",
    "accept",
    "x-amzn-sagemaker-custom-attributes",
    "x-amzn-sagemaker-target-model",
    "x-amzn-sagemaker-inference-id",
)
RETURNED_HEADERS = ("content-type", "x-amzn-sagemaker-custom-attributes")


class InstanceGone(Exception):
    """The chosen instance refused the connection or closed it without answering."""


def runtime_error_response(error: ApiError, request_id: str) -> Response:
    body = {"message": error.message, **error.extra_fields()}
    return Response(
        json.dumps(body),
        status_code=error.status,
        media_type="application/json",
        headers={"X-Amzn-ErrorType": error.code, "x-amzn-RequestId": request_id},
    )


class RuntimeApi:
    def __init__(
        self,
        settings: ServerSettings,
        table: RoutingTable,
        endpoint_status: Callable[[str], str | None],
        client: httpx.AsyncClient,
    ) -> None:
        self._settings = settings
        self._table = table
        self._endpoint_status = endpoint_status  # store lookup: name -> EndpointStatus or None
        self._client = client

    async def handle(self, request: Request) -> Response:
        request_id = ids.request_id()
        try:
            return await self._invoke(request, request_id)
        except ApiError as exc:
            return runtime_error_response(exc, request_id)
        except Exception:
            log.exception("internal error on %s", request.url.path)
            return runtime_error_response(
                ApiError("An internal error occurred; see the server log.", code="InternalFailure", status=500),
                request_id,
            )

    def _route(self, name: str, region: str) -> EndpointRoute:
        route = self._table.get(name)
        if route is not None:
            return route
        status = self._endpoint_status(name)
        account = self._settings.account_id
        if status is None:
            raise RuntimeValidationError(f"Endpoint {name} of account {account} not found.")
        if status == "InService":  # the instances are (re)starting, e.g. right after a server restart
            raise ServiceUnavailable(f"Endpoint {name} has no instance ready yet; retry shortly.")
        raise RuntimeValidationError(
            f"Endpoint {name} of account {account} is not in service (status: {status}); "
            "only InService endpoints can be invoked."
        )

    async def _invoke(self, request: Request, request_id: str) -> Response:
        raw_path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1").split("?")[0]
        match = RUNTIME_PATH.match(raw_path)
        if match is None or match.group("op") != "invocations":
            raise RuntimeValidationError(f"modelhost does not serve {request.method} {raw_path} yet.")
        name = unquote(match.group("name"))
        caller = authenticate(request.headers, self._settings.region)
        body = await request.body()
        if len(body) > self._settings.max_payload_bytes:
            raise PayloadTooLarge(
                f"Request body of {len(body)} bytes exceeds the {self._settings.max_payload_bytes}-byte limit "
                "of InvokeEndpoint."
            )
        route = self._route(name, caller.region)
        try:
            variant = self._table.choose_variant(route, request.headers.get("x-amzn-sagemaker-target-variant"))
        except NoVariant as exc:
            raise RuntimeValidationError(
                f"The TargetVariant '{exc}' does not exist on endpoint {name}; "
                f"variants: {', '.join(v.name for v in route.variants)}."
            ) from exc
        headers = {h: request.headers[h] for h in FORWARDED_HEADERS if h in request.headers}
        upstream = await self._forward_with_retry(variant, body, headers, route, caller.region)
        out_headers = {h: upstream.headers[h] for h in RETURNED_HEADERS if h in upstream.headers}
        out_headers["x-Amzn-Invoked-Production-Variant"] = variant.name
        out_headers["x-amzn-RequestId"] = request_id
        return Response(upstream.content, status_code=upstream.status_code, headers=out_headers)

    async def _forward_with_retry(
        self, variant: VariantRoute, body: bytes, headers: dict[str, str], route: EndpointRoute, region: str
    ) -> httpx.Response:
        """Forward to the least-busy instance; if it is gone before answering, drop it and try one other."""
        tried: set[str] = set()
        for attempt in range(2):
            instance = self._table.choose_instance(variant, exclude=tried)
            if instance is None:
                raise ServiceUnavailable(
                    f"Variant {variant.name} of endpoint {route.name} has no instance ready; retry shortly."
                )
            tried.add(instance.instance_id)
            try:
                return await self._forward(instance, body, headers, route, region, last_attempt=attempt == 1)
            except InstanceGone:
                log.warning("instance %s of %s went away; retrying elsewhere", instance.instance_id, route.name)
                self._table.drop_instance(route.name, instance.instance_id)
        raise AssertionError("unreachable")

    async def _forward(
        self,
        instance: InstanceRoute,
        body: bytes,
        headers: dict[str, str],
        route: EndpointRoute,
        region: str,
        *,
        last_attempt: bool,
    ) -> httpx.Response:
        log_arn = f"arn:aws:logs:{region}:{self._settings.account_id}:log-group:{route.log_group}"
        instance.in_flight += 1
        try:
            response = await self._client.post(
                f"{instance.url}/invocations",
                content=body,
                headers=headers,
                timeout=self._settings.invocation_timeout_s,
            )
        except httpx.TimeoutException as exc:
            raise ModelError(
                'Received server error (0) from primary with message "Your invocation timed out while waiting for '
                "a response from container primary. Review the latency metrics for each container, resolve the "
                'issue, and try again."',
                original_status=0,
                original_message="invocation timed out",
                log_stream_arn=log_arn,
            ) from exc
        except (httpx.ConnectError, httpx.RemoteProtocolError) as exc:
            if not last_attempt:  # the worker died before answering: the request is safe to send again
                raise InstanceGone(instance.instance_id) from exc
            raise ModelError(
                f'Received server error (0) from primary with message "the instance went away: {exc!r}". '
                f"See the endpoint's log (modelhost logs {route.name}) for more information.",
                original_status=0,
                original_message=repr(exc),
                log_stream_arn=log_arn,
            ) from exc
        except httpx.HTTPError as exc:
            raise ModelError(
                f'Received server error (0) from primary with message "the instance did not answer: {exc}". '
                f"See the endpoint's log (modelhost logs {route.name}) for more information.",
                original_status=0,
                original_message=str(exc),
                log_stream_arn=log_arn,
            ) from exc
        finally:
            instance.in_flight -= 1
        if response.status_code >= 300:
            kind = "client" if response.status_code < 500 else "server"
            text = response.text
            raise ModelError(
                f'Received {kind} error ({response.status_code}) from primary with message "{text}". '
                f"See the endpoint's log (modelhost logs {route.name}) for more information.",
                original_status=response.status_code,
                original_message=text,
                log_stream_arn=log_arn,
            )
        return response
