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
        -DMSASCOPE_BENCH=OFF -DCMAKE_CUDA_ARCHITECTURES=90a -DMSASCOPE_NATIVE=OFF >"$OUT/configure.log" 2>&1 ||
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
    log "bench msa-m3 1M (sparse + decode; SDPA prefill only with SDPA_1M=1, about a minute)"
    dense_flag=(--max-dense-context 0)
    [ "${SDPA_1M:-0}" = 1 ] && dense_flag=(--max-dense-context 0 --sdpa-always)
    timeout 560 $BUILD/app/msascope-cli bench --preset msa-m3 --context 1M "${dense_flag[@]}" --no-flex --reps 1 \
        --decode --json >"$OUT/h100_msa_m3_1m.json" 2>"$OUT/bench_1m.err"
    echo "bench-1m rc=$?"; tail -3 "$OUT/bench_1m.err"; cat "$OUT/h100_msa_m3_1m.json"
    ;;
tune)
    # Tile alternatives measured for NOTES_cuda.md (no peers: our kernels only).
    brief='import json,sys
for r in json.load(sys.stdin)["rows"]:
    print(r["context"], "dense", r.get("dense_ms"), "index", round(r["index_ms"],3), "main", round(r["main_ms"],3))'
    for t in ${DENSE_TILES:-4x2 4x2k32 4x1}; do
        echo "MSA_DENSE_TILE=$t"; MSA_DENSE_TILE=$t timeout 150 $BUILD/app/msascope-cli bench --preset msa-m3 \
            --context 8K,32K --no-peers --json | python3 -c "$brief"
    done
    for v in ${INDEX_TILES:-w4k64 mt2 kn128 w8}; do
        echo "MSA_INDEX_TILE=$v"
        MSA_INDEX_TILE=$v timeout 150 $BUILD/app/msascope-cli bench --preset msa-m3 \
            --context 32K,128K --no-peers --max-dense-context 0 --json | python3 -c "$brief"
    done
    ;;
ncu)
    # One index launch at 128K under Nsight Compute: where the kernel's time goes.
    NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
    [ -z "$NCU" ] && { echo "ncu not found"; continue; }
    timeout 300 $NCU --kernel-name regex:${NCU_KERNEL:-index_topk_kernel} --launch-skip 1 --launch-count 1 \
        --section SpeedOfLight --section WarpStateStats --section ComputeWorkloadAnalysis \
        --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats \
        --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio" \
        $BUILD/app/msascope-cli bench --preset msa-m3 --context ${NCU_CONTEXT:-128K} --no-peers \
        --max-dense-context 0 --reps 1 >"$OUT/ncu.txt" 2>&1
    echo "ncu rc=$?"; grep -E "Duration|Compute \(SM\) Throughput|L2 Cache Throughput|Issue Slots Busy|Warp Cycles Per Issued|Achieved Occupancy|highest-utilized" "$OUT/ncu.txt" | head -12
    grep -E "issue_stalled" "$OUT/ncu.txt" | awk '{print $NF, $1}' | sort -gr | head -8
    ;;
*) echo "unknown step $step"; exit 2 ;;
esac
done
