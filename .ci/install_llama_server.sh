#!/usr/bin/env bash
# Install llama-cpp-python[server] (the `llm-server` extra) as a *portable* CPU build, from a wheel cached
# outside the clone, so it is compiled once per machine (about 30 minutes on 2 cores), not once per run.
#
# Why portable: a native build (GGML_NATIVE) compiles AVX-512/AMX kernels for the build machine's CPU;
# on CPUs that advertise AMX inside a VM that faults on it, the server dies with SIGSEGV on `ldtilecfg`
# in libggml-cpu.so. These flags keep AVX2/FMA/F16C (every x86-64 machine here has them) and nothing newer.
#
# Cache: ${MMGEN_CI_CACHE:-~/.cache/mmgen-ci}/wheels/<version>-<flags hash>-<python>-<platform>/*.whl.
# If this Python already has the same version built without AVX-512/AMX kernels, nothing is rebuilt.
set -euo pipefail

VERSION="${LLAMA_CPP_VERSION:-0.3.36}"
FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF \
-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DGGML_BACKEND_DL=OFF -DGGML_CPU_ALL_VARIANTS=OFF"
PYTHON="${PYTHON:-python}"

tag=$("$PYTHON" -c 'import sys, sysconfig; print(f"cp{sys.version_info[0]}{sys.version_info[1]}-{sysconfig.get_platform()}")')
hash=$(printf '%s' "$FLAGS" | sha256sum | cut -c1-12)
dir="${MMGEN_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmgen-ci}/wheels/llama-cpp-python-$VERSION-$hash-$tag"

# 0: this Python has llama-cpp-python $VERSION and its CPU backend holds no AVX-512/AMX kernels.
portable_installed() {
  "$PYTHON" - "$VERSION" <<'PY'
import importlib.metadata as md, re, sys
try:
    if md.version("llama-cpp-python") != sys.argv[1]:
        sys.exit(1)
    import llama_cpp
except Exception:
    sys.exit(1)
info = llama_cpp.llama_print_system_info().decode(errors="replace")
sys.exit(1 if re.search(r"\b(AVX512\w*|AMX\w*) = 1", info) else 0)
PY
}

if portable_installed; then
  echo "llama-cpp-python $VERSION (portable build) is installed"
  exec "$PYTHON" -m pip install -q "llama-cpp-python[server]==$VERSION"  # only the server's own deps, if any
fi

wheel=$(ls "$dir"/llama_cpp_python-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$wheel" ]; then
  echo "building llama-cpp-python $VERSION portably into $dir (once per machine, ~30 min)"
  mkdir -p "$(dirname "$dir")"
  tmp=$(mktemp -d "$(dirname "$dir")/.build-XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  CMAKE_ARGS="$FLAGS" FORCE_CMAKE=1 CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$PYTHON" -m pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-python -w "$tmp" "llama-cpp-python==$VERSION"
  rm -rf "$dir" && mv "$tmp" "$dir"  # complete wheels only: a killed build leaves no cache entry
  trap - EXIT
  wheel=$(ls "$dir"/llama_cpp_python-*.whl | head -n1)
fi
echo "installing $wheel"
"$PYTHON" -m pip install -q --force-reinstall --no-deps "$wheel"
"$PYTHON" -m pip install -q "$wheel[server]"
portable_installed || { echo "llama-cpp-python from $wheel still reports AVX-512/AMX kernels" >&2; exit 1; }
