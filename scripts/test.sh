#!/usr/bin/env bash
# Runs every test: the release build (unit, integration on the real model, GUI
# screenshots under xvfb, GPU tests that skip without a GPU), then the
# sanitizer build.
set -euo pipefail
cd "$(dirname "$0")/.."
export MSASCOPE_REQUIRE_MODEL=1
ctest --test-dir build --output-on-failure -j2
# Under ASan the real-model integration tests take many minutes for nothing the
# small-input tests don't already cover; MSASCOPE_SANITIZER tells tests to scale down.
MSASCOPE_SANITIZER=1 ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j2 -E 'RealModel'
