#!/usr/bin/env bash
# Creates the SageMaker Python SDK v3 environment that examples/sagemaker_sdk_v3/deploy.py and
# tests/integration/sdk_v3/ use, apart from the project's .venv (v3 pins its own boto3/botocore and pulls
# mlflow, pandas, pyarrow, scipy: about 1 GB, 4 minutes here; no torch).
#
#   examples/sagemaker_sdk_v3/setup.sh            # → /tmp/sdk3-venv
#   examples/sagemaker_sdk_v3/setup.sh DIR        # → DIR; then MODELHOST_SDK_V3_PYTHON=DIR/bin/python
set -euo pipefail
VENV="${1:-${MODELHOST_SDK_V3_VENV:-/tmp/sdk3-venv}}"
SDK_VERSION="${MODELHOST_SDK_V3_VERSION:-3.27.0}"
PYTHON="${PYTHON:-python3}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
[ -x "$ROOT/.venv/bin/python" ] && PYTHON="$ROOT/.venv/bin/python"   # the project's Python (3.11+)

"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "sagemaker==$SDK_VERSION"
AWS_DEFAULT_REGION=us-east-1 "$VENV/bin/python" -c 'import importlib.metadata as m, sagemaker.serve.model_builder; print("sagemaker", m.version("sagemaker"))'
echo "SDK v3 environment ready: MODELHOST_SDK_V3_PYTHON=$VENV/bin/python"
