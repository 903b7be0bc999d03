#!/usr/bin/env bash
# GUI test: record two real runs of the default model with the CLI, open them
# in the app under Xvfb, screenshot every page and assert on pixels.
#   screenshots.sh CLI APP PNG_STATS SOURCE_DIR WORK_DIR
set -euo pipefail
cli=$1 app=$2 png_stats=$3 src=$4 work=$5
model="${XDG_CACHE_HOME:-$HOME/.cache}/msascope/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -f "$model" ]; then
  if [ "${MSASCOPE_REQUIRE_MODEL:-0}" = 1 ]; then echo "default model missing at $model" >&2; exit 1; fi
  echo "SKIP: default model not at $model (run scripts/fetch_model.sh)"; exit 77
fi
rm -rf "$work" && mkdir -p "$work"
session="$work/s.db"
text="$src/tests/fixtures/reference_text.txt"
# 1,024 tokens = 8 blocks of 128: k = 4 leaves real choices to outline.
"$cli" run --text "$text" --tokens 1024 --k 4 --capture-layers 2 --no-random --session "$session" >/dev/null 2>&1
"$cli" run --text "$text" --tokens 1024 --k 2 --sink 1 --capture-layers 2 --no-perplexity --session "$session" >/dev/null 2>&1
# Run 3: a small sweep (two scorers, two budgets) for the Sweep page.
"$cli" sweep --text "$text" --tokens 1024 --k 2,4 --scorer max,random --sink 1 --session "$session" >/dev/null 2>&1

shoot() {  # NAME ARGS...
  local name=$1; shift
  xvfb-run -a -s "-screen 0 1600x1000x24" "$app" --session "$session" --layer 2 --width 1600 --height 1000 \
    --screenshot "$work/$name.png" "$@" >"$work/$name.log" 2>&1 || { cat "$work/$name.log" >&2; exit 1; }
}
orange=255,140,0  # viz::palette::selected_outline
# The left heatmap (block scores) of the selection page: not blank, and the
# outline colour of selected blocks drawn inside it.
shoot selection --run 1 --view selection
"$png_stats" "$work/selection.png" --min-stddev 20
"$png_stats" "$work/selection.png" --rect 0.25,0.10,0.58,0.58 --min-stddev 10 --colour $orange --min-count 200
# The dense-mass heatmap beside it.
"$png_stats" "$work/selection.png" --rect 0.63,0.10,0.95,0.58 --min-stddev 10
# k = 1 keeps only the local block: far fewer outlined pixels than k = 4 keeps.
shoot selection_k1 --run 1 --view selection --k 1
k4=$("$png_stats" "$work/selection.png" --rect 0.25,0.10,0.58,0.58 --colour $orange | sed 's/.*colour count //')
k1=$("$png_stats" "$work/selection_k1.png" --rect 0.25,0.10,0.58,0.58 --colour $orange | sed 's/.*colour count //')
echo "outlined pixels: k=4 $k4, k=1 $k1"
[ "$k4" -gt "$k1" ] || { echo "re-selecting with k=1 did not reduce the outlined blocks ($k1 >= $k4)" >&2; exit 1; }
# The CLI kept layer 2's Q/K/V: another block size and scorer re-pool from them.
shoot repooled --run 1 --view selection --block 64 --scorer mean --screenshot-info "$work/repooled.json"
grep -q '"block": 64' "$work/repooled.json" && grep -q '"scorer": "mean"' "$work/repooled.json" ||
  { echo "the app did not re-pool the CLI session at B=64, mean:" >&2; cat "$work/repooled.json" >&2; exit 1; }
"$png_stats" "$work/repooled.png" --rect 0.25,0.10,0.58,0.58 --min-stddev 10 --colour $orange --min-count 200
# The text view beside the inspector, on the run's real tokens: not blank, the
# query token marked and its own block shaded (viz::palette::text_query, text_local).
shoot text --run 1 --view text --query 700
"$png_stats" "$work/text.png" --rect 0.53,0.70,0.79,0.98 --min-stddev 10 --colour 28,66,116 --min-count 2000
"$png_stats" "$work/text.png" --rect 0.53,0.70,0.79,0.98 --colour 255,225,90 --min-count 40
shoot profile --run 1 --view profile
"$png_stats" "$work/profile.png" --rect 0.22,0.05,0.98,0.95 --min-stddev 8
# Compare: two heatmaps side by side, both drawn.
shoot compare --run 1 --compare "$session:2" --view compare
"$png_stats" "$work/compare.png" --min-stddev 15
# The Sweep page of the sweep run: each scorer's line colour (viz::scorer_colour) drawn.
shoot sweep --run 3 --view sweep
"$png_stats" "$work/sweep.png" --rect 0.22,0.05,0.98,0.95 --min-stddev 8 --colour $orange --min-count 300
"$png_stats" "$work/sweep.png" --rect 0.22,0.05,0.98,0.95 --colour 235,80,80 --min-count 300
echo "Gui screenshots in $work: all pages drawn"
