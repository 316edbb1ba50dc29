"""Typed settings of the server process: every environment variable modelhost reads is declared here.

Built once by the CLI (flags > environment > defaults) and passed down by constructor; nothing reads the
environment at import time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

# name -> what it sets (docs/configuration.md lists these)
ENVIRONMENT_VARIABLES: dict[str, str] = {
    "MODELHOST_HOME": "data directory (store, artifacts cache, logs, model registry); default ~/.modelhost",
    "MODELHOST_STORE_URL": "postgresql://USER:PASSWORD@HOST:PORT/DATABASE: keep the control plane in a PostgreSQL "
    "database several servers share (one leads, docs/fleet.md); default unset: SQLite in the home",
    "MODELHOST_REGION": "region used in ARNs when a request carries no SigV4 scope; default us-east-1",
    "MODELHOST_ACCOUNT_ID": "12-digit account id used in ARNs; default 123456789012",
    "MODELHOST_STRICT_INSTANCE_TYPES": "1 to refuse GPU instance types this host cannot provide",
    "MODELHOST_MAX_EXTRACT_BYTES": "largest total size a model archive may inflate to; default 64 GiB",
    "MODELHOST_STARTUP_TIMEOUT_S": "health-check window when a variant sets none; default 900",
    "MODELHOST_DOWNLOAD_TIMEOUT_S": "model data download limit when a variant sets none; default 3600",
    "MODELHOST_LOCAL_DATA_ROOTS": "colon-separated folders local model data (paths, file://) may be read from; "
    "default: anywhere while no access keys exist, nowhere once one does",
    "MODELHOST_ALLOW_PRIVATE_MODEL_DATA": "1 to let http(s) model data come from loopback, link-local and private "
    "addresses; default refused",
    "MODELHOST_WORKER_SANDBOX": "auto (default): workers run in a bubblewrap sandbox where bwrap works; required: "
    "refuse to start without it; off: never",
    "MODELHOST_SCALING_EVALUATION_S": "target tracking scales out when every 10 s data point of this window is above "
    "the target; default 30 (SageMaker: 180)",
    "MODELHOST_SCALING_SCALE_IN_POINTS": "10 s data points below 90 % of the target before a scale-in; default 30 "
    "(SageMaker: 15 one-minute points)",
    "MODELHOST_SCALING_SCALE_OUT_COOLDOWN_S": "ScaleOutCooldown of a policy that sets none; default 60 "
    "(SageMaker: 300)",
    "MODELHOST_SCALING_SCALE_IN_COOLDOWN_S": "ScaleInCooldown of a policy that sets none; default 300",
    "MODELHOST_SCALE_TO_ZERO_IDLE_S": "a scaled variant without a request for this long goes to its MinCapacity (0 "
    "when allowed); default 300",
    "MODELHOST_SCALING_INTERVAL_S": "how often scaling policies are evaluated; default 10",
    "MODELHOST_INVOCATION_TIMEOUT_S": "how long the runtime waits for a worker's answer; default 300",
    "MODELHOST_ALLOWED_HOSTS": "comma-separated host names the server answers to besides localhost, 127.0.0.1, [::1] "
    "and --host (a Host header naming anything else is refused: DNS rebinding); default none",
    "MODELHOST_ALLOWED_ORIGINS": "comma-separated browser origins (https://console.example.com) allowed to call "
    "the server cross-origin; default none",
    "MODELHOST_INVENTORY": (
        "the host's resources instead of discovering them, as JSON: "
        '{"gpus": [{"memory_gib": 24}], "cpus": 16, "memory_gib": 128}'
    ),
    "MODELHOST_QUOTAS": "instance limits per type, e.g. ml.g5.2xlarge=2,ml.m5.large=10; default: what the host holds",
    "MODELHOST_MAX_CONCURRENCY_PER_INSTANCE": "requests in flight per instance before new ones queue; default 64",
    "MODELHOST_MAX_QUEUE_PER_VARIANT": "queued requests per variant before ThrottlingException; default 256",
    "MODELHOST_OPENAI_MAX_BODY_BYTES": "largest request body the OpenAI-compatible routes (/v1/...) read; "
    "default 6 MiB",
    "MODELHOST_ACCESS_KEY_ID": "access key id the CLI signs its requests with (with MODELHOST_SECRET_ACCESS_KEY); "
    "default: boto3's usual AWS variables and profiles",
    "MODELHOST_SECRET_ACCESS_KEY": "the secret of MODELHOST_ACCESS_KEY_ID (CLI only)",
    "MODELHOST_RESULT_CACHE_MAX_BYTES": "size of the invocation result cache endpoints opt into; default 256 MiB",
    "MODELHOST_HEALTH_INTERVAL_S": "how often serving instances are pinged; 3 failures in a row replace one; default 5",
    "MODELHOST_WORKER_LOG_LEVEL": "log level of worker processes (read by the worker); default INFO",
    "MODELHOST_ASYNC_MAX_INPUT_BYTES": "largest InvokeEndpointAsync input (InputLocation object) read; default 1 GiB "
    "(SageMaker's limit)",
    "MODELHOST_LAUNCHER": "where workers run: local (default, processes on this host) or ray (a Ray cluster, "
    "docs/fleet.md)",
    "RAY_ADDRESS": "the Ray cluster the ray launcher joins (host:port of its head); default: one on this machine",
    "MODELHOST_RAY_NODE_ADDRESS": "the address workers on Ray nodes listen on and the router reaches them at; "
    "default: each node's own Ray address (127.0.0.1 for a cluster on one machine)",
    "MODELHOST_RAY_NODE_DIR": "each Ray node's modelhost folder (its model data cache, packages, worker logs), on "
    "the node; default ~/.cache/modelhost-node",
    "MODELHOST_RAY_PLACEMENT_TIMEOUT_S": "how long an instance waits for the Ray cluster to have room for it before "
    "its start fails (placement); default 120",
    "MODELHOST_ENGINE_FACTORY": "module:function that builds engine mode's Backend (read by the worker; tests "
    "use tests.fake_backend:create_backend); default the built-in engine's create_backend",
}


_TEXT_SETTINGS = (  # variables taken as they are
    ("MODELHOST_REGION", "region"),
    ("MODELHOST_ACCOUNT_ID", "account_id"),
    ("MODELHOST_INVENTORY", "inventory_json"),
    ("MODELHOST_QUOTAS", "quotas"),
    ("MODELHOST_LOCAL_DATA_ROOTS", "local_data_roots"),
    ("MODELHOST_WORKER_SANDBOX", "worker_sandbox"),
    ("MODELHOST_LAUNCHER", "launcher"),
    ("RAY_ADDRESS", "ray_address"),
    ("MODELHOST_RAY_NODE_ADDRESS", "ray_node_address"),
    ("MODELHOST_RAY_NODE_DIR", "ray_node_dir"),
    ("MODELHOST_STORE_URL", "store_url"),
)


@dataclass(frozen=True, slots=True)
class ServerSettings:
    home: Path = field(default_factory=lambda: Path("~/.modelhost").expanduser())
    # MODELHOST_STORE_URL: a shared PostgreSQL store (store/postgres.py); None: SQLite in the home. It may hold a
    # password, so it is left out of repr (store/urls.py redacts it for messages).
    store_url: str | None = field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = 8080
    region: str = "us-east-1"
    account_id: str = "123456789012"
    strict_instance_types: bool = False  # refuse (ResourceLimitExceeded) GPU types the host lacks, vs run on CPU
    max_extract_bytes: int = 64 * 1024**3
    default_startup_timeout_s: float = 900.0
    default_download_timeout_s: float = 3600.0
    invocation_timeout_s: float = 300.0
    max_payload_bytes: int = 6 * 1024 * 1024  # SageMaker's InvokeEndpoint limit
    async_max_input_bytes: int = 1024**3  # MODELHOST_ASYNC_MAX_INPUT_BYTES: SageMaker's async input limit
    openai_max_body_bytes: int = 6 * 1024 * 1024  # MODELHOST_OPENAI_MAX_BODY_BYTES: /v1/... request bodies
    max_concurrency_per_instance: int = 64  # requests in flight per instance before new ones queue
    max_queue_per_variant: int = 256  # queued requests per variant before new ones are throttled (429)
    result_cache_max_bytes: int = 256 * 1024**2  # the invocation result cache's size (endpoints opt in)
    inventory_json: str | None = None  # MODELHOST_INVENTORY; None: discover the host
    quotas: str | None = None  # MODELHOST_QUOTAS
    ping_interval_s: float = 0.5  # how often the controller polls a starting instance's /ping
    control_interval_s: float = 0.5  # how often the control loop runs when nothing wakes it
    health_interval_s: float = 5.0  # how often serving instances are pinged
    health_failures: int = 3  # consecutive failed pings after which an instance is replaced
    allowed_hosts: tuple[str, ...] = ()  # MODELHOST_ALLOWED_HOSTS (front_door.py)
    allowed_origins: tuple[str, ...] = ()  # MODELHOST_ALLOWED_ORIGINS (front_door.py)
    local_data_roots: str | None = None  # MODELHOST_LOCAL_DATA_ROOTS (storage/limits.py); None: anywhere while no
    # access keys exist, nowhere once one does
    allow_private_model_data: bool = False  # MODELHOST_ALLOW_PRIVATE_MODEL_DATA: http(s) to private addresses
    worker_sandbox: str = "auto"  # MODELHOST_WORKER_SANDBOX: auto | required | off (scheduler/launchers/sandbox.py)
    launcher: str = "local"  # MODELHOST_LAUNCHER / --launcher: local | ray (scheduler/launchers/ray_cluster.py)
    ray_address: str | None = None  # RAY_ADDRESS / --ray-address: the cluster to join; None: one on this machine
    ray_node_address: str = ""  # MODELHOST_RAY_NODE_ADDRESS: where workers listen on their nodes; "": the node's
    ray_node_dir: str = "~/.cache/modelhost-node"  # MODELHOST_RAY_NODE_DIR: each node's folder, on the node
    ray_placement_timeout_s: float = 120.0  # MODELHOST_RAY_PLACEMENT_TIMEOUT_S
    scaling_evaluation_s: float = 30.0  # MODELHOST_SCALING_EVALUATION_S (autoscaling/policies.py ScalingSettings)
    scaling_scale_in_points: int = 30  # MODELHOST_SCALING_SCALE_IN_POINTS
    scaling_scale_out_cooldown_s: float = 60.0  # MODELHOST_SCALING_SCALE_OUT_COOLDOWN_S
    scaling_scale_in_cooldown_s: float = 300.0  # MODELHOST_SCALING_SCALE_IN_COOLDOWN_S
    scale_to_zero_idle_s: float = 300.0  # MODELHOST_SCALE_TO_ZERO_IDLE_S
    scaling_interval_s: float = 10.0  # MODELHOST_SCALING_INTERVAL_S

    @property
    def db_path(self) -> Path:
        return self.home / "modelhost.db"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def registry_dir(self) -> Path:
        return self.home / "registry"

    @property
    def packages_dir(self) -> Path:
        return self.home / "packages"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def transform_staging_dir(self) -> Path:
        return self.home / "transform-jobs"

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None, **overrides: object) -> ServerSettings:
        """Defaults, then MODELHOST_* variables, then explicit overrides (CLI flags) that are not None."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        if env.get("MODELHOST_HOME"):
            values["home"] = Path(env["MODELHOST_HOME"]).expanduser()
        for name, key in _TEXT_SETTINGS:
            if env.get(name):
                values[key] = env[name]
        if env.get("MODELHOST_STRICT_INSTANCE_TYPES"):
            values["strict_instance_types"] = env["MODELHOST_STRICT_INSTANCE_TYPES"].lower() in (
                "1",
                "true",
                "yes",
            )
        values.update(_name_lists(env))
        if env.get("MODELHOST_ALLOW_PRIVATE_MODEL_DATA"):
            allow = env["MODELHOST_ALLOW_PRIVATE_MODEL_DATA"].lower()
            values["allow_private_model_data"] = allow in ("1", "true", "yes")
        for name, key in (
            ("MODELHOST_MAX_CONCURRENCY_PER_INSTANCE", "max_concurrency_per_instance"),
            ("MODELHOST_MAX_QUEUE_PER_VARIANT", "max_queue_per_variant"),
            ("MODELHOST_RESULT_CACHE_MAX_BYTES", "result_cache_max_bytes"),
            ("MODELHOST_OPENAI_MAX_BODY_BYTES", "openai_max_body_bytes"),
            ("MODELHOST_ASYNC_MAX_INPUT_BYTES", "async_max_input_bytes"),
            ("MODELHOST_MAX_EXTRACT_BYTES", "max_extract_bytes"),
            ("MODELHOST_STARTUP_TIMEOUT_S", "default_startup_timeout_s"),
            ("MODELHOST_DOWNLOAD_TIMEOUT_S", "default_download_timeout_s"),
            ("MODELHOST_INVOCATION_TIMEOUT_S", "invocation_timeout_s"),
            ("MODELHOST_HEALTH_INTERVAL_S", "health_interval_s"),
            ("MODELHOST_SCALING_EVALUATION_S", "scaling_evaluation_s"),
            ("MODELHOST_SCALING_SCALE_OUT_COOLDOWN_S", "scaling_scale_out_cooldown_s"),
            ("MODELHOST_SCALING_SCALE_IN_COOLDOWN_S", "scaling_scale_in_cooldown_s"),
            ("MODELHOST_SCALE_TO_ZERO_IDLE_S", "scale_to_zero_idle_s"),
            ("MODELHOST_SCALING_INTERVAL_S", "scaling_interval_s"),
            ("MODELHOST_SCALING_SCALE_IN_POINTS", "scaling_scale_in_points"),
            ("MODELHOST_RAY_PLACEMENT_TIMEOUT_S", "ray_placement_timeout_s"),
        ):
            if env.get(name):
                kind = float if key.endswith("_s") else int
                values[key] = kind(env[name])
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "home" in values:
            values["home"] = Path(str(values["home"])).expanduser().resolve()
        return replace(cls(), **values)  # type: ignore[arg-type]


def _name_lists(env: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """The comma-separated settings (allowed hosts and origins) that are set."""
    lists = {"MODELHOST_ALLOWED_HOSTS": "allowed_hosts", "MODELHOST_ALLOWED_ORIGINS": "allowed_origins"}
    return {
        key: tuple(v.strip() for v in env[name].split(",") if v.strip()) for name, key in lists.items() if env.get(name)
    }
