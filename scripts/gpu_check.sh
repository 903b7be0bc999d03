#!/usr/bin/env bash
# GPU check for the CUDA engine, meant for the device machine (run through the
# device tool, with `.carry/devdeps` carried: headers/static libs this image
# lacks — nlohmann_json, CLI11, GTest, SQLite, stb — copied from a Debian box).
#   scripts/gpu_check.sh [build] [test] [sanitize] [bench] [bench-1m]
# Logs and results go to $OUT (or ./gpu_out). Build dir: build-gpu (ignored).
set -uo pipefail
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(build test sanitize bench)
BUILD=build-gpu
JOBS=$(nproc)
log() { echo "[gpu_check $(date +%T)] $*" | tee -a "$OUT/gpu_check.log"; }

for step in "${steps[@]}"; do
case $step in
build)
    if [ -d .carry/devdeps ]; then
        cp -rn .carry/devdeps/* /usr/local/ 2>/dev/null || true
        [ -d /usr/include/stb ] || cp -r .carry/devdeps/include/stb /usr/include/stb
    fi
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee -a "$OUT/gpu_check.log"
    log "configure"
    cmake -S . -B $BUILD -G Ninja -DCMAKE_BUILD_TYPE=Release -DMSASCOPE_GUI=OFF -DMSASCOPE_CUDA=ON \
        -DMSASCOPE_BENCH=OFF -DCMAKE_CUDA_ARCHITECTURES=90 -DMSASCOPE_NATIVE=OFF >"$OUT/configure.log" 2>&1 ||
        { tail -30 "$OUT/configure.log"; exit 1; }
    log "build"
    ninja -C $BUILD -j"$JOBS" msa_gpu_tests >"$OUT/build.log" 2>&1 ||
        { grep -E "error|FAILED" "$OUT/build.log" | head -40; exit 1; }
    ninja -C $BUILD -j"$JOBS" msascope-cli >>"$OUT/build.log" 2>&1 ||
        { grep -E "error|FAILED" "$OUT/build.log" | head -20; echo "msascope-cli build FAILED"; }
    grep -c "warning" "$OUT/build.log" | xargs -I{} echo "build warnings: {}"
    ;;
test)
    log "msa_gpu_tests"
    timeout 420 $BUILD/tests/msa_gpu_tests --gtest_color=no --gtest_filter="${TEST_FILTER:-*}" >"$OUT/tests.log" 2>&1
    echo "tests rc=$?"
    grep -E "^\[  (PASSED|FAILED|SKIPPED) |FAILED  \]|tests ran|worst NMSE|^  [a-z_]+ +[0-9.e+-]+|collector\]" "$OUT/tests.log" | head -60
    ;;
sanitize)
    log "compute-sanitizer memcheck (Tiny cases + collector)"
    timeout 240 compute-sanitizer --tool memcheck --error-exitcode 9 $BUILD/tests/msa_gpu_tests \
        --gtest_filter='Tiny/*:BackendOpsErrors.*' --gtest_color=no >"$OUT/memcheck.log" 2>&1
    echo "memcheck rc=$?"; grep -E "ERROR SUMMARY|PASSED|FAILED" "$OUT/memcheck.log" | tail -5
    log "compute-sanitizer racecheck"
    timeout 240 compute-sanitizer --tool racecheck --error-exitcode 9 $BUILD/tests/msa_gpu_tests \
        --gtest_filter='Tiny/*IndexTopk*:Tiny/*Sparse*:Tiny/*Dense*' --gtest_color=no >"$OUT/racecheck.log" 2>&1
    echo "racecheck rc=$?"; grep -E "RACECHECK SUMMARY|ERROR SUMMARY|PASSED|FAILED" "$OUT/racecheck.log" | tail -5
    ;;
bench)
    log "bench msa-m3 8K,32K,128K"
    timeout 500 $BUILD/app/msascope-cli bench --preset msa-m3 --context 8K,32K,128K --decode --profile --json \
        >"$OUT/h100_msa_m3.json" 2>"$OUT/bench.err"
    echo "bench rc=$?"; tail -5 "$OUT/bench.err"
    python3 - "$OUT/h100_msa_m3.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print(j["device"])
for r in j["rows"]:
    print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()})
for r in j.get("decode_rows", []):
    print("decode", {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})
for w in j.get("warnings", []): print("warning:", w[:300])
PY
    ;;
bench-1m)
    log "bench msa-m3 1M (sparse only, no peers' dense)"
    timeout 500 $BUILD/app/msascope-cli bench --preset msa-m3 --context 1M --max-dense-context 0 --no-flex --reps 1 \
        --json >"$OUT/h100_msa_m3_1m.json" 2>"$OUT/bench_1m.err"
    echo "bench-1m rc=$?"; tail -3 "$OUT/bench_1m.err"; cat "$OUT/h100_msa_m3_1m.json"
    ;;
tune)
    # Tile alternatives measured for NOTES_cuda.md.
    for t in 1x64 1x32 2x64; do
        echo "MSA_SPARSE_TILE=$t"; MSA_SPARSE_TILE=$t timeout 120 $BUILD/app/msascope-cli bench --preset msa-m3 \
            --context 32K,128K --no-peers --max-dense-context 0 --json | python3 -c \
            'import json,sys; [print(r["context"], round(r["main_ms"],3), round(r["index_ms"],3)) for r in json.load(sys.stdin)["rows"]]'
    done
    for w in 4 8; do
        echo "MSA_DENSE_WARPS=$w"; MSA_DENSE_WARPS=$w timeout 120 $BUILD/app/msascope-cli bench --preset msa-m3 \
            --context 32K --no-peers --json | python3 -c \
            'import json,sys; [print(r["context"], round(r["dense_ms"],3), round(r["dense_tflops"],1)) for r in json.load(sys.stdin)["rows"]]'
    done
    ;;
*) echo "unknown step $step"; exit 2 ;;
esac
done
