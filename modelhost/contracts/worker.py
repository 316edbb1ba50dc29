"""The contract between the control plane and a worker process: the spec it is started with and the
failure record it leaves behind. Version it when a field changes meaning."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

SPEC_VERSION = 1
SPEC_ENV = "MODELHOST_WORKER_SPEC"  # the JSON of a WorkerSpec, set by the launcher

# Phases named in a FailureReason, in the order an instance goes through them.
PHASE_PLACEMENT = "placement"
PHASE_DOWNLOAD = "download"
PHASE_EXTRACT = "extract"
PHASE_REQUIREMENTS = "requirements"
PHASE_LOAD = "load"
PHASE_HEALTH_CHECK = "health check"

# The worker's HTTP surface as the control plane and the router use it.
PING_PATH = "/ping"  # GET: 200 when serving; 503 with {"status": "unhealthy", "reason"} or {"code", "message"}
INVOCATIONS_PATH = "/invocations"  # POST: one InvokeEndpoint(WithResponseStream) request
CHAT_COMPLETIONS_PATH = "/v1/chat/completions"  # POST (engine mode; handler mode answers a 400)
COMPLETIONS_PATH = "/v1/completions"  # POST (engine mode; handler mode answers a 400)
MODELS_PATH = "/v1/models"  # GET (engine mode)
STATS_PATH = "/_modelhost/stats"  # GET (engine mode): {"ready", "engine": the backend's counters}
METRICS_PATH = "/metrics"  # GET (both modes): Prometheus text format of the worker's own registry; needs the
# router token like /invocations
# Headers private to router -> worker requests.
ROUTER_TOKEN_HEADER = "x-modelhost-router-token"  # the worker's per-launch secret (WorkerSpec.router_token): a
# worker answers 403 to /invocations and the OpenAI routes without it, so only the router reaches the model
STREAM_HEADER = "x-modelhost-stream"  # "true": stream the answer (InvokeEndpointWithResponseStream); a
# handler-mode worker drops it (a model.py streams when its Output does), an engine-mode worker honours it


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """Everything a worker needs to serve one instance. The model's Environment arrives as process env."""

    instance_id: str  # unique per started process, e.g. "my-ep-alltraffic-0-1a2b3c-c0"
    endpoint_name: str
    variant_name: str
    model_name: str
    model_dir: str  # the extracted model data (SageMaker's /opt/ml/model), shared read-only by instances
    port: int  # where to serve GET /ping and POST /invocations
    host: str = "127.0.0.1"
    instance_type: str = "ml.m5.large"
    image: str = ""  # the model's container image URI; selects the request schema (LMI/DJL vs TGI)
    gpu_ids: list[int] = field(default_factory=list)  # CUDA ordinals assigned; empty means CPU
    packages_dir: str | None = None  # per-model site dir holding requirements.txt installs (prepended to sys.path)
    failure_path: str | None = None  # where the worker writes a FailureRecord before exiting on a fatal error
    parent_pid: int | None = None  # the worker exits when this process is gone (no orphans after kill -9)
    group_id: str = ""  # the SageMaker instance this worker is a model copy of (several copies when the
    # instance has more GPUs than option.tensor_parallel_degree; DJL's semantics)
    cpu_threads: int | None = None  # the CPU threads placement gave this copy (the engine's torch threads)
    memory_bytes: int | None = None  # the memory placement budgeted for this copy
    tensor_parallel_degree: int | None = None  # GPUs per model copy, decided by the controller (None: CPU / one)
    router_token: str = ""  # random per launch; requests must carry it in ROUTER_TOKEN_HEADER ("": no check)
    version: int = SPEC_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerSpec:
        data = json.loads(text)
        if data.get("version") != SPEC_VERSION:
            raise ValueError(f"worker spec version {data.get('version')} is not {SPEC_VERSION}")
        return cls(**data)


@dataclass(frozen=True, slots=True)
class FailureRecord:
    """Why a worker could not serve: the phase and a one-line cause (e.g. a traceback's last line)."""

    phase: str
    reason: str
    lost_node: str = ""  # the Ray node's id when the worker's node (or its actor) was lost; not written

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"phase": self.phase, "reason": self.reason}))

    @classmethod
    def read(cls, path: str | Path) -> FailureRecord | None:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            return None
        return cls(phase=str(data.get("phase", "")), reason=str(data.get("reason", "")))
