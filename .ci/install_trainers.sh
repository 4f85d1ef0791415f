#!/usr/bin/env bash
# Install the real trainers that tests/test_trainers.py drives, each in its own venv so that their pins never
# fight the project's: LLaMA-Factory (with the transformers/datasets/trl it pins) and TRL (current release).
#
# The venvs see this Python's site-packages (--system-site-packages) to reuse its torch and torchvision (a
# CUDA build of several GB that must not be downloaded twice); pip is constrained to exactly those torch and
# torchvision versions, so nothing can pull another torch. Everything pinned below is installed into the venv
# whenever the system's version differs.
#
# Cache: ${MMGEN_CI_CACHE:-~/.cache/mmgen-ci}/venvs/<name>-<hash of pins, python, torch>/, plus
# venvs/<name>.python (the path of its interpreter, which the tests read). A venv is reused when its
# .mmgen-ready marker exists and every pin still resolves to its version (a second run takes seconds);
# otherwise it is rebuilt in place (venvs cannot be moved) and older venvs of that name are removed.
#
# Usage: bash .ci/install_trainers.sh [llamafactory] [trl]   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

LLAMAFACTORY_PINS="llamafactory==0.9.5 transformers==5.6.0 datasets==4.0.0 accelerate==1.11.0 peft==0.18.1 \
trl==0.24.0 torchaudio==2.11.1 tokenizers==0.22.2"
TRL_PINS="trl==1.16.0 transformers==5.24.0 datasets==5.2.0 accelerate==1.15.0 tokenizers==0.23.3"

cache="${MMGEN_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmgen-ci}/venvs"
mkdir -p "$cache"

# The trainers reuse the project's torch: install the project first if this Python has none yet
# (the same command as README's test line, which then has nothing left to do).
if ! "$PYTHON" -c 'import torch, torchvision' >/dev/null 2>&1; then
  echo "no torch/torchvision in $PYTHON yet: installing the project first"
  "$PYTHON" -m pip install -q -e ".[all,test]"
fi
torch_pins=$("$PYTHON" -c 'import importlib.metadata as m; print(*(n + "==" + m.version(n) for n in ("torch", "torchvision")))')
py_tag=$("$PYTHON" -c 'import sys, sysconfig; print(f"cp{sys.version_info[0]}{sys.version_info[1]}-{sysconfig.get_platform()}")')

# 0 when every "name==version" in $2.. is what the venv python $1 imports.
pins_ok() {
  local py="$1"; shift
  "$py" - "$@" <<'PY'
import importlib.metadata as md, sys
bad = []
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    try:
        got = md.version(name)
    except md.PackageNotFoundError:
        got = None
    if got != want:
        bad.append(f"{name}: want {want}, have {got}")
if bad:
    print("; ".join(bad), file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}

install_one() {
  local name="$1" pins="$2"
  local key dir py start
  key=$(printf '%s|%s|%s' "$pins" "$torch_pins" "$py_tag" | sha256sum | cut -c1-12)
  dir="$cache/$name-$key"
  py="$dir/bin/python"
  # shellcheck disable=SC2086
  if [ -f "$dir/.mmgen-ready" ] && pins_ok "$py" $pins $torch_pins; then
    echo "$name venv is ready: $dir"
  else
    start=$SECONDS
    echo "building the $name venv in $dir ($pins)"
    rm -rf "$dir"
    "$PYTHON" -m venv --system-site-packages "$dir"
    local constraints="$dir/torch-constraints.txt"
    printf '%s\n' $torch_pins >"$constraints"
    # shellcheck disable=SC2086
    "$py" -m pip install -q -c "$constraints" $pins 2>&1 | grep -v -e "^WARNING: Location 'file:" -e "is neither a file nor a directory" || true
    # shellcheck disable=SC2086
    pins_ok "$py" $pins $torch_pins || { echo "the $name venv does not have its pins after installing" >&2; exit 1; }
    touch "$dir/.mmgen-ready"
    for old in "$cache/$name"-*; do
      [ "$old" = "$dir" ] || [ ! -d "$old" ] || rm -rf "$old"
    done
    echo "$name venv built in $((SECONDS - start)) s"
  fi
  printf '%s\n' "$py" >"$cache/$name.python"
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(llamafactory trl)
for t in "${targets[@]}"; do
  case "$t" in
    llamafactory) install_one llamafactory "$LLAMAFACTORY_PINS" ;;
    trl) install_one trl "$TRL_PINS" ;;
    *) echo "unknown trainer: $t (llamafactory, trl)" >&2; exit 2 ;;
  esac
done
