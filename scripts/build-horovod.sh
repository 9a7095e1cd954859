#!/usr/bin/env bash
# Build Horovod 0.28.1 (its last release) into its own environment: `make horovod` -> .venv-horovod.
#
# As released it does not build against torch >= 2.1: it compiles as C++14 and torch's headers need C++17.
# The fix (merged upstream after 0.28.1, never released) is the C++ standard in two CMakeLists.txt: the
# top-level one (so the bundled gloo is C++17 too; otherwise the link fails on
# gloo::rendezvous::Store::kDefaultTimeout) and horovod/torch's. CPU only, gloo for collectives, no MPI.
# About 2 minutes on 2 cores; needs cmake and a C++ compiler (installed with apt when missing and root).
set -euo pipefail
VENV=$(realpath -m "${1:-.venv-horovod}")
PYTHON=${PYTHON:-python3}
HERE=$(cd "$(dirname "$0")/.." && pwd)

if ! command -v cmake >/dev/null || ! command -v g++ >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake g++ make >/dev/null
  else
    echo "build-horovod: needs cmake and g++ (apt-get install cmake g++)" >&2; exit 1
  fi
fi

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c "$HERE/constraints-horovod.txt")
"${PIP[@]}" torch==2.13.0
"${PIP[@]}" numpy cffi cloudpickle packaging psutil pyyaml setuptools wheel

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$VENV/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: -d "$work" horovod==0.28.1
tar -C "$work" -xzf "$work"/horovod-0.28.1.tar.gz
src="$work/horovod-0.28.1"
sed -i 's/set(CMAKE_CXX_STANDARD 14)/set(CMAKE_CXX_STANDARD 17)/' "$src/CMakeLists.txt" "$src/horovod/torch/CMakeLists.txt"
grep -q 'CMAKE_CXX_STANDARD 17' "$src/horovod/torch/CMakeLists.txt" || { echo "build-horovod: the C++17 patch did not apply" >&2; exit 1; }
(cd "$src" && HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_WITHOUT_TENSORFLOW=1 \
   HOROVOD_WITHOUT_MXNET=1 HOROVOD_CPU_OPERATIONS=gloo MAKEFLAGS="-j$(nproc)" \
   "$VENV/bin/python" -m pip wheel --quiet --disable-pip-version-check --no-build-isolation --no-deps -w "$work/wheel" . > "$work/build.log" 2>&1) \
  || { tail -30 "$work/build.log" >&2; echo "build-horovod: the build failed (log above)" >&2; exit 1; }
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "$work"/wheel/horovod-*.whl
"$VENV/bin/python" -c "import horovod.torch as hvd; hvd.init(); assert hvd.size() == 1"
touch "$VENV/.installed-stamp"
echo "build-horovod: horovod 0.28.1 (C++17 fix) in $VENV"
