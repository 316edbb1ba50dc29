"""What crosses into a worker's environment: the allow-list taken from the server's environment, and the
model `Environment` names that CreateModel refuses.

A worker runs the model's own code (model.py), so it must not see the server's secrets (AWS keys, tokens,
database passwords). Its environment is built from `worker_base_environment(os.environ)` (this allow-list),
then the registry's hub-cache settings, then the model's `Environment`. What passes, and why:

- the process basics: PATH, HOME, USER, LOGNAME, SHELL, LANG, LANGUAGE, LC_*, TZ, TMPDIR, TEMP, TMP, TERM;
- how the server's interpreter finds modelhost and native libraries, as the operator set them for the server
  itself: VIRTUAL_ENV, CONDA_PREFIX, PYTHONPATH, PYTHONHOME, LD_LIBRARY_PATH (a model cannot set these);
- the Hugging Face / transformers cache and offline settings (HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE,
  TRANSFORMERS_OFFLINE, HF_ENDPOINT, ...), XDG_CACHE_HOME, TORCH_HOME;
- thread, device and engine tuning: OMP_*, MKL_*, OPENBLAS_*, KMP_*, TOKENIZERS_PARALLELISM, CUDA_*, NVIDIA_*,
  NCCL_*, PYTORCH_*, TORCH_*, TORCHINDUCTOR_*, TRITON_*, VLLM_*;
- certificate bundles (SSL_CERT_FILE, SSL_CERT_DIR, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE);
- proxies (HTTP_PROXY, HTTPS_PROXY, NO_PROXY, ALL_PROXY, either case) unless the value carries credentials
  (`user:password@`): those are dropped;
- modelhost's own worker settings: MODELHOST_WORKER_LOG_LEVEL, MODELHOST_ENGINE_FACTORY (a test hook).

Anything whose name looks like a secret (contains SECRET, TOKEN, PASSWORD, PASSWD, CREDENTIAL, API_KEY,
PRIVATE_KEY, SESSION) is dropped even where a prefix would let it pass; nothing else passes (AWS_*, HF_TOKEN,
DATABASE_URL, ...). A model that needs a token passes it in its own `Environment`, as on SageMaker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

_EXACT = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP", "TERM",
    "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "PYTHONHOME", "LD_LIBRARY_PATH",
    "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE", "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_ENDPOINT", "HF_HUB_DISABLE_TELEMETRY",
    "HF_HUB_ENABLE_HF_TRANSFER", "HF_HUB_DISABLE_PROGRESS_BARS", "HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT",
    "XDG_CACHE_HOME", "TORCH_HOME", "TOKENIZERS_PARALLELISM",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "MODELHOST_WORKER_LOG_LEVEL", "MODELHOST_ENGINE_FACTORY",
})  # fmt: skip
_PREFIXES = ("LC_", "OMP_", "MKL_", "OPENBLAS_", "KMP_", "CUDA_", "NVIDIA_", "NCCL_", "PYTORCH_", "TORCH_",
             "TORCHINDUCTOR_", "TRITON_", "VLLM_")  # fmt: skip
_PROXIES = frozenset({"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"})
_SECRET_WORDS = ("SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "API_KEY", "PRIVATE_KEY", "SESSION")

# Model Environment names that change how the interpreter, the dynamic loader or a shell behave, or that are
# modelhost's own channel to the worker: refused at CreateModel.
_REFUSED_EXACT = frozenset({"BROWSER", "PERL5OPT", "PERL5LIB", "PERLLIB", "NODE_OPTIONS", "BASH_ENV", "ENV",
                            "SHELLOPTS", "PS4", "IFS", "GCONV_PATH", "HOSTALIASES", "RESOLV_HOST_CONF"})  # fmt: skip
_REFUSED_PREFIXES = ("PYTHON", "LD_", "DYLD_", "MODELHOST_", "MALLOC_", "GLIBC_")
_ALLOWED_MODELHOST = ("MODELHOST_RESULT_CACHE",)  # per-model settings (docs/serving.md), a prefix


def _looks_secret(name: str) -> bool:
    upper = name.upper()
    return any(word in upper for word in _SECRET_WORDS)


def _proxy_without_credentials(value: str) -> bool:
    if "@" not in value:
        return True
    try:
        parts = urlsplit(value if "://" in value else f"http://{value}")
    except ValueError:
        return False
    return parts.username is None and parts.password is None


def passes(name: str, value: str) -> bool:
    """Whether the server's variable `name=value` is passed to workers (see the module docstring)."""
    upper = name.upper()
    if upper in _PROXIES:
        return _proxy_without_credentials(value)
    if _looks_secret(name):
        return False
    return name in _EXACT or name.startswith(_PREFIXES)


def worker_base_environment(server_env: Mapping[str, str]) -> dict[str, str]:
    """The part of the server's environment a worker starts from: the allow-list, never the rest."""
    return {name: value for name, value in server_env.items() if passes(name, value)}


def refused_model_variables(names: Iterable[str]) -> list[str]:
    """The names in a model's Environment that CreateModel refuses, sorted (empty: all are fine)."""
    refused = set()
    for name in names:
        upper = name.upper()
        if name.startswith(_ALLOWED_MODELHOST):
            continue
        if upper in _REFUSED_EXACT or upper.startswith(_REFUSED_PREFIXES):
            refused.add(name)
    return sorted(refused)


def refusal_message(names: list[str]) -> str:
    """The ValidationException text for refused Environment names."""
    return (
        f"Environment: {', '.join(names)} cannot be set for a model: variables that change how the Python "
        "interpreter, the dynamic loader or a shell behave (PYTHON*, LD_*, BROWSER, ...), and MODELHOST_* "
        "(modelhost's own settings, except MODELHOST_RESULT_CACHE*), are refused. Put Python code and "
        "libraries in the model data (model.py, requirements.txt) instead."
    )
