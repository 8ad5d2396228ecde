#!/usr/bin/env bash
# Regenerates tests/golden/tfjs-minilm.json: TF.js runs the shipped graph on
# the six texts of the shared golden file, the hand-made edge cases and 160
# real code chunks (80 of 40 lines, 80 of 3..40 lines). Takes about 15 minutes
# on 2 cores, so `make test` uses the committed file; `make oracle` runs this.
# usage: tests/oracle/make_golden.sh TFJS_MODEL_DIR [OUT]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${1:?usage: make_golden.sh TFJS_MODEL_DIR [OUT]}
out=${2:-$here/../golden/tfjs-minilm.json}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$here/install.sh"
python3 - "$src" > "$tmp/texts.jsonl" <<'PY'
import json, os, sys
g = os.path.join(sys.argv[1], "golden-tfjs.json")
if os.path.exists(g):
    for i, r in enumerate(json.load(open(g))):
        print(json.dumps({"id": f"shared:{i}", "text": r["text"]}))
PY
cat "$here/edge_cases.jsonl" >> "$tmp/texts.jsonl"
python3 "$here/make_corpus.py" --n 80 --lines 40 --seed 11 "$tmp/a.jsonl"
python3 "$here/make_corpus.py" --n 80 --lines 40 --mix-lines --seed 7 "$tmp/b.jsonl"
cat "$tmp/a.jsonl" "$tmp/b.jsonl" >> "$tmp/texts.jsonl"
mkdir -p "$(dirname "$out")"
node "$here/tfjs_embed.mjs" "$src" "$tmp/texts.jsonl" "$out" 256
