"""Worker process entry: WorkerSpec from the environment -> logging, sys.path, watchdog, devices, server."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelhost.contracts.worker import PHASE_LOAD, SPEC_ENV, FailureRecord, WorkerSpec

if TYPE_CHECKING:
    from modelhost.worker.engine.types import Backend, EngineConfig
    from modelhost.worker.properties import ServingProperties

log = logging.getLogger("modelhost.worker")

# where the built-in engine's create_backend may live (the engine package's own layout)
ENGINE_MODULES = ("modelhost.worker.engine", "modelhost.worker.engine.factory", "modelhost.worker.engine.backend")
GRACEFUL_SHUTDOWN_S = 25  # SageMaker sends SIGKILL 30 s after SIGTERM


class _QuietPings(logging.Filter):
    """Drop uvicorn's access lines for /ping, which the controller polls every fraction of a second."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "/ping " not in record.getMessage()


def configure_logging(spec: WorkerSpec) -> None:
    from modelhost.worker.stdout import StampedLines

    sys.stdout = StampedLines(sys.stdout)  # model.py print()s reach the log, each line with its time
    handler = logging.StreamHandler(sys.stderr)
    # UTC with its zone, to the millisecond: the CloudWatch Logs API reads each event's time from it
    formatter = logging.Formatter(
        f"%(asctime)s.%(msecs)03dZ %(levelname)s [{spec.instance_id}] %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("MODELHOST_WORKER_LOG_LEVEL", "INFO").upper())
    logging.getLogger("uvicorn.access").addFilter(_QuietPings())


def prepend_paths(spec: WorkerSpec, shim_dir: Path) -> list[str]:
    """packages_dir, model_dir and the djl_python shim go first on sys.path and on PYTHONPATH for children."""
    paths = [p for p in (spec.packages_dir, spec.model_dir, str(shim_dir)) if p]
    for path in reversed(paths):
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)
    existing = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(paths + ([existing] if existing else []))
    return paths


def _fail(spec: WorkerSpec, reason: str) -> None:
    log.error("worker failed: %s", reason)
    if spec.failure_path:
        FailureRecord(phase=PHASE_LOAD, reason=reason).write(spec.failure_path)
    logging.shutdown()
    os._exit(1)  # a handler may still be running on its thread; nothing else is in flight


def _read_spec() -> WorkerSpec:
    raw = os.environ.get(SPEC_ENV)
    if not raw:
        sys.exit(f"modelhost worker: {SPEC_ENV} is not set (it holds the WorkerSpec JSON)")
    try:
        return WorkerSpec.from_json(raw)
    except (ValueError, TypeError) as exc:
        sys.exit(f"modelhost worker: bad {SPEC_ENV}: {exc}")


def main() -> None:
    """Run one worker until SIGTERM (graceful), a failed load (exit 1) or the parent's death."""
    spec = _read_spec()
    configure_logging(spec)
    from modelhost.worker.handler.djl import SHIM_DIR

    paths = prepend_paths(spec, SHIM_DIR)
    log.info(
        "worker %s for endpoint %s / variant %s / model %s (pid %d)",
        spec.instance_id,
        spec.endpoint_name,
        spec.variant_name,
        spec.model_name,
        os.getpid(),
    )
    log.info("model data %s; python path %s", spec.model_dir, os.pathsep.join(paths))
    if spec.parent_pid:
        from modelhost.worker.watchdog import start_parent_watchdog

        start_parent_watchdog(spec.parent_pid)
    # The launcher set CUDA_VISIBLE_DEVICES from the placement (the one place devices are decided).
    log.info("devices: %s", f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}" if spec.gpu_ids else "CPU")
    if spec.cpu_threads:  # the instance's share of the host's CPUs, for model.py handlers that size thread pools
        os.environ["MODELHOST_CPU_THREADS"] = str(spec.cpu_threads)
    serve(spec)


def load_backend_factory(env: Mapping[str, str]) -> Callable[[EngineConfig], Backend]:
    """`create_backend` of the built-in engine, or MODELHOST_ENGINE_FACTORY=module:function (a fake, in tests)."""
    override = env.get("MODELHOST_ENGINE_FACTORY")
    if override:
        module_name, _, attribute = override.partition(":")
        return getattr(importlib.import_module(module_name), attribute or "create_backend")  # type: ignore[no-any-return]
    for module_name in ENGINE_MODULES:
        if importlib.util.find_spec(module_name) is None:
            continue
        factory = getattr(importlib.import_module(module_name), "create_backend", None)
        if callable(factory):
            return factory  # type: ignore[no-any-return]
    raise RuntimeError("this modelhost has no built-in engine (modelhost.worker.engine defines no create_backend)")


def _model_files(model_dir: Path) -> list[str]:
    try:
        return sorted(p.name for p in model_dir.iterdir())
    except OSError:
        return []


def _engine_app(spec: WorkerSpec, properties: ServingProperties, model_dir: Path, on_load_failure: Any) -> Any:
    from modelhost.worker.engine_mode.server import EngineEndpoints, create_engine_app
    from modelhost.worker.engine_mode.serving_mode import build_engine_config, image_schema

    config = build_engine_config(
        properties,
        os.environ,
        model_dir,
        _model_files(model_dir),
        len(spec.gpu_ids),
        cpu_threads=spec.cpu_threads,
        tensor_parallel_degree=spec.tensor_parallel_degree,
    )
    schema = image_schema(spec.image, properties.options)
    log.info("engine config: %s; request schema %s (image %s)", config, schema, spec.image or "(none)")

    async def load_backend() -> Backend:
        factory = await asyncio.to_thread(load_backend_factory, os.environ)
        backend = await asyncio.to_thread(factory, config)
        await backend.start()
        return backend

    endpoints = EngineEndpoints(
        load_backend, schema, spec.endpoint_name, on_load_failure, properties.model_loading_timeout_s
    )
    return create_engine_app(endpoints)


def _handler_app(spec: WorkerSpec, properties: ServingProperties, model_dir: Path, on_load_failure: Any) -> Any:
    from modelhost.worker.handler.server import create_app
    from modelhost.worker.handler.service import HandlerService
    from modelhost.worker.handler.thread import HandlerThread

    service = HandlerService(properties, model_dir, device_id="0" if spec.gpu_ids else "-1")
    return create_app(service, HandlerThread(), on_load_failure)


def serve(spec: WorkerSpec) -> None:
    import uvicorn

    from modelhost.worker.engine_mode.serving_mode import choose_mode
    from modelhost.worker.properties import build_serving_properties
    from modelhost.worker.router_token import guarded

    model_dir = Path(spec.model_dir).resolve()
    properties_file = model_dir / "serving.properties"
    try:
        text = properties_file.read_text() if properties_file.is_file() else None
        properties = build_serving_properties(text, os.environ)
    except (OSError, ValueError) as exc:
        _fail(spec, str(exc))
        return
    os.environ.update(properties.process_env)
    log.info("serving.properties: options %s; model properties %s", properties.options, properties.model_properties)
    decision = choose_mode(properties, os.environ, _model_files(model_dir))
    log.info("%s mode: %s", decision.mode, decision.reason)
    failures: list[str] = []

    def on_load_failure(reason: str) -> None:
        failures.append(reason)
        server.should_exit = True

    try:
        build = _engine_app if decision.mode == "engine" else _handler_app
        app = guarded(build(spec, properties, model_dir, on_load_failure), spec.router_token)
    except ValueError as exc:
        _fail(spec, str(exc))
        return
    port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT") or spec.port)
    config = uvicorn.Config(
        app,
        host=spec.host,
        port=port,
        log_config=None,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    log.info("listening on http://%s:%d (GET /ping, POST /invocations)", spec.host, port)
    try:
        server.run()
    except SystemExit:
        if not server.started:
            _fail(spec, f"could not listen on {spec.host}:{port} (is the port in use?)")
        raise
    if failures:
        _fail(spec, failures[0])
    if not server.started:
        _fail(spec, f"could not listen on {spec.host}:{port} (is the port in use?)")
    log.info("worker stopped")
