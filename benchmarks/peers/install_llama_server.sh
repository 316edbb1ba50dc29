#!/usr/bin/env bash
# Builds llama.cpp's own `llama-server` from the llama.cpp tree vendored in the PyPI sdist of
# llama-cpp-python (no git clone needed: pip fetches the sdist from PyPI), outside the repository.
# Idempotent: skips the build when the binary exists. Prints the binary's path on its last line.
#   MODELHOST_PEERS   where the peers live (default ~/.cache/modelhost-peers)
#   LLAMA_CPP_PYTHON_VERSION   the sdist to take llama.cpp from (default 0.3.36)
#   JOBS              parallel build jobs (default: nproc)
set -euo pipefail

peers="${MODELHOST_PEERS:-$HOME/.cache/modelhost-peers}"
version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
jobs="${JOBS:-$(nproc)}"
root="$peers/llama.cpp"
binary="$root/build/bin/llama-server"

if [[ -x "$binary" ]]; then
    echo "$binary"
    exit 0
fi

if ! command -v cmake >/dev/null || ! command -v g++ >/dev/null; then
    if [[ "$(id -u)" != "0" ]]; then
        echo "cmake and g++ are needed: apt-get install -y cmake g++ (as root)" >&2
        exit 1
    fi
    apt-get update -q && apt-get install -y -q cmake g++ make
fi

python="${PYTHON:-$(command -v python3)}"
mkdir -p "$peers/sdist"
if ! ls "$peers/sdist"/llama_cpp_python-"$version".tar.gz >/dev/null 2>&1; then
    "$python" -m pip download --no-deps --no-binary :all: -d "$peers/sdist" "llama-cpp-python==$version"
fi
if [[ ! -f "$root/CMakeLists.txt" ]]; then
    rm -rf "$peers/extract" && mkdir -p "$peers/extract"
    tar -xzf "$peers/sdist/llama_cpp_python-$version.tar.gz" -C "$peers/extract"
    rm -rf "$root"
    mv "$peers/extract/llama_cpp_python-$version/vendor/llama.cpp" "$root"
    rm -rf "$peers/extract"
fi

cd "$root"
cmake -B build -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >&2
cmake --build build -j"$jobs" --target llama-server >&2
echo "$binary"
