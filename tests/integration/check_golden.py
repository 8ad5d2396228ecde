#!/usr/bin/env python3
"""Checks cembed's vectors against oracle vectors.
usage: check_golden.py GOLDEN.json CEMBED_EMBED.jsonl CEMBED_TOKENIZE.jsonl MIN_COS [MIN_TEXTS]
GOLDEN.json: [{"text", "ids", "emb"}] (TF.js running the shipped graph).
Every text must have identical token ids and cosine >= MIN_COS."""
import json
import math
import sys

golden = json.load(open(sys.argv[1], encoding="utf-8"))
emb = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
tok = [json.loads(l) for l in open(sys.argv[3], encoding="utf-8")]
min_cos = float(sys.argv[4])
min_texts = int(sys.argv[5]) if len(sys.argv) > 5 else 1
if not (len(golden) == len(emb) == len(tok)) or len(golden) < min_texts:
    sys.exit(f"counts: golden {len(golden)}, embed {len(emb)}, tokenize {len(tok)} (need >= {min_texts})")
worst, worst_i, bad, long = 2.0, -1, 0, 0
for i, (g, e, t) in enumerate(zip(golden, emb, tok)):
    if g["ids"] != t["ids"]:
        print(f"text {i}: token ids differ from the oracle's")
        bad += 1
    a, b = g["emb"], e["embedding"]
    if len(a) != len(b):
        sys.exit(f"text {i}: {len(b)} dimensions, oracle has {len(a)}")
    dot = sum(x * y for x, y in zip(a, b))
    cos = dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)) or 1.0)
    if len(g["ids"]) == 256:
        long += 1
    if cos < worst:
        worst, worst_i = cos, i
    if cos < min_cos:
        bad += 1
        print(f"text {i}: cosine {cos:.9f} < {min_cos}: {g['text'][:60]!r}")
print(f"{len(golden)} texts ({long} of 256 tokens): min cosine 1 - {1 - worst:.2e} (text {worst_i}), {bad} failures")
sys.exit(1 if bad else 0)
