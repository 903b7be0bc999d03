#!/usr/bin/env bash
# Installs what msascope needs on Debian (apt packages, the default model),
# then configures and builds. --tests also builds the sanitizer configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
with_tests=0
for arg in "$@"; do
  case "$arg" in
    --tests) with_tests=1 ;;
    *) echo "usage: scripts/setup.sh [--tests]" >&2; exit 2 ;;
  esac
done

packages="build-essential cmake pkg-config python3 python3-pip libimgui-dev libglfw3-dev libsqlite3-dev
  nlohmann-json3-dev libcli11-dev libgtest-dev libbenchmark-dev libstb-dev xvfb xauth"
missing=""
for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "setup: installing$missing"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q $missing
fi

bash scripts/fetch_model.sh

jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$jobs"
if [ "$with_tests" = 1 ]; then
  # ASan + UBSan over the CPU code (core, sessions, viz); the GUI and CUDA are
  # left out: the sanitizers cannot see into GL drivers or GPU kernels.
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMSASCOPE_SANITIZE=ON \
        -DMSASCOPE_GUI=OFF -DMSASCOPE_CUDA=OFF -DMSASCOPE_BENCH=OFF
  cmake --build build-asan -j"$jobs"
fi
