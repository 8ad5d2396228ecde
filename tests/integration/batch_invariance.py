#!/usr/bin/env python3
"""Batch invariance: each text's vector alone (batch size 1) must equal its
vector inside batches of 64 mixed-length texts in shuffled order.
usage: batch_invariance.py CEMBED MODEL TEXTS.jsonl TMPDIR"""
import json
import random
import subprocess
import sys

cembed, model, texts_path, tmp = sys.argv[1:5]
texts = [json.loads(l) for l in open(texts_path, encoding="utf-8") if l.strip()]
rng = random.Random(1)
# 64 texts of mixed lengths: whole chunks and prefixes of them
picked = []
for i, t in enumerate(rng.sample(texts, 64)):
    cut = rng.choice([5, 20, 80, 300, 1000, 100000])
    picked.append({"id": f"t{i}", "text": t["text"][:cut]})
rng.shuffle(picked)
path = f"{tmp}/invariance.jsonl"
with open(path, "w", encoding="utf-8") as f:
    for p in picked:
        f.write(json.dumps(p) + "\n")


def run(batch):
    out = subprocess.run([cembed, "embed", "--model", model, "--batch-size", str(batch), path],
                         check=True, capture_output=True, text=True).stdout
    return {r["id"]: r["embedding"] for r in map(json.loads, out.splitlines())}


alone, batched = run(1), run(64)
worst = max(max(abs(a - b) for a, b in zip(alone[k], batched[k])) for k in alone)
lens = sorted(len(p["text"]) for p in picked)
print(f"64 texts ({lens[0]}..{lens[-1]} chars): max abs diff alone vs batch of 64 = {worst:.3g}")
sys.exit(0 if worst <= 1e-6 and len(alone) == 64 == len(batched) else 1)
