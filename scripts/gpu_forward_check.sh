#!/usr/bin/env bash
# GPU check of the CUDA forward and backend (kernels/cuda_forward.*,
# kernels/cuda_backend.*), for the device machine, with `.carry/devdeps`
# carried (headers and static libs the image lacks; see scripts/gpu_check.sh).
#   scripts/gpu_forward_check.sh [build] [test] [big] [sanitize]
# Logs go to $OUT (or ./gpu_out). Build dir: build-gpu (ignored).
set -uo pipefail
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(build test big sanitize)
BUILD=build-gpu
FILTER='ForwardOps.*:GpuForward.*:CudaBackend.*'
log() { echo "[gpu_forward_check $(date +%T)] $*" | tee -a "$OUT/gpu_forward_check.log"; }

for step in "${steps[@]}"; do
case $step in
build)
    if [ -d .carry/devdeps ]; then
        cp -rn .carry/devdeps/* /usr/local/ 2>/dev/null || true
        [ -d /usr/include/stb ] || cp -r .carry/devdeps/include/stb /usr/include/stb
    fi
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$OUT/gpu_forward_check.log"
    log "configure"
    cmake -S . -B $BUILD -G Ninja -DCMAKE_BUILD_TYPE=Release -DMSASCOPE_GUI=OFF -DMSASCOPE_CUDA=ON \
        -DMSASCOPE_BENCH=OFF -DCMAKE_CUDA_ARCHITECTURES=90 -DMSASCOPE_NATIVE=OFF >"$OUT/configure.log" 2>&1 ||
        { tail -30 "$OUT/configure.log"; exit 1; }
    grep -iE "sqlite|sessions" "$OUT/configure.log" | head -5
    log "build msa_gpu_tests"
    ninja -C $BUILD -j"$(nproc)" msa_gpu_tests >"$OUT/build.log" 2>&1 ||
        { grep -E "error|FAILED" "$OUT/build.log" | head -40; exit 1; }
    ;;
test)
    log "msa_gpu_tests ($FILTER)"
    timeout 300 $BUILD/tests/msa_gpu_tests --gtest_color=no --gtest_filter="$FILTER" >"$OUT/tests.log" 2>&1
    echo "tests rc=$?"
    grep -E "^\[  (PASSED|FAILED|SKIPPED) |FAILED  \]|Failure|Expected|Which is|actual|^\[forward-ops\]|^  [a-z]" "$OUT/tests.log" | head -80
    ;;
big)
    log "SmolLM2-shaped random model, N=2048"
    MSASCOPE_GPU_BIG=1 timeout 240 $BUILD/tests/msa_gpu_tests --gtest_color=no \
        --gtest_filter='GpuForward.SmolLmShapeTimingAndPerplexity' >"$OUT/big.log" 2>&1
    echo "big rc=$?"; grep -E "^\[forward-ops\] SmolLM|FAILED|Failure|Expected|Which is" "$OUT/big.log" | head -20
    ;;
sanitize)
    log "compute-sanitizer memcheck (ops + one forward)"
    timeout 200 compute-sanitizer --tool memcheck --error-exitcode 9 $BUILD/tests/msa_gpu_tests --gtest_color=no \
        --gtest_filter='ForwardOps.*:GpuForward.ProgressCancels*:GpuForward.BiasLlama3*' >"$OUT/memcheck.log" 2>&1
    echo "memcheck rc=$?"; grep -E "ERROR SUMMARY|PASSED|FAILED" "$OUT/memcheck.log" | tail -5
    ;;
*) echo "unknown step $step"; exit 2 ;;
esac
done
