#!/usr/bin/env bash
# Regenerates the README's Findings on the default model (CPU, 8K tokens):
#   studies  sweep on natural text (GPL-3: perplexity, recall) and needle on the
#            generated 12-fact document (hit rate, answers), both appended to
#            one session file; JSON next to it; wall times in findings_times.txt;
#            and the synthetic-attention sweep (no model)
#   charts   the sweep view of each run, written by the app itself
#            (msascope --screenshot ... --view sweep), for the README
# Usage: scripts/findings.sh [studies|charts|all]   (default: all)
# Each study is capped at 30 minutes (timeout) so a slow machine fails loudly.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=${1:-all}
cli=./build/app/msascope-cli
gui=./build/app/msascope
out=tests/bench/results
session=$out/findings.db
scorers=max,mean,quest,random

timed() {  # timed NAME COMMAND...: runs it, appends its wall time to findings_times.txt
    local name=$1 start
    shift
    start=$(date +%s)
    "$@"
    echo "$name $(($(date +%s) - start)) s" >> $out/findings_times.txt
}

if [[ $stage == studies || $stage == all ]]; then
    rm -f $session $session-wal $session-shm $out/findings_times.txt
    # Run 1. sink 1: the training-free retrofit forces the sink and local blocks.
    timed sweep timeout 1800 $cli sweep --text /usr/share/common-licenses/GPL-3 --tokens 8192 \
        --k 2,4,8,16,32 --scorer $scorers --sink 1 --session $session --json > $out/findings_sweep_gpl3_8k.json
    # Run 2. One MSA forward per combination checks all 12 answers by teacher forcing.
    timed needle timeout 1800 $cli needle --needles 12 --tokens 8192 \
        --k 2,4,8,16,32 --scorer $scorers --sink 1 --session $session --json > $out/findings_needle_8k.json
    # Synthetic attention (no model, seconds): concentrated vs white-noise scores.
    for kind in concentrated noise; do
        $cli sweep --synthetic $kind --tokens 8192 --k 4,8,16,32 --sink 1 --json > $out/findings_synthetic_${kind}_8k.json
    done
fi

if [[ $stage == charts || $stage == all ]]; then
    # The app's own export: the sweep view at the README's size, headless under xvfb.
    shots=app/screenshots
    xvfb-run -a -s "-screen 0 1600x1000x24" $gui --session $session --run 1 --view sweep \
        --screenshot $shots/findings_sweep.png
    xvfb-run -a -s "-screen 0 1600x1000x24" $gui --session $session --run 2 --view sweep \
        --screenshot $shots/findings_needle.png
fi
