"""`modelhost`: run the server and drive it (deploy, invoke, ls, describe, logs, jobs, delete, models, doctor)."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from botocore.exceptions import ClientError, EndpointConnectionError

from modelhost.cli.client import aws_error, clients, server_url, signed_get
from modelhost.cli.doctor import doctor
from modelhost.cli.jobs import jobs
from modelhost.cli.keys import keys
from modelhost.cli.lifecycle import STOPPED, is_stopped, start, stop
from modelhost.cli.logs import logs
from modelhost.cli.metrics import metrics
from modelhost.cli.progress import StatusLine
from modelhost.cli.top import top
from modelhost.errors import ModelhostError
from modelhost.settings import ServerSettings

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.22.1-deepspeed0.8.3-cu118"


def url_option(func: F) -> F:
    return click.option(
        "--url",
        envvar="MODELHOST_URL",
        default=None,
        help="server URL (env MODELHOST_URL; default http://127.0.0.1:8080)",
    )(func)


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class CliGroup(click.Group):
    """Maps AWS and connection errors to one line and an exit code instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            fail(f"{error.get('Code')}: {error.get('Message')}")
        except EndpointConnectionError as exc:
            fail(f"cannot reach the modelhost server ({exc}); start one with `modelhost server`", code=2)


@click.group(cls=CliGroup)
@click.version_option(package_name="modelhost")
def cli() -> None:
    """Deploy LLMs to HTTP endpoints on your own machines, with the SageMaker API."""


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--home", envvar="MODELHOST_HOME", default=None, help="data directory (default ~/.modelhost)")
@click.option("--store-url", default=None, metavar="postgresql://...",
              help="shared PostgreSQL store (env MODELHOST_STORE_URL; default SQLite in the home)")  # fmt: skip
@click.option("--strict-instance-types", is_flag=True, default=None, help="refuse GPU types this host lacks")
@click.option("--launcher", type=click.Choice(["local", "ray"]), default=None,
              help="where workers run: local processes (default) or a Ray cluster (MODELHOST_LAUNCHER)")  # fmt: skip
@click.option("--ray-address", default=None, metavar="HOST:PORT",
              help="the Ray cluster --launcher ray joins (RAY_ADDRESS; default one on this machine)")  # fmt: skip
@click.option("--log-level", default="info", show_default=True)
@click.option("--allow-unauthenticated", is_flag=True, help="listen on a non-loopback address without access keys")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="serve HTTPS with this PEM certificate")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="the PEM private key of --tls-cert")
def server(
    host: str,
    port: int,
    home: str | None,
    store_url: str | None,
    strict_instance_types: bool | None,
    launcher: str | None,
    ray_address: str | None,
    log_level: str,
    allow_unauthenticated: bool,
    tls_cert: str | None,
    tls_key: str | None,
) -> None:
    """Run the whole platform: API, runtime, controller, workers."""
    import uvicorn

    from modelhost.app import build_app
    from modelhost.cli.log_format import configure_logging
    from modelhost.cli.serving import access_line, claim_home
    from modelhost.scheduler.launchers.confinement import worker_confinement
    from modelhost.store.urls import redact

    settings = ServerSettings.from_environment(
        host=host, port=port, home=home, strict_instance_types=strict_instance_types, store_url=store_url,
        launcher=launcher, ray_address=ray_address,
    )  # fmt: skip
    configure_logging(log_level)  # one line per record: control characters escaped
    if bool(tls_cert) != bool(tls_key):
        fail("--tls-cert and --tls-key go together: give both to serve HTTPS")
    try:  # before the store is opened or any worker touched: who may call, the home's lock, a sound store, the port
        access = access_line(settings, allow_unauthenticated=allow_unauthenticated)
        confinement = worker_confinement(settings)  # MODELHOST_WORKER_SANDBOX=required without bwrap stops here
        home_lock, listener = claim_home(settings)
    except ModelhostError as exc:
        fail(str(exc))
    click.echo(access, err=True)
    for note in confinement.notes:
        click.echo(note, err=True)
    scheme = "https" if tls_cert else "http"
    store = f"; store {redact(settings.store_url)}" if settings.store_url else ""
    click.echo(f"modelhost server on {scheme}://{host}:{port} (home {settings.home}{store})", err=True)
    config = uvicorn.Config(
        build_app(settings, confinement),
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=60,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
    )
    try:
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        home_lock.release()


def _resource_name(source: str) -> str:
    base = Path(source.rstrip("/")).name or "model"
    base = re.sub(r"(\.tar\.gz|\.tgz|\.tar)$", "", base)
    name = re.sub(r"[^a-zA-Z0-9-]+", "-", base).strip("-")[:40] or "model"
    return name


def _model_data_url(source: str) -> str:
    if re.match(r"^[a-z][a-z0-9+.-]*://", source):
        return source
    path = Path(source).expanduser().resolve()
    if not path.exists():
        fail(f"{source} does not exist (give a model folder, a .tar.gz, or an s3:// / https:// / file:// URL)")
    return str(path)


def wait_in_service(sm: Any, name: str, timeout_s: float = 3600.0) -> dict[str, Any]:
    status = StatusLine()
    deadline = time.monotonic() + timeout_s
    while True:
        desc = sm.describe_endpoint(EndpointName=name)
        state = desc["EndpointStatus"]
        detail = ""
        for variant in desc.get("ProductionVariants", []):
            for vs in variant.get("VariantStatus", []):
                if vs.get("StatusMessage"):
                    detail = f": {variant['VariantName']} {vs['StatusMessage']}"
        if state == "InService":
            status.done(f"endpoint {name} is InService")
            return dict(desc)
        if state == "Failed":
            status.done(f"endpoint {name} failed")
            fail(desc.get("FailureReason", "no reason given"))
        if time.monotonic() > deadline:
            fail(f"endpoint {name} is still {state} after {timeout_s:.0f} s")
        status.update(f"{name}: {state}{detail}")
        time.sleep(1.0)


@cli.command()
@click.argument("source")
@click.option("--name", help="endpoint name (model and config get the same name); default from SOURCE")
@click.option("--instance-type", default="ml.m5.xlarge", show_default=True)
@click.option("--instance-count", default=1, show_default=True, type=int)
@click.option("--image", default=DEFAULT_IMAGE, show_default=True, help="container image URI (selects the runtime)")
@click.option("--env", "env_pairs", multiple=True, metavar="KEY=VALUE", help="model environment variable")
@click.option("--startup-timeout", type=int, default=None, help="ContainerStartupHealthCheckTimeoutInSeconds")
@click.option("--wait/--no-wait", default=True, show_default=True)
@url_option
def deploy(
    source: str,
    name: str | None,
    instance_type: str,
    instance_count: int,
    image: str,
    env_pairs: tuple[str, ...],
    startup_timeout: int | None,
    wait: bool,
    url: str | None,
) -> None:
    """Deploy a model folder, .tar.gz or URL as an endpoint (CreateModel + config + endpoint)."""
    name = name or _resource_name(source)
    environment: dict[str, str] = {}
    for pair in env_pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            fail(f"--env takes KEY=VALUE, got {pair!r}")
        environment[key] = value
    sm, _ = clients(server_url(url))
    container: dict[str, Any] = {"Image": image, "ModelDataUrl": _model_data_url(source)}
    if environment:
        container["Environment"] = environment
    sm.create_model(ModelName=name, PrimaryContainer=container)
    variant: dict[str, Any] = {
        "VariantName": "AllTraffic",
        "ModelName": name,
        "InstanceType": instance_type,
        "InitialInstanceCount": instance_count,
    }
    if startup_timeout:
        variant["ContainerStartupHealthCheckTimeoutInSeconds"] = startup_timeout
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    click.echo(f"creating endpoint {name}", err=True)
    if wait:
        wait_in_service(sm, name)
    click.echo(name)


@cli.command()
@click.argument("endpoint")
@click.argument("body", required=False)
@click.option("--file", "body_file", type=click.Path(exists=True, dir_okay=False), help="read the body from a file")
@click.option("--content-type", default="application/json", show_default=True)
@click.option("--accept", default=None)
@click.option("--custom-attributes", default=None)
@url_option
def invoke(
    endpoint: str,
    body: str | None,
    body_file: str | None,
    content_type: str,
    accept: str | None,
    custom_attributes: str | None,
    url: str | None,
) -> None:
    """Invoke an endpoint and print the answer. BODY is a string, or '-' for standard input."""
    if body_file:
        payload = Path(body_file).read_bytes()
    elif body is None or body == "-":
        payload = sys.stdin.buffer.read()
    else:
        payload = body.encode()
    _, runtime = clients(server_url(url))
    kwargs: dict[str, Any] = {"EndpointName": endpoint, "Body": payload, "ContentType": content_type}
    if accept:
        kwargs["Accept"] = accept
    if custom_attributes:
        kwargs["CustomAttributes"] = custom_attributes
    response = runtime.invoke_endpoint(**kwargs)
    data = response["Body"].read()
    sys.stdout.write(data.decode("utf-8", "replace"))
    if not data.endswith(b"\n"):
        sys.stdout.write("\n")


@cli.command(name="ls")
@click.option("--models", "what", flag_value="models", help="list models instead of endpoints")
@click.option("--configs", "what", flag_value="configs", help="list endpoint configs instead of endpoints")
@url_option
def list_resources(what: str | None, url: str | None) -> None:
    """List endpoints (or models, or endpoint configs)."""
    sm, _ = clients(server_url(url))
    if what == "models":
        rows = [
            (m["ModelName"], "", m["CreationTime"])
            for p in sm.get_paginator("list_models").paginate()
            for m in p["Models"]
        ]
    elif what == "configs":
        pages = sm.get_paginator("list_endpoint_configs").paginate()
        rows = [(c["EndpointConfigName"], "", c["CreationTime"]) for p in pages for c in p["EndpointConfigs"]]
    else:
        pages = sm.get_paginator("list_endpoints").paginate()
        rows = [(e["EndpointName"], e["EndpointStatus"], e["CreationTime"]) for p in pages for e in p["Endpoints"]]
        rows = [  # an InService endpoint whose variants all want 0 instances is shown as stopped
            (n, STOPPED if s == "InService" and is_stopped(sm.describe_endpoint(EndpointName=n)) else s, c)
            for n, s, c in rows
        ]
    if not rows:
        click.echo("(none)")
        return
    width = max(len(r[0]) for r in rows)
    for name, status, created in rows:
        click.echo(f"{name:<{width}}  {status:<10}  {created:%Y-%m-%d %H:%M:%S}")


@cli.command()
@click.argument("endpoint")
@url_option
def describe(endpoint: str, url: str | None) -> None:
    """Show an endpoint as DescribeEndpoint returns it."""
    sm, _ = clients(server_url(url))
    desc = sm.describe_endpoint(EndpointName=endpoint)
    desc.pop("ResponseMetadata", None)
    click.echo(json.dumps(desc, indent=2, default=str))


@cli.command()
@url_option
def quotas(url: str | None) -> None:
    """Instance limits per type: limit, in use, left (set with MODELHOST_QUOTAS on the server)."""
    import httpx

    base = server_url(url)
    try:
        response = signed_get(f"{base}/_modelhost/quotas", {}, "servicequotas")
    except httpx.HTTPError as exc:
        fail(f"cannot reach the modelhost server at {base} ({exc})", code=2)
    refusal = aws_error(response)
    if refusal is not None:
        fail(refusal)
    if response.status_code != 200:
        fail(f"the server answered {response.status_code}: {response.text.strip()[:300]}")
    report = response.json()
    host = report["host"]
    mode = "strict" if report["strict_instance_types"] else "GPU types run on CPU where the host lacks GPUs"
    click.echo(f"host: {host['gpus']} GPU(s), {host['cpus']} CPU(s), {host['memory_gib']} GiB ({mode})")
    if not report["quotas"]:
        click.echo("no instance type in use or configured")
        return
    width = max(len(q["InstanceType"]) for q in report["quotas"])
    click.echo(f"{'instance type':<{width}}  limit  used  left")
    for q in report["quotas"]:
        click.echo(f"{q['InstanceType']:<{width}}  {q['Limit']:>5}  {q['Used']:>4}  {q['Left']:>4}")


@cli.command()
@click.argument("endpoint")
@click.option("--keep-config", is_flag=True, help="keep the endpoint config")
@click.option("--keep-model", is_flag=True, help="keep the models the config names")
@url_option
def delete(endpoint: str, keep_config: bool, keep_model: bool, url: str | None) -> None:
    """Delete an endpoint and wait until it is gone (then its config and models, unless kept)."""
    sm, _ = clients(server_url(url))
    desc = sm.describe_endpoint(EndpointName=endpoint)
    config_name = desc["EndpointConfigName"]
    sm.delete_endpoint(EndpointName=endpoint)
    status = StatusLine()
    while True:
        try:
            sm.describe_endpoint(EndpointName=endpoint)
        except ClientError as exc:
            if "Could not find" in exc.response["Error"]["Message"]:
                break
            raise
        status.update(f"{endpoint}: Deleting")
        time.sleep(0.5)
    status.done(f"endpoint {endpoint} deleted")
    models: list[str] = []
    try:
        models = [
            v["ModelName"] for v in sm.describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"]
        ]
        if not keep_config:
            sm.delete_endpoint_config(EndpointConfigName=config_name)
            click.echo(f"endpoint config {config_name} deleted", err=True)
    except ClientError:
        pass  # already gone
    if not keep_model:
        for model in models:
            try:
                sm.delete_model(ModelName=model)
                click.echo(f"model {model} deleted", err=True)
            except ClientError:
                pass


@cli.group()
def models() -> None:
    """The local model registry: weights registered under Hugging Face ids."""


@models.command(name="add")
@click.argument("model_id")
@click.argument("path", type=click.Path(exists=True))
@click.option("--home", envvar="MODELHOST_HOME", default=None, help="data directory (default ~/.modelhost)")
def models_add(model_id: str, path: str, home: str | None) -> None:
    """Register a Hugging Face folder or a GGUF file as MODEL_ID (e.g. tiiuae/falcon-40b)."""
    from modelhost.registry import ModelRegistry

    settings = ServerSettings.from_environment(home=home)
    status = StatusLine()
    try:
        entry = ModelRegistry(settings.registry_dir).add(model_id, Path(path), progress=status.update)
    except ValueError as exc:
        fail(str(exc))
    status.done(f"registered {entry.model_id} -> {entry.path}")


@models.command(name="ls")
@click.option("--home", envvar="MODELHOST_HOME", default=None, help="data directory (default ~/.modelhost)")
def models_ls(home: str | None) -> None:
    """List registered model ids."""
    from modelhost.registry import ModelRegistry

    settings = ServerSettings.from_environment(home=home)
    entries = ModelRegistry(settings.registry_dir).list()
    if not entries:
        click.echo("(no models registered; add one with `modelhost models add MODEL_ID PATH`)")
        return
    width = max(len(e.model_id) for e in entries)
    for entry in entries:
        click.echo(f"{entry.model_id:<{width}}  {entry.kind:<9}  {entry.size_bytes / 1e6:8.1f} MB  {entry.source}")


cli.add_command(doctor)
cli.add_command(keys)
cli.add_command(top)
cli.add_command(metrics)
cli.add_command(logs)
cli.add_command(jobs)
cli.add_command(stop)
cli.add_command(start)


def main() -> None:
    cli(prog_name="modelhost")
