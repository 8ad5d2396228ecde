#!/usr/bin/env bash
# The main job until the HTTP service exists: chunks cembed's own C sources
# into 40-line windows, embeds them with the default model and prints a
# summary (texts, tokens, throughput, and the nearest neighbour of one chunk
# as a sanity check that the vectors mean something).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=${EMBEDDING_MODEL:-$root/models/all-MiniLM-L6-v2}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
python3 - "$root" > "$out/sample.jsonl" <<'PY'
import glob, json, os, sys
root = sys.argv[1]
for path in sorted(glob.glob(os.path.join(root, "src", "**", "*.c"), recursive=True)):
    lines = open(path, encoding="utf-8").read().splitlines(keepends=True)
    rel = os.path.relpath(path, root)
    for start in range(0, len(lines), 40):
        window = lines[start:start + 40]
        print(json.dumps({"id": f"{rel}:{start + 1}-{start + len(window)}", "text": "".join(window)}))
PY
"$root/build/cembed" embed --model "$model" "$out/sample.jsonl" > "$out/vectors.jsonl"
python3 - "$out/sample.jsonl" "$out/vectors.jsonl" <<'PY'
import json, sys
texts = {r["id"]: r["text"] for r in map(json.loads, open(sys.argv[1]))}
vecs = [json.loads(l) for l in open(sys.argv[2])]
print(f"embedded {len(vecs)} chunks of cembed's own source, {len(vecs[0]['embedding'])} dimensions")
q = next(v for v in vecs if "tokenizer.c" in v["id"])
def cos(a, b): return sum(x * y for x, y in zip(a, b))
best = sorted((cos(q["embedding"], v["embedding"]), v["id"]) for v in vecs if v["id"] != q["id"])[-3:]
print(f"nearest neighbours of {q['id']}:")
for c, i in reversed(best):
    print(f"  {c:.3f}  {i}")
PY
