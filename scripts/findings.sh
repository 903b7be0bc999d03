#!/usr/bin/env bash
# Regenerates the README's Findings tables on the default model (CPU).
# sweep: natural text (perplexity, recall); needle: the generated 12-fact document.
set -euo pipefail
cd "$(dirname "$0")/.."
cli=./build/app/msascope-cli
out=tests/bench/results
$cli sweep --text /usr/share/common-licenses/GPL-3 --tokens 8192 --k 2,4,8,16,32 --scorer max,random --sink 1 \
  --session findings.db --json > $out/findings_sweep_gpl3_8k.json
$cli needle --needles 12 --tokens 2048 --k 2,3,4,8,16 --scorer max,random --sink 1 \
  --session findings.db --json > $out/findings_needle_2k.json
