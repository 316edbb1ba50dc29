"""The worker environment allow-list and the model Environment names CreateModel refuses."""

from __future__ import annotations

import pytest

from modelhost.scheduler.launchers.environment import (
    refusal_message,
    refused_model_variables,
    worker_base_environment,
)

SERVER_ENV = {
    "PATH": "/usr/bin",
    "HOME": "/home/me",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TZ": "UTC",
    "TMPDIR": "/tmp/x",
    "VIRTUAL_ENV": "/venv",
    "PYTHONPATH": "/src",
    "LD_LIBRARY_PATH": "/usr/local/cuda/lib64",
    "HF_HOME": "/hf",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_CACHE": "/hf/hub",
    "OMP_NUM_THREADS": "4",
    "MKL_NUM_THREADS": "4",
    "CUDA_HOME": "/usr/local/cuda",
    "NCCL_DEBUG": "INFO",
    "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
    "VLLM_API_KEY": "never",
    "MODELHOST_WORKER_LOG_LEVEL": "debug",
    "MODELHOST_ENGINE_FACTORY": "tests.fake_backend:create_backend",
    "HTTPS_PROXY": "http://proxy:3128",
    "no_proxy": "localhost",
    # must never pass
    "AWS_ACCESS_KEY_ID": "AKIA...",
    "AWS_SECRET_ACCESS_KEY": "s3cr3t",
    "AWS_SESSION_TOKEN": "tok",
    "AWS_PROFILE": "prod",
    "HF_TOKEN": "hf_xxx",
    "HUGGING_FACE_HUB_TOKEN": "hf_xxx",
    "GITHUB_TOKEN": "ghp",
    "OPENAI_API_KEY": "sk-",
    "DATABASE_PASSWORD": "pw",
    "DATABASE_URL": "postgres://u:p@db/x",
    "MODELHOST_TEST_SECRET": "x",
    "MODELHOST_HOME": "/home/me/.modelhost",
    "CUDA_API_KEY": "no",
    "LD_PRELOAD": "/evil.so",
    "PYTHONSTARTUP": "/evil.py",
    "HTTP_PROXY": "http://user:pass@proxy:3128",
    "SSH_AUTH_SOCK": "/tmp/ssh",
}


def test_only_the_allow_list_passes() -> None:
    env = worker_base_environment(SERVER_ENV)
    assert set(env) == {
        "PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH", "LD_LIBRARY_PATH",
        "HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "OMP_NUM_THREADS",
        "MKL_NUM_THREADS", "CUDA_HOME", "NCCL_DEBUG", "PYTORCH_CUDA_ALLOC_CONF", "MODELHOST_WORKER_LOG_LEVEL",
        "MODELHOST_ENGINE_FACTORY",
        "HTTPS_PROXY", "no_proxy",
    }  # fmt: skip
    assert all(env[name] == SERVER_ENV[name] for name in env)


def test_secrets_never_pass() -> None:
    env = worker_base_environment(SERVER_ENV)
    for value in ("s3cr3t", "tok", "hf_xxx", "pw", "postgres://u:p@db/x", "http://user:pass@proxy:3128"):
        assert value not in env.values()


def test_empty_server_environment() -> None:
    assert worker_base_environment({}) == {}


@pytest.mark.parametrize(
    "name",
    ["PYTHONPATH", "PYTHONSTARTUP", "PYTHONWARNINGS", "PYTHONHOME", "PYTHONINSPECT", "LD_PRELOAD",
     "LD_LIBRARY_PATH", "LD_AUDIT", "DYLD_INSERT_LIBRARIES", "BROWSER", "PERL5OPT", "NODE_OPTIONS", "BASH_ENV",
     "ENV", "MODELHOST_ENGINE_FACTORY", "MODELHOST_WORKER_SPEC", "MODELHOST_HOME", "pythonpath", "ld_preload"],
)  # fmt: skip
def test_interpreter_and_loader_variables_are_refused(name: str) -> None:
    assert refused_model_variables([name, "HF_MODEL_ID"]) == [name]


@pytest.mark.parametrize(
    "name",
    ["HF_MODEL_ID", "OPTION_ENTRYPOINT", "SM_NUM_GPUS", "MODELHOST_RESULT_CACHE", "MODELHOST_RESULT_CACHE_TTL_S",
     "MODELHOST_RESULT_CACHE_MAX_BYTES", "ECHO_ENV", "HF_TOKEN", "CUDA_VISIBLE_DEVICES", "MY_PYTHON_FLAG"],
)  # fmt: skip
def test_model_variables_that_are_fine(name: str) -> None:
    assert refused_model_variables([name]) == []


def test_message_names_every_refused_variable() -> None:
    message = refusal_message(refused_model_variables(["LD_PRELOAD", "PYTHONPATH", "OK"]))
    assert "LD_PRELOAD, PYTHONPATH cannot be set" in message
    assert "OK" not in message.split("cannot")[0]
