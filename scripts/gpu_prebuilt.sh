#!/usr/bin/env bash
# GPU steps with binaries built on the development machine (no compiler or
# Debian headers needed on the device machine). Build here first:
#   cmake -S . -B build-gpu -DMSASCOPE_GUI=OFF -DMSASCOPE_BENCH=OFF -DMSASCOPE_NATIVE=OFF \
#         -DCMAKE_CUDA_ARCHITECTURES=90a && cmake --build build-gpu --target msa_gpu_tests msascope-cli
#   scripts/gpu_prebuilt.sh pack      # copies the binaries and their two non-CUDA libraries to .carry/
# then on the device (carry .carry):   scripts/gpu_prebuilt.sh test tune bench bench-1m
# Logs and JSON go to $OUT (or ./gpu_out).
set -uo pipefail
OUT=${OUT:-$PWD/gpu_out}
BIN=.carry/bin
steps=("$@")
log() { echo "[gpu $(date +%T)] $*"; }
cuda_libs() {
    local d
    for d in /usr/local/cuda/lib64 /usr/local/cuda/extras/CUPTI/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
        [ -d "$d" ] && printf '%s:' "$d"
    done
    dirname "$(find / -name 'libcupti.so.13*' -not -path '*/proc/*' 2>/dev/null | head -1)" 2>/dev/null
}
summary() {  # prints a bench JSON's rows compactly
    python3 - "$1" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print(j["device"])
keys = ["context", "dense_ms", "sparse_ms", "index_ms", "main_ms", "sdpa_ms", "flex_ms", "speedup", "dense_vs_sdpa", "sparse_tflops"]
for r in j["rows"]:
    print(" ".join(f"{k}={r[k]:.4g}" if isinstance(r.get(k), float) else f"{k}={r.get(k)}" for k in keys if k in r))
for r in j.get("decode_rows", []):
    print("decode", " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))
for w in j.get("warnings", []): print("warning:", w[:300])
PY
}

# Every step but pack runs the carried binaries on the device machine.
needs_device=0
for step in "${steps[@]}"; do [ "$step" = pack ] || needs_device=1; done
if [ $needs_device = 1 ]; then
    mkdir -p "$OUT"
    export LD_LIBRARY_PATH="$PWD/$BIN:$(cuda_libs):${LD_LIBRARY_PATH:-}"
fi
for step in "${steps[@]}"; do
case $step in
pack)
    mkdir -p $BIN
    cp build-gpu/app/msascope-cli build-gpu/tests/msa_gpu_tests $BIN/
    for lib in libsqlite3.so.0 libstb.so.0; do cp -L "/lib/x86_64-linux-gnu/$lib" $BIN/; done
    strip --strip-unneeded $BIN/msascope-cli $BIN/msa_gpu_tests
    du -sh $BIN
    ;;
test)
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
    log "msa_gpu_tests ${TEST_FILTER:-default}"
    timeout ${TEST_TIMEOUT:-300} $BIN/msa_gpu_tests --gtest_color=no --gtest_filter="${TEST_FILTER:-Tiny/*:Small/*:BackendOpsErrors.*}" \
        >"$OUT/tests.log" 2>&1
    echo "tests rc=$?"
    grep -E "^\[  (PASSED|FAILED) |FAILED  \]|tests ran|worst NMSE|^  [a-z_]+ +[0-9.e+-]+" "$OUT/tests.log" | head -40
    ;;
tune)
    brief='import json,sys
j=json.load(sys.stdin)
for r in j["rows"]: print("  ", r["context"], "index", round(r["index_ms"],3), "main", round(r["main_ms"],3))
for r in j.get("decode_rows",[]): print("   decode", r["context"], "step", round(r["sparse_ms"],4), "index", round(r["index_ms"],4), "scores", round(r["index_scores_ms"],4), "main", round(r["main_ms"],4), "dense step", round(r["dense_ms"],4))'
    for o in ${ORDERS-token block}; do
        log "MSA_SPARSE_ORDER=$o"
        MSA_SPARSE_ORDER=$o timeout 200 $BIN/msascope-cli bench --preset msa-m3 --context ${TUNE_CONTEXT:-8K,32K,128K} \
            --no-peers --max-dense-context 0 --json 2>>"$OUT/tune.err" | python3 -c "$brief"
    done
    for w in ${WINDOWS_MIB:-}; do
        log "MSA_BLOCK_MAJOR_WINDOW_MIB=$w"
        MSA_BLOCK_MAJOR_WINDOW_MIB=$w timeout 150 $BIN/msascope-cli bench --preset msa-m3 --context 32K,128K \
            --no-peers --max-dense-context 0 --json 2>>"$OUT/tune.err" | python3 -c "$brief"
    done
    for v in ${INDEX_TILES-wg4}; do
        log "MSA_INDEX_TILE=$v"
        MSA_INDEX_TILE=$v timeout 150 $BIN/msascope-cli bench --preset msa-m3 --context 32K,128K \
            --no-peers --max-dense-context 0 --json 2>>"$OUT/tune.err" | python3 -c "$brief"
    done
    # decode variants, each an env assignment (or "default")
    for v in ${DECODE_VARIANTS-default MSA_INDEX_DECODE=registers MSA_DECODE_TOPK=parts MSA_DECODE_ATTEND=split}; do
        log "decode $v"
        env $([ "$v" = default ] || echo "$v") timeout 150 $BIN/msascope-cli bench --preset msa-m3 --context 128K,1M \
            --decode --no-peers --max-dense-context 0 --reps 1 --json 2>>"$OUT/tune.err" | python3 -c "$brief"
    done
    tail -3 "$OUT/tune.err"
    ;;
profile)
    log "CUPTI kernel records at ${PROFILE_CONTEXT:-128K,1M} (no peers, no dense)"
    timeout 200 $BIN/msascope-cli bench --preset msa-m3 --context ${PROFILE_CONTEXT:-128K,1M} --decode --profile --no-peers \
        --max-dense-context 0 --reps 1 --json >"$OUT/profile.json" 2>>"$OUT/profile.err"
    python3 - "$OUT/profile.json" <<'PY'
import json, sys, collections
j = json.load(open(sys.argv[1]))
agg = collections.OrderedDict()
for k in j.get("kernels", []):
    key = (k.get("context"), k.get("phase"), k["name"].split("<")[0].split("(")[0][-40:])
    a = agg.setdefault(key, [0, 0.0, k.get("registers"), k.get("grid")])
    a[0] += 1; a[1] += k["ms"]
for (ctx, ph, name), (n, ms, regs, grid) in agg.items():
    print(f"  {ctx} {ph:7s} {name:40s} x{n:<4d} {ms:9.4f} ms  regs {regs} grid {grid}")
PY
    ;;
ncu)
    NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
    [ -z "$NCU" ] && { echo "ncu not found"; continue; }
    log "ncu ${NCU_KERNEL:-block_major_attend_kernel} at ${NCU_CONTEXT:-32K}"
    timeout 240 $NCU --clock-control none --kernel-name regex:${NCU_KERNEL:-block_major_attend_kernel} --launch-skip 2 \
        --launch-count 1 --section SpeedOfLight --section WarpStateStats --section Occupancy --section LaunchStats \
        --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis \
        --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio" \
        $BIN/msascope-cli bench --preset msa-m3 --context ${NCU_CONTEXT:-32K} --no-peers --max-dense-context 0 --reps 1 \
        >"$OUT/ncu.txt" 2>&1
    echo "ncu rc=$?"
    grep -E "Duration|Compute \(SM\) Throughput|Memory Throughput|L1/TEX Hit|L2 Hit|DRAM Throughput|Issue Slots Busy|Warp Cycles Per Issued|Achieved Occupancy|Theoretical Occupancy|Shared Memory|Registers Per|highest-utilized|Block Limit" "$OUT/ncu.txt" | head -24
    grep -E "issue_stalled" "$OUT/ncu.txt" | awk '{print $NF, $1}' | sort -gr | head -8
    ;;
bench)
    log "bench msa-m3 ${BENCH_CONTEXT:-8K,32K,128K} with peers"
    timeout 480 $BIN/msascope-cli bench --preset msa-m3 --context ${BENCH_CONTEXT:-8K,32K,128K} --decode --profile --json \
        >"$OUT/bench.json" 2>"$OUT/bench.err"
    echo "bench rc=$?"; tail -3 "$OUT/bench.err"; summary "$OUT/bench.json"
    ;;
bench-1m)
    log "bench msa-m3 1M (SDPA measured once)"
    timeout 400 $BIN/msascope-cli bench --preset msa-m3 --context 1M --max-dense-context 0 --sdpa-always --no-flex \
        --reps 1 --decode --json >"$OUT/bench_1m.json" 2>"$OUT/bench_1m.err"
    echo "bench-1m rc=$?"; tail -3 "$OUT/bench_1m.err"; summary "$OUT/bench_1m.json"
    ;;
*) echo "unknown step $step"; exit 2 ;;
esac
done
